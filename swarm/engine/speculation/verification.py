"""Verifying a proposal: the sequence's own sampler decides every token, row by row, until one differs.

A step decodes the sequence's next token and the k proposed after it, each row with logits. The
sampler draws from row 0 exactly as it would without speculation; when its token is the first
proposed one, row 1's logits are those the next step would have computed, so it draws again
there, and so on. The first token that differs from the proposal is kept (the model's own
choice) and the rows after it are discarded.

For a deterministic proposal this is the standard accept/reject rule (accept the proposed x
with probability p(x), else draw from p with x removed and renormalised) in another form:
drawing y ~ p and keeping x when y == x gives x with probability p(x) and any other y with
probability p(y). The output distribution is unchanged at any temperature, greedy requests get
exactly the model's argmax, and a seeded sampler makes the same draws as without speculation
wherever the logits are the same (llama.cpp may round a row of a 1+k-row step differently from
a step of one row: on the synthetic test models by up to 0.02, which can move a draw).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from swarm.shared.stage_messages import Sampled


def verify(draw: Callable[[int], Sampled], first_row: int, proposal: Sequence[int]) -> tuple[Sampled, ...]:
    """The tokens decided: the proposal's accepted prefix, then the sampler's token at the first mismatch
    (or after the whole proposal). draw(row) samples from the logits of batch row `row`, in order."""
    decided: list[Sampled] = []
    for i in range(len(proposal) + 1):
        sampled = draw(first_row + i)
        decided.append(sampled)
        if i == len(proposal) or sampled.token != proposal[i]:
            break
    return tuple(decided)
