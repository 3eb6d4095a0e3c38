"""Tiny deterministic random-weight llama GGUF model: a fast stand-in for a real model in tests."""

from __future__ import annotations

import pathlib

import gguf
import numpy as np
import numpy.typing as npt

__all__ = ["write_tiny_llama"]

_F32Array = npt.NDArray[np.float32]

_WORD_TEXT = (
    "the of and to a in is it you that he was for on are with as I his they be at one have"
    " this from or had by not word but what some we can out other were all there when up use"
    " your how said an each she which do their time if will way about many then them write"
    " would like so these her long make thing see him two has look more day could go come did"
    " number sound no most people my over know water than call first who may down side been"
    " now find any new work part take get place made live where after back little only round"
    " man year came show every good me give our under name very through just form sentence"
    " great think say help low line differ turn cause much mean before move right boy old too"
    " same tell does set three want air well also play small end put home read hand port large"
    " spell add even land here must big high such follow act why ask men change went light"
    " kind off need house picture try us again animal point mother world near build self earth"
    " father hello quick brown fox jumps lazy dog model token swarm Hello The World A I It"
    " This We You In"
)
_SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:'\"-()"
_SPACE = "\u2581"  # SentencePiece word-boundary marker
# Weight scales, tuned so greedy decoding of a random model is varied and decisive.
_QK_SCALE, _ANTI_TIE, _LOGIT_SCALE = 2.0, 0.7, 10.0


def _build_vocab() -> tuple[list[str], list[float], list[int]]:
    """Return (pieces, scores, token types) of a small SentencePiece-style vocabulary."""
    control = int(gguf.TokenType.CONTROL)
    pieces: list[str] = ["<unk>", "<s>", "</s>"]
    scores: list[float] = [0.0, 0.0, 0.0]
    types: list[int] = [int(gguf.TokenType.UNKNOWN), control, control]
    for byte in range(256):
        pieces.append(f"<0x{byte:02X}>")
        scores.append(0.0)
        types.append(int(gguf.TokenType.BYTE))
    # Every prefix of "▁word" is a piece, so the SPM bigram merge can always grow a word one
    # character at a time; longer pieces score higher, so whole-word merges win over partial ones.
    ordinary: dict[str, None] = {_SPACE: None}
    for char in _SYMBOLS:
        ordinary[char] = None
        ordinary[_SPACE + char] = None
    for word in _WORD_TEXT.split():
        for end in range(2, len(word) + 2):
            ordinary[(_SPACE + word)[:end]] = None
    for rank, piece in enumerate(ordinary):
        pieces.append(piece)
        scores.append(float(np.float32(len(piece) - 10.0 - rank * 1e-3)))
        types.append(int(gguf.TokenType.NORMAL))
    return pieces, scores, types


def _normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> _F32Array:
    """Draw a float32 tensor of N(0, scale^2) values."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_tiny_llama(
    path: pathlib.Path,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    context_length: int = 512,
    chat_template: str = "",
    extra_pieces: tuple[str, ...] = (),
    idle_layers: int = 0,
) -> pathlib.Path:
    """Write a tiny random-weight llama model (all-F32 GGUF) to ``path`` and return ``path``.

    The bytes depend only on the arguments. The model carries a SentencePiece-style ("llama")
    tokenizer with byte fallback, so text prompts work; control and byte tokens are never
    predicted, so greedy decoding emits readable ordinary pieces and never stops on EOS by itself.
    A non-empty ``chat_template`` is stored as the file's tokenizer.chat_template; ``extra_pieces`` are
    ordinary pieces added after the usual ones (another vocabulary, e.g. for a draft that must not match).
    ``idle_layers`` layers of zero weights follow the others: they cost what a layer costs and change
    nothing, so the file predicts exactly what the one without them does, only slower (a target that
    its own smaller twin drafts for).
    """
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must be divisible by n_head, and n_head by n_head_kv")
    head_dim = n_embd // n_head
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    std = 1.0 / float(np.sqrt(n_embd))
    pieces, scores, types = _build_vocab()
    for piece in extra_pieces:
        pieces.append(piece)
        scores.append(float(np.float32(len(piece) - 10.0 - len(pieces) * 1e-3)))
        types.append(int(gguf.TokenType.NORMAL))
    n_vocab = len(pieces)
    rng = np.random.default_rng(seed)

    # numpy shapes are the reverse of ggml's ne: a (rows, cols) array is a ggml {cols, rows} tensor.
    token_embd = _normal(rng, (n_vocab, n_embd), 1.0)
    tensors: list[tuple[str, _F32Array]] = [("token_embd.weight", token_embd)]
    for i in range(n_layer):
        tensors += [
            (f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32)),
            (f"blk.{i}.attn_q.weight", _normal(rng, (q_dim, n_embd), _QK_SCALE * std)),
            (f"blk.{i}.attn_k.weight", _normal(rng, (kv_dim, n_embd), _QK_SCALE * std)),
            (f"blk.{i}.attn_v.weight", _normal(rng, (kv_dim, n_embd), std)),
            (f"blk.{i}.attn_output.weight", _normal(rng, (n_embd, q_dim), std)),
            (f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32)),
            (f"blk.{i}.ffn_gate.weight", _normal(rng, (n_ff, n_embd), std)),
            (f"blk.{i}.ffn_up.weight", _normal(rng, (n_ff, n_embd), std)),
            (f"blk.{i}.ffn_down.weight", _normal(rng, (n_embd, n_ff), 1.0 / np.sqrt(n_ff))),
        ]
    for i in range(n_layer, n_layer + idle_layers):  # zero attention output and FFN: the residual passes unchanged
        shapes = {"attn_q": (q_dim, n_embd), "attn_k": (kv_dim, n_embd), "attn_v": (kv_dim, n_embd)}
        shapes |= {"attn_output": (n_embd, q_dim), "ffn_gate": (n_ff, n_embd), "ffn_up": (n_ff, n_embd)}
        shapes |= {"ffn_down": (n_embd, n_ff)}
        tensors += [(f"blk.{i}.{name}.weight", np.zeros(shape, dtype=np.float32)) for name, shape in shapes.items()]
        tensors += [(f"blk.{i}.{name}.weight", np.ones(n_embd, dtype=np.float32)) for name in ("attn_norm", "ffn_norm")]
    # Output head: random plus an anti-tied term, so tokens already in the residual stream (the
    # current one above all) are pushed down and greedy decoding wanders instead of looping on one
    # token. Logits spread over several units, so the top-1 margin dwarfs float rounding.
    output = _normal(rng, (n_vocab, n_embd), 1.0) - np.float32(_ANTI_TIE) * token_embd
    output *= np.float32(_LOGIT_SCALE * std)
    output[np.asarray(types) != int(gguf.TokenType.NORMAL)] = 0.0  # never predict control/bytes
    tensors.append(("output_norm.weight", np.ones(n_embd, dtype=np.float32)))
    tensors.append(("output.weight", output))

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-llama")
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer + idle_layers)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    if chat_template:
        writer.add_chat_template(chat_template)
    for name, tensor in tensors:
        writer.add_tensor(name, np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
