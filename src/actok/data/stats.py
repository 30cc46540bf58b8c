"""Per-dimension statistics of frames in one streaming pass: exact while the values fit in memory, a sketch beyond.

`FrameStats` takes frames `[n, D]` part by part (an episode, a file) in any order, and accumulators of
disjoint parts merge (`merge`), so the statistics are a reduction that runs file by file here or on Ray workers.

- Exact (the frames take at most `EXACT_STATS_BYTES`): the parts are kept and, at the end, put in their key order
  and passed to `compute_stats`, so the values are bit-identical to computing them on the whole array at once.
- Sketch (beyond it): min/max exact, count/mean/std from merged float64 moments (Chan et al.; exact up to
  rounding), quantiles from one KLL sketch per dimension (Apache DataSketches, `kll_doubles_sketch`, k =
  `SKETCH_K`). KLL is mergeable, its size does not grow with the data (~3k·8 bytes per dimension) and its
  rank error is bounded: with 99% confidence, the rank of a returned quantile is within `sketch_rank_error()`
  (1.5e-4 at k = 20,000) of the requested rank (q01: a value whose rank is in [0.00985, 0.01015]). KLL compacts
  with random bits, so sketched quantiles may differ from run to run within that bound.
"""

from __future__ import annotations

import numpy as np

from actok.data.normalize import QUANTILE_LEVELS, compute_stats
from actok.errors import ActokError

EXACT_STATS_BYTES = 512 * 2**20
SKETCH_K = 20_000


def _kll() -> type:
    try:
        from datasketches import kll_doubles_sketch
    except ImportError:
        raise ActokError(
            "the training frames exceed the exact-statistics budget and quantiles need the datasketches package: "
            "pip install datasketches"
        ) from None
    return kll_doubles_sketch


def sketch_rank_error() -> float:
    """The KLL sketches' normalized rank error bound for one quantile (99% confidence)."""
    return float(_kll().get_normalized_rank_error(SKETCH_K, False))


class FrameStats:
    """Statistics `names` of frames `[n, D]` added part by part. `exact=False` streams (see the module doc)."""

    def __init__(self, dim: int, names: tuple[str, ...], exact: bool):
        self.dim, self.names, self.exact = dim, tuple(names), exact
        self.parts: list[tuple[int, np.ndarray]] = []  # exact: (key, frames)
        self.count = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)  # sum of squared deviations from the mean
        self.low = np.full(dim, np.inf)
        self.high = np.full(dim, -np.inf)
        self.sketches = [_kll()(SKETCH_K) for _ in range(dim)] if not exact and self._quantiles else []

    @property
    def _quantiles(self) -> list[str]:
        return [n for n in self.names if n in QUANTILE_LEVELS]

    def add(self, frames: np.ndarray, key: int = 0) -> None:
        """Add frames `[n, D]`; in exact mode `key` orders the parts at the end (e.g. the episode's position)."""
        if self.exact:
            self.parts.append((key, frames))
            return
        values = np.asarray(frames, dtype=np.float64)
        self._merge_moments(len(values), values.mean(0), ((values - values.mean(0)) ** 2).sum(0))
        self.low, self.high = np.minimum(self.low, values.min(0)), np.maximum(self.high, values.max(0))
        for sketch, column in zip(self.sketches, values.T, strict=True):
            sketch.update(np.ascontiguousarray(column))

    def _merge_moments(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Chan et al.'s pairwise update of (count, mean, M2)."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    def merge(self, other: FrameStats) -> FrameStats:
        """Fold the statistics of `other` (disjoint frames) into these; returns self."""
        if self.exact:
            self.parts += other.parts
            return self
        self._merge_moments(other.count, other.mean, other.m2)
        self.low, self.high = np.minimum(self.low, other.low), np.maximum(self.high, other.high)
        for mine, theirs in zip(self.sketches, other.sketches, strict=True):
            mine.merge(theirs)
        return self

    def result(self) -> dict[str, np.ndarray]:
        """`{name: [D] float64}` (count: `[1]`)."""
        if self.exact:
            frames = np.concatenate([f for _, f in sorted(self.parts, key=lambda p: p[0])])
            return compute_stats(frames, self.names)
        if self.count == 0:
            raise ActokError("no frames to compute statistics from")
        out = {
            "min": self.low,
            "max": self.high,
            "mean": self.mean,
            "std": np.sqrt(self.m2 / self.count),
            "count": np.array([float(self.count)]),
        }
        for name in self._quantiles:
            out[name] = np.array([s.get_quantile(QUANTILE_LEVELS[name]) for s in self.sketches])
        return {n: out[n] for n in self.names}

    def __getstate__(self) -> dict:  # the sketches pickle as their DataSketches serialization (for Ray)
        state = self.__dict__.copy()
        state["sketches"] = [s.serialize() for s in self.sketches]
        return state

    def __setstate__(self, state: dict) -> None:
        state["sketches"] = [_kll().deserialize(b) for b in state["sketches"]]
        self.__dict__.update(state)
