"""`ActionCodec`: a tokenizer plus the pipeline it was trained with, so raw actions go in and come out.

encode: raw chunk `[N, H, A or D]` (+ state at each chunk's first frame for delta dims) -> select encoded dims
-> delta -> normalize -> tokenize. decode: ids -> detokenize -> unnormalize -> undo delta.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from actok.data.normalize import Normalizer
from actok.data.pipeline import ChunkSet
from actok.errors import ActokError
from actok.tokenizers import load_tokenizer
from actok.tokenizers.base import ActionTokenizer

PIPELINE_FILE = "pipeline.json"


class ActionCodec:
    """Encode raw robot actions to tokens and decode tokens to raw actions, end to end."""

    def __init__(self, tokenizer: ActionTokenizer, pipeline: dict):
        self.tokenizer = tokenizer
        self.pipeline = pipeline
        self.normalizer = Normalizer.from_dict(pipeline["normalization"])
        self.encoded_dims: list[int] = list(pipeline["encoded_dim_list"])
        delta = pipeline.get("delta_dims")
        delta_set = {int(d) for d in str(delta).split(",")} if delta else set()
        self.delta_positions = [i for i, d in enumerate(self.encoded_dims) if d in delta_set]

    @classmethod
    def from_chunks(cls, tokenizer: ActionTokenizer, chunks: ChunkSet) -> ActionCodec:
        return cls(tokenizer, chunks.pipeline_dict())

    @classmethod
    def load(cls, path: str | Path) -> ActionCodec:
        path = Path(path)
        pipeline_path = path / PIPELINE_FILE
        if not pipeline_path.is_file():
            raise ActokError(
                f"{path} has no {PIPELINE_FILE}: it holds a tokenizer but not the pipeline it was trained with"
            )
        return cls(load_tokenizer(path), json.loads(pipeline_path.read_text()))

    def save(self, path: str | Path) -> Path:
        path = self.tokenizer.save(path)
        (path / PIPELINE_FILE).write_text(json.dumps(self.pipeline, indent=2) + "\n")
        return path

    @property
    def horizon(self) -> int:
        return int(self.pipeline["action_horizon"])

    def _select(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3:
            raise ActokError(f"expected raw action chunks [N, H, A], got shape {actions.shape}")
        if actions.shape[-1] == len(self.encoded_dims):
            return actions
        if actions.shape[-1] == self.pipeline["action_dim"]:
            return actions[..., self.encoded_dims]
        raise ActokError(
            f"action chunks have {actions.shape[-1]} dims; expected the full action ({self.pipeline['action_dim']}) "
            f"or the encoded dims ({len(self.encoded_dims)})"
        )

    def _state_offset(self, state: np.ndarray | None, n: int) -> np.ndarray:
        """`[N, D]` offsets added back on decode (zero outside the delta dims)."""
        offset = np.zeros((n, len(self.encoded_dims)))
        if self.delta_positions:
            if state is None:
                raise ActokError("this codec was trained with the delta transform: pass state=[N, state_dim]")
            state = np.asarray(state, dtype=np.float64).reshape(n, -1)
            offset[:, self.delta_positions] = state[:, [self.encoded_dims[p] for p in self.delta_positions]]
        return offset

    def encode(self, actions: np.ndarray, state: np.ndarray | None = None) -> list[list[int]]:
        """Raw chunks `[N, H, A]` (A = full action or encoded dims) and, with delta dims, the state at each
        chunk's first frame `[N, S]` -> token ids."""
        chunks = self._select(actions)
        relative = chunks - self._state_offset(state, len(chunks))[:, None, :]
        return self.tokenizer.encode(self.normalizer.normalize(relative))

    def decode(
        self,
        ids: Sequence[Sequence[int]],
        state: np.ndarray | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Token ids -> raw action chunks `[N, H, D]` over the encoded dims, in action units."""
        normalized, valid = self.tokenizer.decode(
            ids,
            horizon=self.horizon,
            action_dim=len(self.encoded_dims),
            return_valid=True,
            on_invalid=on_invalid,
        )
        raw = self.normalizer.unnormalize(normalized) + self._state_offset(state, len(normalized))[:, None, :]
        return (raw, valid) if return_valid else raw
