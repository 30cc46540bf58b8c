"""Dataset episodes -> (observation window, action chunk) pairs for behaviour cloning, split by episode.

Every frame t of an episode gives one example: the condition is the last `n_obs` states (frames t-n_obs+1..t,
the first frame repeated before the episode starts), or, for a dataset without a state column, the previous
`horizon` actions; the target is the chunk of actions t..t+H-1, the last action repeated past the episode's end
(the agent holds its final target). Conditions are min/max-normalized to [-1, 1] with training statistics; an
angle dimension becomes (sin, cos), which has no jump at 0 / 2π.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from actok.data import LeRobotDatasetReader
from actok.data.normalize import Normalizer, compute_stats
from actok.data.pipeline import split_episodes
from actok.errors import ActokError

STATE_KEY = "observation.state"


@dataclass
class ObservationEncoder:
    """Raw observation windows `[B, n_obs, S]` -> model conditions `[B, n_obs, F]` (F = S + len(angle_dims))."""

    lo: np.ndarray  # [S - len(angle_dims)] minimum of the plain dims over the training frames
    hi: np.ndarray  # [S - len(angle_dims)]
    angle_dims: list[int] = field(default_factory=list)

    @classmethod
    def fit(cls, values: np.ndarray, angle_dims: list[int]) -> ObservationEncoder:
        """`values` `[T, S]` training frames."""
        plain = np.delete(values, angle_dims, axis=-1)
        return cls(plain.min(axis=0), plain.max(axis=0), list(angle_dims))

    def __call__(self, window: np.ndarray) -> np.ndarray:
        window = np.asarray(window, dtype=np.float64)
        plain = np.delete(window, self.angle_dims, axis=-1)
        scaled = 2.0 * (plain - self.lo) / np.maximum(self.hi - self.lo, 1e-8) - 1.0
        angles = window[..., self.angle_dims]
        return np.concatenate([scaled, np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


@dataclass
class PolicyData:
    """All examples of a dataset; `train` / `holdout` index them by episode."""

    conditions: np.ndarray  # [N, n_obs, F] float32, what the model sees
    chunks: np.ndarray  # [N, H, D] raw actions
    previous_action: np.ndarray  # [N, D] raw action of frame t-1 (frame 0's own at an episode start)
    episode: np.ndarray  # [N] episode index of each example
    train: np.ndarray  # [N_train] example indices
    holdout: np.ndarray  # [N_holdout]
    encoder: ObservationEncoder | None  # None: conditioned on the previous actions
    action_normalizer: Normalizer  # MIN_MAX over the training actions
    repo_id: str
    n_train_episodes: int
    n_holdout_episodes: int

    @property
    def horizon(self) -> int:
        return self.chunks.shape[1]

    @property
    def action_dim(self) -> int:
        return self.chunks.shape[2]

    @property
    def condition_source(self) -> str:
        return "state" if self.encoder is not None else "previous actions"


def _frame_windows(lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """`[T_total, W]` indices of frames t+offsets clamped to each frame's own episode (flat frame numbering)."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    ends = np.repeat(np.cumsum(lengths) - 1, lengths)
    frames = np.arange(lengths.sum())
    return np.clip(frames[:, None] + offsets[None, :], starts[:, None], ends[:, None])


def load_policy_data(
    reader: LeRobotDatasetReader,
    horizon: int,
    n_obs: int,
    holdout_fraction: float,
    seed: int,
    angle_dims: list[int] | None = None,
    max_episodes: int | None = None,
) -> PolicyData:
    """Read every episode (the first `max_episodes`) and cut one example per frame (see the module docstring)."""
    has_state = STATE_KEY in reader.columns
    episodes = reader.episodes(state_key=STATE_KEY if has_state else None)[:max_episodes]
    if len(episodes) < 2:
        raise ActokError(f"{reader.repo_id} has {len(episodes)} episode(s); the policy benchmark needs at least 2")
    lengths = np.array([len(e) for e in episodes])
    if max(horizon, n_obs) > lengths.max():
        raise ActokError(
            f"--action-horizon {horizon} and --n-obs {n_obs} must not exceed the longest episode of "
            f"{reader.repo_id} ({lengths.max()} frames)"
        )
    train_ids, hold_ids = split_episodes([e.index for e in episodes], holdout_fraction, seed)
    actions = np.concatenate([e.action for e in episodes]).astype(np.float64)
    episode = np.repeat([e.index for e in episodes], lengths)
    in_train = np.isin(episode, train_ids)
    chunks = actions[_frame_windows(lengths, np.arange(horizon))]
    previous_action = actions[_frame_windows(lengths, np.array([-1]))[:, 0]]
    normalizer = Normalizer("MIN_MAX", compute_stats(actions[in_train], ("min", "max")))
    if has_state:
        states = np.concatenate([e.state for e in episodes]).astype(np.float64)
        bad = [d for d in angle_dims or [] if not 0 <= d < states.shape[1]]
        if bad:
            raise ActokError(f"angle dims {bad} are outside the state's {states.shape[1]} dims")
        encoder = ObservationEncoder.fit(states[in_train], angle_dims or [])
        conditions = encoder(states[_frame_windows(lengths, np.arange(-n_obs + 1, 1))])
    else:
        encoder = None
        window = actions[_frame_windows(lengths, np.arange(-horizon, 0))]
        conditions = normalizer.normalize(window).astype(np.float32)
    return PolicyData(
        conditions=conditions,
        chunks=chunks,
        previous_action=previous_action,
        episode=episode,
        train=np.flatnonzero(in_train),
        holdout=np.flatnonzero(~in_train),
        encoder=encoder,
        action_normalizer=normalizer,
        repo_id=reader.repo_id,
        n_train_episodes=len(train_ids),
        n_holdout_episodes=len(hold_ids),
    )
