"""The chunk pipeline: episodes -> episode-level train/held-out split -> chunks -> normalized chunks.

Matches `lerobot-train-tokenizer` (REFERENCES §1) with two deliberate improvements:
(a) with the delta transform on, the stats of the delta dims come from the delta-transformed training chunks
    (LeRobot uses the stats of absolute actions, the wrong scale);
(b) `holdout_fraction` of the episodes (seeded) never reaches `fit`; `holdout_fraction=0` reproduces LeRobot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from actok.data.chunks import (
    collect_chunks,
    dims_to_spec,
    parse_delta_dims,
    parse_dims_spec,
    parse_encoded_dims,
)
from actok.data.lerobot import Episode, LeRobotDatasetReader
from actok.data.normalize import NormalizationMode, Normalizer, compute_stats
from actok.errors import ActokError


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
    holdout_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Raise `ActokError` naming the first field that is of the wrong type or out of range."""
        _check_integer("action_horizon", self.action_horizon, minimum=1)
        if self.max_episodes is not None:
            _check_integer("max_episodes", self.max_episodes, minimum=1)
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
    action_dim: int
    encoded_dims: list[int]
    delta_dims: list[int]  # indices into the full action vector, empty when no delta transform
    normalizer: Normalizer
    stats_source: dict[str, str]
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
        return int(self.config.action_horizon)

    @property
    def delta_positions(self) -> list[int]:
        """Positions within the encoded dims that are delta-transformed."""
        return [i for i, d in enumerate(self.encoded_dims) if d in set(self.delta_dims)]

    def pipeline_dict(self) -> dict:
        """What a saved tokenizer records so raw actions can be encoded and decoded end to end."""
        return {
            "action_horizon": self.horizon,
            "action_dim": self.action_dim,
            "encoded_dims": dims_to_spec(self.encoded_dims),
            "encoded_dim_list": self.encoded_dims,
            "use_delta_transform": bool(self.delta_dims),
            "delta_dims": ",".join(map(str, self.delta_dims)) or None,
            "state_key": self.config.state_key,
            "normalization": self.normalizer.to_dict(),
            "stats_source": self.stats_source,
        }

    def config_dict(self) -> dict:
        out = asdict(self.config)
        out["encoded_dims"] = dims_to_spec(self.encoded_dims)
        out["use_delta_transform"] = bool(self.delta_dims)
        return out


