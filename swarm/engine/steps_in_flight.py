"""StepsInFlight: a BatchEngine's steps from the slots to its Forward and back, sent in order, received oldest first."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from swarm.engine.engine_meter import EngineMeter
from swarm.engine.forward import Forward, StepInterrupted, Verifier
from swarm.engine.sequence import Sequence, Slot
from swarm.engine.speculation import SpeculationBudget
from swarm.engine.speculation.budget import WorkerAcceptance
from swarm.engine.speculation.draft_mailbox import DraftMailbox
from swarm.engine.step_rows import StepRow, add_to_step, take_back
from swarm.shared.stage_messages import Sampled, StageWork

AcceptFn = Callable[[Slot, Sequence, Sampled], None]  # takes one sampled token into its sequence


class StepsInFlight:
    """Each step carries a token for each ready decoding sequence (with a proposal to verify, when it pays),
    then prompt chunks; its tokens come back with a proposal's rejected tail already out of the slot's cache."""

    def __init__(
        self,
        forward: Forward,
        meter: EngineMeter,
        prefill_chunk: int,
        speculate: bool,
        speculation: SpeculationBudget,
        acceptance: WorkerAcceptance,
        drafts: DraftMailbox | None = None,
    ) -> None:
        """speculate: propose from each sequence's own context (prompt lookup); drafts: a draft PC's proposals,
        taken first when fresh (either makes proposals to verify); acceptance: the worker's, kept across steps
        and sequences, where each verified proposal is also recorded."""
        self._forward = forward
        self._meter = meter
        self._prefill_chunk = prefill_chunk
        self._speculation = speculation
        self._acceptance = acceptance
        self._lookup = speculate
        self._drafts = drafts
        # The whole model verifies proposals, and so does a pipeline's head, through its last stage.
        proposes = speculate or drafts is not None
        self._verifier = forward if proposes and isinstance(forward, Verifier) else None
        self._steps: deque[list[StepRow]] = deque()  # sent, oldest first

    def __len__(self) -> int:
        return len(self._steps)

    def _decode_steps(self) -> int:
        """Steps in flight that carry decode rows (replayed tokens are decode rows too)."""
        return sum(1 for rows in self._steps if any(row.taken_from != "pending" for row in rows))

    @property
    def verifies(self) -> bool:
        """Whether proposals are verified: only then does a sequence need a context to propose from."""
        return self._verifier is not None

    def clear(self) -> None:
        """Forgets every step sent (the Forward discards them too): their tokens never come."""
        self._steps.clear()

    def send(self, slots: list[Slot], max_decode_rows: int = 0) -> bool:
        """Sends a step: a token for each ready decoding sequence, at most its share of them, then prompt
        chunks in the room left; False when no sequence is ready, or when the Forward cut the step short (none
        of it ran). A tenant's first sequence here prefills first, a chunk a step, alone: the others wait that
        chunk's time for its quick first token. max_decode_rows (0: no cap) caps the decoding sequences
        stepped; those left out have waited longest in the next step."""
        occupied = [(slot, slot.sequence) for slot in slots if slot.sequence is not None]
        first = [(slot, s) for slot, s in occupied if s.prefill_alone and s.prefilling]
        others_wait = bool(first) and len(first) < len(occupied)
        if others_wait:
            occupied = first
        decoding = [(slot, s) for slot, s in occupied if not s.prefilling]
        ready = sorted((p for p in decoding if not p[1].awaiting_token), key=lambda p: (p[1].ready_at, p[0].seq_id))
        groups = self._forward.decode_groups(len(decoding))
        share = -(-len(decoding) // groups)  # groups of equal size
        stepping = ready[: min(share, max_decode_rows) if max_decode_rows else share]
        if self._decode_steps() >= groups:
            # Every group is in flight: groups an earlier choice split (or a late token) merge when they are back.
            stepping = []
        work: list[StageWork] = []
        rows: list[StepRow] = []
        room = self._forward.batch_capacity - len(stepping)  # rows left for proposals and prompt chunks
        logit_rows, expected = len(stepping), float(len(stepping))  # the step so far, and the tokens it may yield
        for slot, sequence in stepping:
            if sequence.replay:
                replayed = (sequence.replay.pop(0),)
                add_to_step(work, rows, slot, sequence, replayed, "replay", sample=not sequence.replay)
                continue
            proposal = self._proposal(sequence, logit_rows, expected, room)
            room -= len(proposal)
            logit_rows += len(proposal)
            expected += sequence.acceptance.expected_tokens(len(proposal))
            tokens = (sequence.next_token, *proposal)
            add_to_step(work, rows, slot, sequence, tokens, "decode", sample=True, proposed=len(proposal))
        budget = room
        if work or others_wait:
            budget = min(budget, self._prefill_chunk)
        elif self._forward.max_in_flight > 1:
            # Prefill alone through a pipeline: while one stage computes chunk k the one before computes chunk
            # k+1, so the first token waits for the prompt over one stage plus a chunk over each other stage.
            # Smaller chunks cost llama.cpp about the same per token down to 64 (Gemma 3 270M, 1 thread); a
            # step's own overhead (a few ms of messages) is what keeps them from going smaller.
            budget = min(budget, self._prefill_chunk)
        for slot, sequence in occupied:
            if budget <= 0:
                break
            if not sequence.prefilling:
                continue
            # A prompt's next chunk need not wait for the last one's step: the stages take steps in order.
            chunk = sequence.pending[:budget]
            sequence.pending = sequence.pending[len(chunk) :]
            sample = not sequence.pending and not sequence.replay
            add_to_step(work, rows, slot, sequence, tuple(chunk), "pending", sample=sample)
            budget -= len(chunk)
        if not work:
            return False
        try:
            if self._verifier is not None:
                self._verifier.send(work, [row.proposed for row in rows])
            else:
                self._forward.send(work)
        except StepInterrupted:  # a new request goes first: the step is formed again after it is admitted
            take_back(rows)
            self._meter.interrupted_steps += 1
            return False
        self._steps.append(rows)
        return True

    def _proposal(self, sequence: Sequence, logit_rows: int, expected: float, room: int) -> list[int]:
        """Tokens to verify after the sequence's next one: as many as pay in a step of `logit_rows` rows so far
        that may yield `expected` tokens, within the batch's room, max_tokens and the context."""
        if sequence.lookup is None or self._verifier is None:
            return []
        drafted = self._drafts is not None and bool(sequence.draft_key) and self._drafts.holds(sequence.draft_key)
        if not drafted and not self._lookup:  # nothing could propose: the budget need not be sized
            return []
        limit = min(
            self._speculation.limit(sequence.acceptance, logit_rows, expected, self._verifier.step_cost),
            room,
            sequence.request.max_tokens - sequence.generated - 1,
            self._forward.context_per_slot - sequence.position - 1,
        )
        proposal: list[int] = []
        if drafted and self._drafts is not None:
            proposal = self._drafts.take(sequence.draft_key, sequence.lookup.tokens, limit)
        if not proposal and self._lookup:
            proposal = sequence.lookup.propose(limit)
        if not proposal:
            sequence.acceptance.idle_steps += 1
        return proposal

    def receive(self, accept: AcceptFn) -> None:
        """Takes the oldest step's tokens into `accept`, in order; those of sequences that ended meanwhile
        (even by an earlier token of this step) are dropped."""
        if not self._steps:
            return
        if self._verifier is not None:
            decided = self._verifier.receive_decided()
        else:
            decided = [None if token is None else (token,) for token in self._forward.receive()]
        rows = self._steps.popleft()
        self._meter.steps += 1
        produced = 0
        for row, tokens in zip(rows, decided, strict=True):
            if not row.sample or row.slot.sequence is not row.sequence:
                continue
            if tokens is None:
                raise RuntimeError(f"a step came back without the token of session {row.slot.seq_id}")
            sequence = row.sequence
            sequence.awaiting_token = False
            sequence.ready_at = self._meter.steps
            if row.proposed:
                self._settle_proposal(row.slot, sequence, row.proposed, accepted=len(tokens) - 1)
            for sampled in tokens:
                produced += 1
                accept(row.slot, sequence, sampled)
                if row.slot.sequence is not sequence:
                    break
        self._meter.produced(produced)

    def _settle_proposal(self, slot: Slot, sequence: Sequence, proposed: int, accepted: int) -> None:
        """The rejected tokens of a proposal leave the sequence's count and the slot's record of its cache."""
        sequence.acceptance.record(proposed, accepted)
        self._acceptance.record(proposed, accepted)
        self._meter.proposal_settled(proposed, accepted)
        rejected = proposed - accepted
        sequence.position -= rejected
        del slot.cached[len(slot.cached) - rejected :]
        sequence.proposal_in_flight = 0
