"""`ActionCodec`: a tokenizer plus the pipeline it was trained with, so raw actions go in and come out.

encode: raw chunk `[N, H, A or D]` (+ state at each chunk's first frame for delta dims) -> select encoded dims
-> delta -> normalize -> tokenize. decode: ids -> detokenize -> unnormalize -> undo delta.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Len

from actok.data.normalize import NormalizationMode, Normalizer
from actok.data.pipeline import ChunkSet
from actok.errors import ActokError
from actok.tokenizers import load_tokenizer
from actok.tokenizers.base import ActionTokenizer, PositiveInt
from actok.tokenizers.params import Matches, check_fields, check_value, read_json_object

PIPELINE_FILE = "pipeline.json"
# The fields of PIPELINE_FILE the codec uses (ChunkSet.pipeline_dict writes them), and what each must be.
PIPELINE_FIELDS = {
    "action_horizon": PositiveInt,
    "action_dim": PositiveInt,
    "encoded_dim_list": Annotated[list[Annotated[int, Ge(0)]], Len(1)],
    "delta_dims": Annotated[str, Matches(r"\d+(,\d+)*", "of comma-separated dims")] | None,
    "normalization": dict,
}


def check_pipeline(pipeline: Any, where: str | Path = "pipeline") -> tuple[dict[str, Any], Normalizer]:
    """The codec's fields of a pipeline dict, checked, and its normalizer; raises `ActokError` naming `where`
    (the file) and the bad field."""
    if not isinstance(pipeline, dict):
        raise ActokError(f"{where} must be a dict (ChunkSet.pipeline_dict()), got {type(pipeline).__name__}")
    fields = check_fields(where, pipeline, PIPELINE_FIELDS)
    dims = fields["encoded_dim_list"]
    if max(dims) >= fields["action_dim"]:
        raise ActokError(f"{where}: encoded_dim_list {dims} has dims outside action_dim {fields['action_dim']}")
    norm = check_fields(f"{where}: normalization", fields["normalization"], {"mode": str, "stats": dict})
    try:
        mode = NormalizationMode.parse(norm["mode"])
    except ActokError as exc:
        raise ActokError(f"{where}: {exc}") from None
    stat = Annotated[list[float], Len(len(dims), len(dims))]  # one finite value per encoded dim
    stats = {
        k: check_value(f"{where}: normalization stats {k}", stat, norm["stats"].get(k)) for k in mode.required_stats
    }
    _check_stat_order(where, {k: np.asarray(v, dtype=np.float64) for k, v in stats.items()})
    return fields, Normalizer(mode, stats)


# Pairs of statistics the normalizations divide by the difference of: the lower one must not exceed the upper one,
# and their difference must be a finite number (1e308 - -1e308 overflows to inf and every value to 0 or NaN).
_ORDERED = (("min", "max"), ("q01", "q99"), ("q10", "q90"))


def _check_stat_order(where: str | Path, stats: dict[str, np.ndarray]) -> None:
    for lo, hi in _ORDERED:
        if lo in stats and hi in stats:
            if (stats[lo] > stats[hi]).any():
                raise ActokError(
                    f"{where}: normalization stats {lo} exceed {hi} in dims {np.flatnonzero(stats[lo] > stats[hi]).tolist()}"
                )
            with np.errstate(over="ignore"):
                if not np.isfinite(stats[hi] - stats[lo]).all():
                    raise ActokError(f"{where}: normalization stats {hi} - {lo} overflow (values near 1e308)")
    if "std" in stats and (stats["std"] < 0).any():
        raise ActokError(f"{where}: normalization stats std must be >= 0")


def read_pipeline(path: str | Path) -> dict[str, Any]:
    """The pipeline dict in a `PIPELINE_FILE`, checked (`check_pipeline`); `ActokError` naming the file when it is
    missing, not JSON, or a field is missing or of the wrong type."""
    pipeline = read_json_object(Path(path))
    check_pipeline(pipeline, path)
    return pipeline


class ActionCodec:
    """Encode raw robot actions to tokens and decode tokens to raw actions, end to end."""

    def __init__(self, tokenizer: ActionTokenizer, pipeline: dict):
        fields, self.normalizer = check_pipeline(pipeline)
        if tokenizer.horizon is not None and (tokenizer.horizon, tokenizer.action_dim) != (
            fields["action_horizon"],
            len(fields["encoded_dim_list"]),
        ):
            raise ActokError(
                f"the pipeline gives chunks [H={fields['action_horizon']}, D={len(fields['encoded_dim_list'])}] but "
                f"the {tokenizer.name} tokenizer was fitted on [H={tokenizer.horizon}, D={tokenizer.action_dim}]"
            )
        self.tokenizer = tokenizer
        self.pipeline = pipeline
        self.encoded_dims: list[int] = fields["encoded_dim_list"]
        delta = fields["delta_dims"]
        delta_set = {int(d) for d in delta.split(",")} if delta else set()
        self.delta_positions = [i for i, d in enumerate(self.encoded_dims) if d in delta_set]

    @classmethod
    def from_chunks(cls, tokenizer: ActionTokenizer, chunks: ChunkSet) -> ActionCodec:
        return cls(tokenizer, chunks.pipeline_dict())

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
        pipeline = read_pipeline(pipeline_path)
        tokenizer = load_tokenizer(path)
        try:
            return cls(tokenizer, pipeline)
        except ActokError as exc:
            raise ActokError(f"{pipeline_path}: {exc}") from None

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the tokenizer folder plus `pipeline.json` (see `ActionTokenizer.save` for `overwrite`)."""
        path = self.tokenizer.save(path, overwrite=overwrite)
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
            dims = [self.encoded_dims[p] for p in self.delta_positions]
            try:
                arr = np.asarray(state, dtype=np.float64)
            except (ValueError, TypeError):
                arr = None
            if (
                arr is None
                or arr.ndim != 2
                or arr.shape[0] != n
                or arr.shape[1] <= max(dims)
                or not np.isfinite(arr).all()
            ):
                got = type(state).__name__ if arr is None else f"shape {arr.shape}"
                raise ActokError(
                    f"state must be finite numbers [N={n}, state_dim > {max(dims)}] (the delta dims are {dims}), got {got}"
                )
            state = arr
            offset[:, self.delta_positions] = state[:, dims]
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
