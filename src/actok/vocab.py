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
from actok.tokenizers.base import TokenBatch

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
        self.llm_vocab_size = _whole(llm_vocab_size, "llm_vocab_size")
        self.action_vocab_size = _whole(action_vocab_size, "action_vocab_size")
        self.convention = convention
        self.skip_tokens = CONVENTIONS[convention] if skip_tokens is None else _whole(skip_tokens, "skip_tokens")
        special_token_ids = [_whole(t, "a special token id") for t in special_token_ids]
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
        batch = TokenBatch.from_ids(ids)
        bad = (batch.flat < 0) | (batch.flat >= self.action_vocab_size)
        if batch.malformed.any() or bad.any():
            first = batch.flat[bad][0] if bad.any() else "a row that is not a sequence of integers"
            raise ActokError(f"action id out of range [0, {self.action_vocab_size}): {first}")
        return [(self.high - row).tolist() for row in _split(batch.flat, batch.lengths)]

    def is_action(self, llm_ids: np.ndarray) -> np.ndarray:
        """Mask of LLM ids that fall in the action block."""
        llm_ids = np.asarray(llm_ids)
        return (llm_ids >= self.low) & (llm_ids <= self.high)

    def from_llm(self, llm_ids: Sequence[Sequence[int]]) -> list[list[int]]:
        """LLM ids -> action ids. An id outside the action block (e.g. text a model emitted) becomes -1, which
        every actok decoder treats as invalid rather than as an action."""
        batch = TokenBatch.from_ids(llm_ids)  # anything that is not an id (None, text, 2.5) is -1 as well
        mapped = np.where(self.is_action(batch.flat), self.high - batch.flat, -1)
        return [row.tolist() for row in _split(mapped, batch.lengths)]


def _split(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ActokError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)
