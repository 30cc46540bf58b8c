"""`PipelineSpec`: how raw actions become a tokenizer's input, typed, in one place.

A saved tokenizer folder records it as `pipeline.json` (`to_dict`/`from_dict`, the keys actok has always
written, so older files load); `ChunkSet` and `ActionCodec` hold one; `apply` runs it on raw chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Len

from actok.data.chunks import dims_to_spec
from actok.data.normalize import NormalizationMode, Normalizer
from actok.errors import ActokError
from actok.tokenizers.params import Matches, check_fields, check_value

DEFAULT_STATE_KEY = "observation.state"
_PositiveInt = Annotated[int, Ge(1)]
# The fields of a pipeline dict that are read back, and what each must be (the rest are descriptive copies).
_FIELDS = {
    "action_horizon": _PositiveInt,
    "action_dim": _PositiveInt,
    "encoded_dim_list": Annotated[list[Annotated[int, Ge(0)]], Len(1)],
    "delta_dims": Annotated[str, Matches(r"\d+(,\d+)*", "of comma-separated dims")] | None,
    "state_key": str | None,
    "normalization": dict,
    "stats_source": dict | str | None,
}
# Pairs of statistics the normalizations divide by the difference of: the lower one must not exceed the upper one,
# and their difference must be a finite number (1e308 - -1e308 overflows to inf and every value to 0 or NaN).
_ORDERED = (("min", "max"), ("q01", "q99"), ("q10", "q90"))


def delta_positions(encoded_dims: list[int], delta_dims: list[int]) -> list[int]:
    """Positions within the encoded dims that the delta transform touches."""
    delta = set(delta_dims)
    return [i for i, d in enumerate(encoded_dims) if d in delta]


@dataclass(frozen=True)
class PipelineSpec:
    """Chunks `[N, H, D]`: H = `horizon` frames of the `encoded_dims` (indices into the `action_dim`-wide action),
    the `delta_dims` (indices into the action, empty without the delta transform) made relative to `state_key` at
    each chunk's first frame, then normalized by `normalizer`. `stats_source` says where each statistic came from."""

    horizon: int
    action_dim: int
    encoded_dims: list[int]
    delta_dims: list[int]
    normalizer: Normalizer
    state_key: str = DEFAULT_STATE_KEY
    stats_source: dict[str, str] | str = field(default_factory=dict)  # descriptive: kept as the file has it
    delta_positions: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta_positions", delta_positions(self.encoded_dims, self.delta_dims))

    def to_dict(self) -> dict[str, Any]:
        """The `pipeline.json` object."""
        return {
            "action_horizon": self.horizon,
            "action_dim": self.action_dim,
            "encoded_dims": dims_to_spec(self.encoded_dims),
            "encoded_dim_list": list(self.encoded_dims),
            "use_delta_transform": bool(self.delta_dims),
            "delta_dims": ",".join(map(str, self.delta_dims)) or None,
            "state_key": self.state_key,
            "normalization": self.normalizer.to_dict(),
            "stats_source": self.stats_source,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "pipeline") -> PipelineSpec:
        """A spec from a `pipeline.json` object, checked; `ActokError` naming `where` (the file) and the bad field."""
        if not isinstance(data, dict):
            raise ActokError(f"{where} must be a dict (PipelineSpec.to_dict()), got {type(data).__name__}")
        fields = check_fields(where, data, _FIELDS)
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
            k: np.asarray(check_value(f"{where}: normalization stats {k}", stat, norm["stats"].get(k)), np.float64)
            for k in mode.required_stats
        }
        _check_stat_order(where, stats)
        delta = fields["delta_dims"]
        return cls(
            horizon=fields["action_horizon"],
            action_dim=fields["action_dim"],
            encoded_dims=dims,
            delta_dims=[int(d) for d in delta.split(",")] if delta else [],
            normalizer=Normalizer(mode, stats),
            state_key=fields["state_key"] or DEFAULT_STATE_KEY,
            stats_source=fields["stats_source"] or {},
        )

    def mismatches(self, other: PipelineSpec) -> list[str]:
        """What `other` (the requested pipeline) does differently from this one (a tokenizer's), one line each:
        horizon, encoded dims, delta dims, normalization mode."""
        mine, theirs = self.to_dict(), other.to_dict()
        out = [
            f"{key}: tokenizer has {mine[key]!r}, requested {theirs[key]!r}"
            for key in ("action_horizon", "encoded_dims", "delta_dims")
            if mine[key] != theirs[key]
        ]
        if self.normalizer.mode is not other.normalizer.mode:
            out.append(
                f"normalization_mode: tokenizer has {self.normalizer.mode.value}, requested {other.normalizer.mode.value}"
            )
        return out

    def apply(self, chunks: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        """Raw chunks `[N, H, A or D]` (the full action or the encoded dims) and, with delta dims, the state at each
        chunk's first frame `[N, S]` -> normalized chunks `[N, H, D]` float64, what the tokenizer sees."""
        selected = self.select(chunks)
        return self.normalizer.normalize(selected - self.state_offset(state, len(selected))[:, None, :])

    def restore(self, normalized: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        """Inverse of `apply` (up to the normalizer's clip): normalized `[N, H, D]` -> raw action units."""
        normalized = np.asarray(normalized, dtype=np.float64)
        return self.normalizer.unnormalize(normalized) + self.state_offset(state, len(normalized))[:, None, :]

    def select(self, actions: np.ndarray) -> np.ndarray:
        """Raw chunks `[N, H, A or D]` -> `[N, H, D]` float64 over the encoded dims."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 3:
            raise ActokError(f"expected raw action chunks [N, H, A], got shape {actions.shape}")
        if actions.shape[-1] == len(self.encoded_dims):
            return actions
        if actions.shape[-1] == self.action_dim:
            return actions[..., self.encoded_dims]
        raise ActokError(
            f"action chunks have {actions.shape[-1]} dims; expected the full action ({self.action_dim}) "
            f"or the encoded dims ({len(self.encoded_dims)})"
        )

    def state_offset(self, state: np.ndarray | None, n: int) -> np.ndarray:
        """`[N, D]` offsets subtracted by the delta transform (zero outside the delta dims)."""
        offset = np.zeros((n, len(self.encoded_dims)))
        if not self.delta_positions:
            return offset
        if state is None:
            raise ActokError("this pipeline uses the delta transform: pass state=[N, state_dim]")
        dims = [self.encoded_dims[p] for p in self.delta_positions]
        try:
            arr = np.asarray(state, dtype=np.float64)
        except (ValueError, TypeError):
            arr = None
        if arr is None or arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] <= max(dims) or not np.isfinite(arr).all():
            got = type(state).__name__ if arr is None else f"shape {arr.shape}"
            raise ActokError(
                f"state must be finite numbers [N={n}, state_dim > {max(dims)}] (the delta dims are {dims}), got {got}"
            )
        offset[:, self.delta_positions] = arr[:, dims]
        return offset


def _check_stat_order(where: str, stats: dict[str, np.ndarray]) -> None:
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
