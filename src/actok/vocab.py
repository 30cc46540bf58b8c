"""Map action-token ids into a host LLM's vocabulary and back, as VLA stacks do.

Both conventions count down from the end of the LLM vocabulary:
`llm_id = llm_vocab_size - 1 - skip_tokens - id`
- π0-FAST: `skip_tokens = 128` (the last 128 ids are left to the LLM's own special tokens);
- OpenVLA: `skip_tokens = 0` (action tokens are the last N ids of the vocabulary).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from actok.errors import ActokError

CONVENTIONS = {"pi0": 128, "openvla": 0}


class LLMVocabMapping:
    """Bijection between action ids `[0, action_vocab_size)` and a contiguous block of LLM ids.

    Raises `ActokError` when the block does not fit in the LLM vocabulary or overlaps `special_token_ids`.
    """

    def __init__(
        self,
        llm_vocab_size: int,
        action_vocab_size: int,
        convention: str = "pi0",
        skip_tokens: int | None = None,
        special_token_ids: Iterable[int] = (),
    ):
        if convention not in CONVENTIONS:
            raise ActokError(f"unknown convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
        self.llm_vocab_size = int(llm_vocab_size)
        self.action_vocab_size = int(action_vocab_size)
        self.convention = convention
        self.skip_tokens = CONVENTIONS[convention] if skip_tokens is None else int(skip_tokens)
        self.high = self.llm_vocab_size - 1 - self.skip_tokens  # LLM id of action id 0
        self.low = self.high - self.action_vocab_size + 1  # LLM id of the last action id
        if self.skip_tokens < 0 or self.action_vocab_size < 1:
            raise ActokError("skip_tokens must be >= 0 and action_vocab_size >= 1")
        if self.low < 0:
            raise ActokError(
                f"{self.action_vocab_size} action ids + {self.skip_tokens} skipped do not fit in an LLM vocabulary "
                f"of {self.llm_vocab_size} (need at least {self.action_vocab_size + self.skip_tokens})"
            )
        overlap = sorted(int(t) for t in special_token_ids if self.low <= int(t) <= self.high)
        if overlap:
            raise ActokError(
                f"action ids would map onto LLM ids [{self.low}, {self.high}], which include special tokens "
                f"{overlap[:10]}{'...' if len(overlap) > 10 else ''}; change skip_tokens or the convention"
            )

    def to_llm(self, ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """Action ids -> LLM ids. Ids outside `[0, action_vocab_size)` raise."""
        out = []
        for seq in ids:
            arr = np.asarray(seq, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= self.action_vocab_size):
                raise ActokError(
                    f"action id out of range [0, {self.action_vocab_size}): {arr[(arr < 0) | (arr >= self.action_vocab_size)][0]}"
                )
            out.append((self.high - arr).tolist())
        return out

    def is_action(self, llm_ids: np.ndarray) -> np.ndarray:
        """Mask of LLM ids that fall in the action block."""
        llm_ids = np.asarray(llm_ids)
        return (llm_ids >= self.low) & (llm_ids <= self.high)

    def from_llm(self, llm_ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """LLM ids -> action ids. An id outside the action block (e.g. text a model emitted) becomes -1, which
        every actok decoder treats as invalid rather than as an action."""
        out = []
        for seq in llm_ids:
            arr = np.asarray(seq, dtype=np.int64)
            out.append(np.where(self.is_action(arr), self.high - arr, -1).tolist())
        return out
