"""A vocabulary's fingerprint: a draft model proposes token ids, which mean the same only under the same vocabulary.

Hashing every token text of a 262,144-token vocabulary takes a few hundred milliseconds at startup,
so the fingerprint covers the vocabulary's size and an evenly spread sample of token texts (the
first ones, where special tokens live, always among them): two tokenizers that differ anywhere but
by a few texts between the samples differ here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

SAMPLE = 4096  # token texts hashed at most


def vocab_fingerprint(vocab_size: int, token_bytes: Callable[[int], bytes]) -> str:
    """A short hex digest of the vocabulary's size and a sample of its token texts."""
    digest = hashlib.sha256(f"vocab:{vocab_size}".encode())
    step = max(1, vocab_size // SAMPLE)
    for token in sorted({*range(min(vocab_size, 64)), *range(0, vocab_size, step)}):
        text = token_bytes(token)
        digest.update(len(text).to_bytes(4, "little"))
        digest.update(text)
    return digest.hexdigest()[:16]


def vocab_mismatch(draft_model: str, draft_fingerprint: str, target_model: str, target_fingerprint: str) -> str:
    """Why a draft of one model cannot propose to workers of another; "" when their vocabularies match (or a
    fingerprint is unknown: workers that predate it are not refused)."""
    if not draft_fingerprint or not target_fingerprint or draft_fingerprint == target_fingerprint:
        return ""
    return (
        f"the draft model {draft_model!r} (vocabulary {draft_fingerprint}) does not share the vocabulary of "
        f"{target_model!r} (vocabulary {target_fingerprint}): a draft must tokenize exactly as the model it drafts for"
    )
