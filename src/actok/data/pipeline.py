"""The chunk pipeline: episodes -> episode-level train/held-out split -> chunks -> normalized chunks.

Matches `lerobot-train-tokenizer` (REFERENCES §1) with two deliberate improvements:
(a) with the delta transform on, the stats of the delta dims come from the delta-transformed training chunks
    (LeRobot uses the stats of absolute actions, the wrong scale);
(b) `holdout_fraction` of the episodes (seeded) never reaches `fit`; `holdout_fraction=0` reproduces LeRobot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from actok.data import stats as stats_module
from actok.data.chunks import (
    dims_to_spec,
    parse_delta_dims,
    parse_dims_spec,
    parse_encoded_dims,
)
from actok.data.layout import ChunkArrays, ChunkPlan, EpisodePlan, Layout, episode_part
from actok.data.lerobot import EpisodeTable, LeRobotDatasetReader
from actok.data.normalize import QUANTILE_LEVELS, NormalizationMode, Normalizer, compute_stats
from actok.data.spec import PipelineSpec
from actok.data.stats import FrameStats
from actok.errors import ActokError
from actok.executor import check_engine


@dataclass
class ChunkConfig:
    """How chunks are cut from a dataset. Field names match the CLI flags."""

    action_horizon: int = 10
    encoded_dims: str | None = None  # None: every action dim
    clip_encoded_dims: bool = False  # cut an (implicit default) range to the action dim instead of failing
    delta_dims: str | None = None
    use_delta_transform: bool | None = None  # None: on exactly when delta_dims is given
    state_key: str = "observation.state"
    normalization_mode: str = "QUANTILES"
    sample_fraction: float = 0.1
    max_episodes: int | None = None
    max_chunks: int | None = None  # a uniform seeded cap on each split's chunks (None: keep every sampled chunk)
    holdout_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Raise `ActokError` naming the first field that is of the wrong type or out of range."""
        _check_integer("action_horizon", self.action_horizon, minimum=1)
        for name in ("max_episodes", "max_chunks"):
            if getattr(self, name) is not None:
                _check_integer(name, getattr(self, name), minimum=1)
        _check_integer("seed", self.seed, minimum=0)
        _check_fraction("sample_fraction", self.sample_fraction, "(0, 1]", lambda x: 0.0 < x <= 1.0)
        _check_fraction("holdout_fraction", self.holdout_fraction, "[0, 1)", lambda x: 0.0 <= x < 1.0)
        for name in ("encoded_dims", "delta_dims"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ActokError(f"{name} must be a string such as '0:6,7:14' or None, got {value!r}")
        if self.encoded_dims is not None:
            parse_dims_spec(self.encoded_dims)
        if self.delta_dims is not None:
            parse_delta_dims(self.delta_dims, None)
        if not isinstance(self.clip_encoded_dims, bool):
            raise ActokError(f"clip_encoded_dims must be true or false, got {self.clip_encoded_dims!r}")
        if self.use_delta_transform is not None and not isinstance(self.use_delta_transform, bool):
            raise ActokError(f"use_delta_transform must be true, false or None, got {self.use_delta_transform!r}")
        if not isinstance(self.state_key, str) or not self.state_key:
            raise ActokError(f"state_key must be a column name such as 'observation.state', got {self.state_key!r}")
        NormalizationMode.parse(self.normalization_mode)


def _check_integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ActokError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_fraction(name: str, value: object, interval: str, inside: Callable[[float], bool]) -> None:
    real = not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)
    if not (real and math.isfinite(value) and inside(float(value))):
        raise ActokError(f"{name} must be in {interval}, got {value!r}")


@dataclass
class ChunkSet:
    """Chunks of one dataset, split by episode. Raw chunks are in action units (after the delta transform);
    normalized ones are what a tokenizer sees. All chunk arrays are `[N, H, D]` with D = len(encoded_dims)."""

    config: ChunkConfig
    spec: PipelineSpec
    train_raw: np.ndarray
    holdout_raw: np.ndarray
    train: np.ndarray
    holdout: np.ndarray
    train_episodes: list[int]
    holdout_episodes: list[int]
    skipped_episodes: list[int]
    num_frames: int
    notes: list[str] = field(default_factory=list)

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    @property
    def encoded_dims(self) -> list[int]:
        return self.spec.encoded_dims

    @property
    def delta_dims(self) -> list[int]:
        """Indices into the full action vector, empty when no delta transform."""
        return self.spec.delta_dims

    @property
    def stats_source(self) -> dict[str, str]:
        return self.spec.stats_source

    @property
    def normalizer(self) -> Normalizer:
        return self.spec.normalizer

    def pipeline_dict(self) -> dict:
        """What a saved tokenizer records so raw actions can be encoded and decoded end to end."""
        return self.spec.to_dict()

    def config_dict(self) -> dict:
        out = asdict(self.config)
        out["encoded_dims"] = dims_to_spec(self.encoded_dims)
        out["use_delta_transform"] = bool(self.delta_dims)
        return out