def _check_finite(episode: Episode, array: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ActokError(
            f"non-finite {name} value ({array[row, col]}) in episode {episode.index}, "
            f"frame {int(episode.frame_index[row])}, dim {col}"
        )


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


def build_chunks(reader: LeRobotDatasetReader, config: ChunkConfig) -> ChunkSet:
    """Run the whole pipeline on a dataset. Raises `ActokError` with a one-line reason on bad input."""
    config.validate()
    mode = NormalizationMode.parse(config.normalization_mode)
    horizon = int(config.action_horizon)
    wants_delta = bool(config.delta_dims and str(config.delta_dims).strip()) and config.use_delta_transform is not False
    if config.use_delta_transform and not wants_delta:
        raise ActokError("use_delta_transform is on but delta_dims is empty: pass --delta-dims, e.g. '0,1,2'")

    if wants_delta and config.state_key not in reader.columns:
        raise ActokError(
            f"the delta transform needs the state column {config.state_key!r}, which {reader.repo_id} lacks; "
            f"available columns: {', '.join(reader.columns)}"
        )
    episodes = reader.episodes(config.state_key if wants_delta else None)
    # LeRobot seeds each episode's sampling with its position in the loop over the dataset's episodes.
    position = {ep.index: i for i, ep in enumerate(episodes)}
    if config.max_episodes is not None:
        episodes = episodes[: int(config.max_episodes)]
    action_dim = episodes[0].action.shape[1]
    encoded = (
        list(range(action_dim))
        if config.encoded_dims is None
        else parse_encoded_dims(config.encoded_dims, action_dim, clip=config.clip_encoded_dims)
    )
    delta = parse_delta_dims(config.delta_dims, action_dim) if wants_delta else []
    if delta and episodes[0].state.shape[1] <= max(delta):
        raise ActokError(
            f"delta_dims reach dim {max(delta)} but {config.state_key!r} has {episodes[0].state.shape[1]} dims"
        )
    for ep in episodes:
        _check_finite(ep, ep.action, "action")
        if delta:
            _check_finite(ep, ep.state[:, delta], config.state_key)

    eligible = [ep for ep in episodes if len(ep) >= horizon]
    skipped = [ep.index for ep in episodes if len(ep) < horizon]
    if not eligible:
        longest = max(len(ep) for ep in episodes)
        raise ActokError(
            f"action_horizon {horizon} is longer than every episode (longest has {longest} frames); "
            f"use --action-horizon {longest} or less"
        )
    by_index = {ep.index: ep for ep in eligible}
    delta_pos = [i for i, d in enumerate(encoded) if d in set(delta)]
    train_ids, hold_ids = split_episodes(list(by_index), float(config.holdout_fraction), int(config.seed))

    def delta_state(ep: Episode) -> np.ndarray | None:
        """The state laid out like the encoded action: delta dims in their positions, zeros elsewhere. Only the
        delta columns are read, so a state narrower than the action (e.g. arm joints only) works."""
        if not delta_pos:
            return None
        out = np.zeros((len(ep), len(encoded)), dtype=ep.action.dtype)
        out[:, delta_pos] = ep.state[:, [encoded[p] for p in delta_pos]]
        return out

    def chunks_of(ids: list[int]) -> np.ndarray:
        # Selecting the encoded dims first is equivalent (the delta transform is per dim) and cheaper.
        if encoded == list(range(action_dim)):
            episodes_ = [(position[i], by_index[i].action, by_index[i].state) for i in ids]
        else:
            episodes_ = [(position[i], by_index[i].action[:, encoded], delta_state(by_index[i])) for i in ids]
        if not episodes_:
            return np.zeros((0, horizon, len(encoded)), dtype=eligible[0].action.dtype)
        return collect_chunks(episodes_, horizon, float(config.sample_fraction), delta_pos)

    train_raw, holdout_raw = chunks_of(train_ids), chunks_of(hold_ids)
    normalizer, sources, notes = _fit_normalizer(
        reader, mode, encoded, delta, train_raw, [by_index[i].action for i in train_ids]
    )
    if config.clip_encoded_dims and config.encoded_dims is not None and dims_to_spec(encoded) != config.encoded_dims:
        notes.append(
            f"the default encoded_dims '{config.encoded_dims}' was cut to the {action_dim}-D action: "
            f"{dims_to_spec(encoded)} (pass --encoded-dims to choose)"
        )
    return ChunkSet(
        config=config,
        action_dim=action_dim,
        encoded_dims=encoded,
        delta_dims=delta,
        normalizer=normalizer,
        stats_source=sources,
        train_raw=train_raw,
        holdout_raw=holdout_raw,
        train=normalizer.normalize(train_raw),
        holdout=normalizer.normalize(holdout_raw),
        train_episodes=train_ids,
        holdout_episodes=hold_ids,
        skipped_episodes=skipped,
        num_frames=sum(len(ep) for ep in episodes),
        notes=notes,
    )


def _fit_normalizer(
    reader: LeRobotDatasetReader,
    mode: NormalizationMode,
    encoded: list[int],
    delta: list[int],
    train_raw: np.ndarray,
    train_actions: list[np.ndarray],
) -> tuple[Normalizer, dict[str, str], list[str]]:
    """Per-dimension stats for `mode`: dataset stats where present; computed from the training episodes
    where missing; computed from the delta-transformed training chunks for delta dims."""
    needed = mode.required_stats
    if not needed:
        return Normalizer(mode), {}, []
    dataset_stats, dataset_source = reader.stats(("action",))
    action_stats = dataset_stats.get("action", {})
    action_dim = train_actions[0].shape[1]
    delta_pos = [i for i, d in enumerate(encoded) if d in set(delta)]
    absolute_pos = [i for i in range(len(encoded)) if i not in set(delta_pos)]
    for name in needed:
        if name in action_stats and len(action_stats[name]) != action_dim:
            raise ActokError(
                f"action {name} in {dataset_source} has {len(action_stats[name])} values but the action has "
                f"{action_dim} dims"
            )
    missing = [n for n in needed if n not in action_stats]
    # Compute only what is needed: frame stats for absolute dims the dataset lacks, chunk stats for delta dims.
    frame_stats = {}
    if missing and absolute_pos:
        frames = np.concatenate(train_actions)[:, [encoded[i] for i in absolute_pos]]
        frame_stats = compute_stats(frames, tuple(missing))
    chunk_stats = compute_stats(train_raw[:, :, delta_pos].reshape(-1, len(delta_pos)), needed) if delta_pos else {}
    stats, sources, notes = {}, {}, []
    for name in needed:
        values = np.empty(len(encoded))
        if name in missing:
            if absolute_pos:
                values[absolute_pos] = frame_stats[name]
                notes.append(f"the dataset has no action {name}: computed it from the training episodes' frames")
            parts = ["computed from the training episodes' frames"] if absolute_pos else []
        else:
            values[:] = action_stats[name][encoded]
            parts = [dataset_source] if absolute_pos else []
        if delta_pos:
            values[delta_pos] = chunk_stats[name]
            parts.append("delta dims: computed from the delta-transformed training chunks")
        stats[name] = values
        sources[name] = "; ".join(parts)
    return Normalizer(mode, stats), sources, notes
