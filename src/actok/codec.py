"""`ActionCodec`: a tokenizer plus the pipeline it was trained with, so raw actions go in and come out.

encode: raw chunk `[N, H, A or D]` (+ state at each chunk's first frame for delta dims) -> select encoded dims
-> delta -> normalize -> tokenize. decode: ids -> detokenize -> unnormalize -> undo delta.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from actok.data.normalize import Normalizer
from actok.data.pipeline import ChunkSet
from actok.data.spec import PipelineSpec
from actok.errors import ActokError
from actok.tokenizers import load_tokenizer
from actok.tokenizers.base import ActionTokenizer
from actok.tokenizers.params import read_json_object

PIPELINE_FILE = "pipeline.json"


def read_spec(path: str | Path) -> PipelineSpec:
    """The pipeline in a `PIPELINE_FILE`; `ActokError` naming the file when it is missing, not JSON, or a field is
    missing or of the wrong type."""
    return PipelineSpec.from_dict(read_json_object(Path(path)), str(path))


def read_pipeline(path: str | Path) -> dict[str, Any]:
    """The `PIPELINE_FILE` object, checked as `read_spec` checks it."""
    return read_spec(path).to_dict()


class ActionCodec:
    """Encode raw robot actions to tokens and decode tokens to raw actions, end to end."""

    def __init__(self, tokenizer: ActionTokenizer, pipeline: PipelineSpec | dict):
        spec = pipeline if isinstance(pipeline, PipelineSpec) else PipelineSpec.from_dict(pipeline)
        if tokenizer.horizon is not None and (tokenizer.horizon, tokenizer.action_dim) != (
            spec.horizon,
            len(spec.encoded_dims),
        ):
            raise ActokError(
                f"the pipeline gives chunks [H={spec.horizon}, D={len(spec.encoded_dims)}] but "
                f"the {tokenizer.name} tokenizer was fitted on [H={tokenizer.horizon}, D={tokenizer.action_dim}]"
            )
        self.tokenizer = tokenizer
        self.spec = spec

    @classmethod
    def from_chunks(cls, tokenizer: ActionTokenizer, chunks: ChunkSet) -> ActionCodec:
        return cls(tokenizer, chunks.spec)

    @classmethod
    def load(cls, path: str | Path) -> ActionCodec:
        """Read a folder written by `save` (or `actok train`); raises `ActokError` naming the file and what is wrong
        when the folder is not one."""
        path = Path(path)
        pipeline_path = path / PIPELINE_FILE
        if not pipeline_path.exists():
            raise ActokError(
                f"{path} has no {PIPELINE_FILE}: it holds a tokenizer but not the pipeline it was trained with"
            )
        spec = read_spec(pipeline_path)
        tokenizer = load_tokenizer(path)
        try:
            return cls(tokenizer, spec)
        except ActokError as exc:
            raise ActokError(f"{pipeline_path}: {exc}") from None

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the tokenizer folder plus `pipeline.json` (see `ActionTokenizer.save` for `overwrite`)."""
        path = self.tokenizer.save(path, overwrite=overwrite)
        (path / PIPELINE_FILE).write_text(json.dumps(self.pipeline, indent=2) + "\n")
        return path

    @property
    def pipeline(self) -> dict[str, Any]:
        """The `pipeline.json` object."""
        return self.spec.to_dict()

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def encoded_dims(self) -> list[int]:
        return self.spec.encoded_dims

    @property
    def normalizer(self) -> Normalizer:
        return self.spec.normalizer

    def encode(self, actions: np.ndarray, state: np.ndarray | None = None) -> list[list[int]]:
        """Raw chunks `[N, H, A]` (A = full action or encoded dims) and, with delta dims, the state at each
        chunk's first frame `[N, S]` -> token ids."""
        return self.tokenizer.encode(self.spec.apply(actions, state))

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
        raw = self.spec.restore(normalized, state)
        return (raw, valid) if return_valid else raw
