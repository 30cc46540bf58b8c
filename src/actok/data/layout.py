"""How episodes become chunks, shared by the local reader and Ray's workers (picklable pieces): the `Layout` of
dims and delta settings, each episode's `EpisodePlan`, `episode_part` (check one episode and cut its kept windows),
and `ChunkArrays`, the two splits' arrays filled episode by episode."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actok.data.chunks import episode_chunks, sample_chunk_starts
from actok.data.lerobot import Episode
from actok.data.spec import delta_positions
from actok.data.stats import FrameStats
from actok.errors import ActokError


def _check_finite(episode: Episode, array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ActokError(
            f"non-finite {name} value ({array[row, col]}) in episode {episode.index}, "
            f"frame {int(episode.frame_index[row])}, dim {col}"
        )


@dataclass(frozen=True)
class Layout:
    """How one episode becomes chunks, and which of its frames feed the statistics (picklable, for Ray workers).

    `encoded`/`delta` index the action; `state_key` is read only with the delta transform; `stats_cols` are the
    action columns whose frame statistics are computed from the training episodes (none when the dataset has them)."""

    horizon: int
    sample_fraction: float
    action_dim: int
    encoded: list[int]
    delta: list[int]
    state_key: str | None
    stats_cols: list[int]
    delta_positions: list[int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta_positions", delta_positions(self.encoded, self.delta))


@dataclass(frozen=True)
class EpisodePlan:
    """One chunked episode: its position in the dataset's episode order (seeds its sampling), its split (0 train,
    1 held out), where its chunks go in that split's array, and which of its sampled chunks are kept (None: all)."""

    position: int
    split: int
    offset: int
    count: int  # chunks kept
    keep: np.ndarray | None


def episode_part(
    ep: Episode, layout: Layout, plan: EpisodePlan | None, stats: FrameStats | None, out: np.ndarray | None = None
) -> np.ndarray | None:
    """Check one episode and cut its kept chunks `[n, H, D]` (into `out` when given; None for an episode too short
    to chunk); a training episode's `stats_cols` frames go to `stats`."""
    _check_finite(ep, ep.action, "action")
    if layout.delta:
        _check_finite(ep, ep.state[:, layout.delta], layout.state_key)
    if plan is None:
        return None
    starts = sample_chunk_starts(len(ep) - layout.horizon + 1, layout.sample_fraction, plan.position)
    if plan.keep is not None:
        starts = starts[plan.keep]
    if stats is not None and plan.split == 0:
        stats.add(ep.action[:, layout.stats_cols], key=plan.position)
    delta_pos = layout.delta_positions
    # Selecting the encoded dims first is equivalent (the delta transform is per dim) and cheaper.
    if layout.encoded == list(range(layout.action_dim)):
        return episode_chunks(ep.action, ep.state, layout.horizon, starts, delta_pos, out=out)
    state = None
    if delta_pos:
        # The state laid out like the encoded action: delta dims in their positions, zeros elsewhere. Only the
        # delta columns are read, so a state narrower than the action (e.g. arm joints only) works.
        state = np.zeros((len(ep), len(layout.encoded)), dtype=ep.action.dtype)
        state[:, delta_pos] = ep.state[:, [layout.encoded[p] for p in delta_pos]]
    return episode_chunks(ep.action[:, layout.encoded], state, layout.horizon, starts, delta_pos, out=out)


@dataclass
class ChunkPlan:
    """Which episodes are read and where their chunks go: `episodes` maps every episode index to read (the first
    `max_episodes`) to its `EpisodePlan`, or None when it is shorter than the horizon."""

    episodes: dict[int, EpisodePlan | None]
    files: list[int]
    train_ids: list[int]
    hold_ids: list[int]
    skipped: list[int]
    sizes: tuple[int, int]  # chunks kept in the train and held-out splits
    sampled: tuple[int, int]  # chunks sampled in each split, before the max_chunks cap
    num_frames: int
    train_frames: int


class ChunkArrays:
    """The two splits' chunk arrays `[N, H, D]`, filled episode by episode, and the frame statistics merged in."""

    def __init__(self, plan: ChunkPlan, layout: Layout, dtype: np.dtype, stats: FrameStats | None):
        self.plan, self.stats = plan, stats
        self.arrays = [np.empty((n, layout.horizon, len(layout.encoded)), dtype=dtype) for n in plan.sizes]

    def slot(self, index: int) -> np.ndarray | None:
        """Where episode `index`'s chunks go (None for an episode too short to chunk)."""
        entry = self.plan.episodes[index]
        return None if entry is None else self.arrays[entry.split][entry.offset : entry.offset + entry.count]

    def put(self, index: int, chunks: np.ndarray | None, stats: FrameStats | None) -> None:
        """Store chunks and statistics computed elsewhere (a Ray worker)."""
        if chunks is not None:
            self.slot(index)[:] = chunks
        if stats is not None:
            self.stats.merge(stats)