def split_episodes(indices: list[int], holdout_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded episode-level split -> (train, held-out), each sorted. At least one episode on each side
    whenever `holdout_fraction > 0` and there are two or more episodes."""
    if holdout_fraction <= 0 or len(indices) < 2:
        return sorted(indices), []
    n_hold = min(max(1, round(holdout_fraction * len(indices))), len(indices) - 1)
    perm = np.random.default_rng(seed).permutation(len(indices))
    hold = sorted(indices[i] for i in perm[:n_hold])
    held = set(hold)
    return [i for i in indices if i not in held], hold


def _layout(reader: LeRobotDatasetReader, config: ChunkConfig) -> Layout:
    """Dims and delta settings of `config` checked against the dataset's columns (read from its first rows)."""
    wants_delta = bool(config.delta_dims and str(config.delta_dims).strip()) and config.use_delta_transform is not False
    if config.use_delta_transform and not wants_delta:
        raise ActokError("use_delta_transform is on but delta_dims is empty: pass --delta-dims, e.g. '0,1,2'")
    if wants_delta and config.state_key not in reader.columns:
        raise ActokError(
            f"the delta transform needs the state column {config.state_key!r}, which {reader.repo_id} lacks; "
            f"available columns: {', '.join(reader.columns)}"
        )
    reader.episode_table()  # the index checks come first
    action_dim = reader.column_width("action")[0]
    encoded = (
        list(range(action_dim))
        if config.encoded_dims is None
        else parse_encoded_dims(config.encoded_dims, action_dim, clip=config.clip_encoded_dims)
    )
    delta = parse_delta_dims(config.delta_dims, action_dim) if wants_delta else []
    state_width = reader.column_width(config.state_key)[0] if wants_delta else None
    if delta and state_width <= max(delta):
        raise ActokError(f"delta_dims reach dim {max(delta)} but {config.state_key!r} has {state_width} dims")
    reader.check_info(action_dim, (config.state_key, state_width) if wants_delta else None)
    return Layout(
        horizon=int(config.action_horizon),
        sample_fraction=float(config.sample_fraction),
        action_dim=action_dim,
        encoded=encoded,
        delta=delta,
        state_key=config.state_key if wants_delta else None,
        stats_cols=[],
    )


def _sample_counts(lengths: np.ndarray, horizon: int, sample_fraction: float) -> np.ndarray:
    """Chunks `sample_chunk_starts` keeps per episode `[E]`, without drawing them."""
    n_chunks = lengths - horizon + 1
    if sample_fraction >= 1.0:
        return n_chunks
    return np.maximum(1, (n_chunks * sample_fraction).astype(np.int64))


def _cap(counts: np.ndarray, max_chunks: int | None, rng: np.random.Generator) -> list[np.ndarray | None]:
    """A uniform random subset of `max_chunks` of the `counts.sum()` sampled chunks of a split (episodes in order),
    as each episode's kept positions (None everywhere when the split has no more than `max_chunks`)."""
    total = int(counts.sum())
    if max_chunks is None or total <= max_chunks:
        return [None] * len(counts)
    keep = np.sort(rng.choice(total, size=max_chunks, replace=False))
    bounds = np.searchsorted(keep, np.concatenate([[0], np.cumsum(counts)]))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return [keep[a:b] - s for a, b, s in zip(bounds[:-1], bounds[1:], starts, strict=True)]


def plan_chunks(table: EpisodeTable, config: ChunkConfig) -> ChunkPlan:
    """Split the episodes and count, per episode, the chunks kept (LeRobot's per-episode seeded sampling, then the
    `max_chunks` cap per split), from the episode table alone."""
    horizon = int(config.action_horizon)
    n = len(table.index) if config.max_episodes is None else min(int(config.max_episodes), len(table.index))
    index, length = table.index[:n], table.length[:n]
    long_enough = length >= horizon
    if not long_enough.any():
        longest = int(length.max())
        raise ActokError(
            f"action_horizon {horizon} is longer than every episode (longest has {longest} frames); "
            f"use --action-horizon {longest} or less"
        )
    position = {int(i): p for p, i in enumerate(table.index[:n].tolist())}
    eligible = index[long_enough].tolist()
    sampled = _sample_counts(length[long_enough], horizon, float(config.sample_fraction)).tolist()
    counts = dict(zip(eligible, sampled, strict=True))
    train_ids, hold_ids = split_episodes(eligible, float(config.holdout_fraction), int(config.seed))
    plans: dict[int, EpisodePlan | None] = dict.fromkeys(index.tolist())
    sizes, sampled_sizes = [], []
    for split, ids in enumerate((train_ids, hold_ids)):
        split_counts = np.array([counts[i] for i in ids], dtype=np.int64)
        sampled_sizes.append(int(split_counts.sum()))
        keeps = _cap(split_counts, config.max_chunks, np.random.default_rng(int(config.seed) + split))
        kept = np.array([c if k is None else len(k) for c, k in zip(split_counts, keeps, strict=True)], np.int64)
        offsets = np.concatenate([[0], np.cumsum(kept)]).tolist()
        for i, keep, offset, count in zip(ids, keeps, offsets, kept.tolist(), strict=False):
            plans[i] = EpisodePlan(position=position[i], split=split, offset=offset, count=count, keep=keep)
        sizes.append(offsets[-1])
    lengths = dict(zip(index.tolist(), length.tolist(), strict=True))
    return ChunkPlan(
        episodes=plans,
        files=sorted(set(table.file[:n].tolist())),
        train_ids=train_ids,
        hold_ids=hold_ids,
        skipped=index[~long_enough].tolist(),
        sizes=(sizes[0], sizes[1]),
        sampled=(sampled_sizes[0], sampled_sizes[1]),
        num_frames=int(length.sum()),
        train_frames=sum(lengths[i] for i in train_ids),
    )


def _read_local(reader: LeRobotDatasetReader, layout: Layout, plan: ChunkPlan, out: ChunkArrays) -> None:
    """File by file: the needed columns of the files that hold the planned episodes, one file in memory at a time."""
    wanted = None if len(plan.episodes) == len(reader.episode_table().index) else set(plan.episodes)
    for number in plan.files:
        for ep in reader.read_file(number, layout.state_key, wanted):
            episode_part(ep, layout, plan.episodes[ep.index], out.stats, out=out.slot(ep.index))


def build_chunks(
    reader: LeRobotDatasetReader, config: ChunkConfig, *, engine: str = "local", ray_address: str | None = None
) -> ChunkSet:
    """Run the whole pipeline on a dataset. Raises `ActokError` with a one-line reason on bad input.

    Memory is bounded by what is kept (the chunks, plus the training frames of dims whose statistics the dataset
    lacks, up to `stats.EXACT_STATS_BYTES`, beyond which those statistics are sketched), not by the dataset:
    `engine="local"` reads one data file at a time; `engine="ray"` reads with Ray Data on a local instance or the
    cluster at `ray_address` and chunks the episodes in parallel. Both give the same chunks and statistics."""
    config.validate()
    check_engine(engine, ray_address)
    mode = NormalizationMode.parse(config.normalization_mode)
    layout = _layout(reader, config)
    plan = plan_chunks(reader.episode_table(), config)
    wanted = _wanted_stats(reader, mode, layout)
    layout = replace(layout, stats_cols=wanted.columns)
    stats = None
    if wanted.missing and wanted.columns:
        dtype_size = reader.column_width("action")[1].itemsize
        exact = plan.train_frames * len(wanted.columns) * dtype_size <= stats_module.EXACT_STATS_BYTES
        stats = FrameStats(len(wanted.columns), wanted.missing, exact)
    out = ChunkArrays(plan, layout, reader.column_width("action")[1], stats)
    if engine == "local":
        _read_local(reader, layout, plan, out)
    else:
        from actok.data.distributed import read_on_ray

        read_on_ray(reader, layout, plan, out, ray_address)
    train_raw, holdout_raw = out.arrays
    normalizer, sources, notes = _fit_normalizer(mode, layout, wanted, stats, train_raw)
    for name, kept, sampled in zip(("training", "held-out"), plan.sizes, plan.sampled, strict=True):
        if kept < sampled:
            notes.append(f"max_chunks {config.max_chunks}: kept {kept} of the {sampled} sampled {name} chunks")
    if (
        config.clip_encoded_dims
        and config.encoded_dims is not None
        and dims_to_spec(layout.encoded) != config.encoded_dims
    ):
        notes.append(
            f"the default encoded_dims '{config.encoded_dims}' was cut to the {layout.action_dim}-D action: "
            f"{dims_to_spec(layout.encoded)} (pass --encoded-dims to choose)"
        )
    spec = PipelineSpec(
        horizon=layout.horizon,
        action_dim=layout.action_dim,
        encoded_dims=layout.encoded,
        delta_dims=layout.delta,
        normalizer=normalizer,
        state_key=config.state_key,
        stats_source=sources,
    )
    return ChunkSet(
        config=config,
        spec=spec,
        train_raw=train_raw,
        holdout_raw=holdout_raw,
        train=normalizer.normalize(train_raw),
        holdout=normalizer.normalize(holdout_raw),
        train_episodes=plan.train_ids,
        holdout_episodes=plan.hold_ids,
        skipped_episodes=plan.skipped,
        num_frames=plan.num_frames,
        notes=notes,
    )


@dataclass(frozen=True)
class _WantedStats:
    """The statistics a normalization needs: those the dataset has, those computed from the training frames of the
    absolute dims (`missing`, over action `columns`); the delta dims' always come from the training chunks."""

    needed: tuple[str, ...]
    dataset: dict[str, np.ndarray]
    source: str | None
    missing: tuple[str, ...]
    columns: list[int]


def _wanted_stats(reader: LeRobotDatasetReader, mode: NormalizationMode, layout: Layout) -> _WantedStats:
    needed = mode.required_stats
    if not needed:
        return _WantedStats((), {}, None, (), [])
    dataset_stats, dataset_source = reader.stats(("action",))
    action_stats = dataset_stats.get("action", {})
    for name in needed:
        if name in action_stats and len(action_stats[name]) != layout.action_dim:
            raise ActokError(
                f"action {name} in {dataset_source} has {len(action_stats[name])} values but the action has "
                f"{layout.action_dim} dims"
            )
    delta_pos = set(layout.delta_positions)
    absolute = [d for i, d in enumerate(layout.encoded) if i not in delta_pos]
    missing = tuple(n for n in needed if n not in action_stats)
    return _WantedStats(needed, action_stats, dataset_source, missing, absolute if missing else [])


def _fit_normalizer(
    mode: NormalizationMode, layout: Layout, wanted: _WantedStats, frames: FrameStats | None, train_raw: np.ndarray
) -> tuple[Normalizer, dict[str, str], list[str]]:
    """Per-dimension stats for `mode`: dataset stats where present; computed from the training episodes' frames
    where missing; computed from the delta-transformed training chunks for delta dims."""
    if not wanted.needed:
        return Normalizer(mode), {}, []
    delta_pos = layout.delta_positions
    absolute_pos = [i for i in range(len(layout.encoded)) if i not in set(delta_pos)]
    frame_stats = frames.result() if frames is not None else {}
    sketched = frames is not None and not frames.exact
    chunk_stats = (
        compute_stats(train_raw[:, :, delta_pos].reshape(-1, len(delta_pos)), wanted.needed) if delta_pos else {}
    )
    stats, sources, notes = {}, {}, []
    for name in wanted.needed:
        values = np.empty(len(layout.encoded))
        if name in wanted.missing:
            computed = "computed from the training episodes' frames"
            if sketched and name in QUANTILE_LEVELS:
                computed += f" (KLL sketch, rank error <= {stats_module.sketch_rank_error():.1e})"
            if absolute_pos:
                values[absolute_pos] = frame_stats[name]
                notes.append(f"the dataset has no action {name}: {computed.replace('computed', 'computed it')}")
            parts = [computed] if absolute_pos else []
        else:
            values[:] = wanted.dataset[name][layout.encoded]
            parts = [wanted.source] if absolute_pos else []
        if delta_pos:
            values[delta_pos] = chunk_stats[name]
            parts.append("delta dims: computed from the delta-transformed training chunks")
        stats[name] = values
        sources[name] = "; ".join(parts)
    return Normalizer(mode, stats), sources, notes
