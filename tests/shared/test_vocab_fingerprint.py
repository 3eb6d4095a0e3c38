"""A vocabulary's fingerprint tells vocabularies apart, and a mismatch names both models."""

from __future__ import annotations

from swarm.shared.vocab_fingerprint import vocab_fingerprint, vocab_mismatch


def test_the_same_vocabulary_has_the_same_fingerprint_and_any_change_another() -> None:
    vocab = [f"t{i}".encode() for i in range(10_000)]
    same = vocab_fingerprint(len(vocab), vocab.__getitem__)
    assert same == vocab_fingerprint(len(vocab), list(vocab).__getitem__)
    assert vocab_fingerprint(len(vocab) - 1, vocab.__getitem__) != same  # its size
    renamed = [b"<s>", *vocab[1:]]
    assert vocab_fingerprint(len(renamed), renamed.__getitem__) != same  # a special token's text
    split = [b"t", b"0", *vocab[2:]]  # texts that concatenate alike still differ
    joined = [b"t0", b"", *vocab[2:]]
    assert vocab_fingerprint(len(split), split.__getitem__) != vocab_fingerprint(len(joined), joined.__getitem__)


def test_a_mismatch_names_both_models_and_an_unknown_fingerprint_is_no_mismatch() -> None:
    why = vocab_mismatch("small", "aaaa", "big", "bbbb")
    assert "'small'" in why and "'big'" in why and "aaaa" in why and "bbbb" in why
    assert vocab_mismatch("small", "aaaa", "big", "aaaa") == ""
    assert vocab_mismatch("small", "", "big", "bbbb") == ""  # a worker from before fingerprints
