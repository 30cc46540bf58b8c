"""Toy data of the case study: cubic splines through 4 random conditioning points on t in [0, 1].

The same curves are used at every sampling rate (only the number of samples H changes), so the rates differ in
nothing but how densely one curve is sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

N_CONDITION_POINTS = 4


@dataclass
class SplineSet:
    """`conditions` `[N, 4, 2]` (t, y) conditioning points; `values` `[N, H]` the spline sampled at `times` `[H]`."""

    conditions: np.ndarray
    times: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def subset(self, index: np.ndarray) -> SplineSet:
        return SplineSet(self.conditions[index], self.times, self.values[index])


def conditioning_points(num_sequences: int, seed: int) -> np.ndarray:
    """`[N, 4, 2]` points: t = 0 and 1 plus two interior times jittered around 1/3 and 2/3 (kept apart so the
    spline does not overshoot wildly between two close points); y uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    interior = np.array([1 / 3, 2 / 3]) + rng.uniform(-0.1, 0.1, size=(num_sequences, N_CONDITION_POINTS - 2))
    times = np.concatenate([np.zeros((num_sequences, 1)), interior, np.ones((num_sequences, 1))], axis=1)
    values = rng.uniform(-1.0, 1.0, size=(num_sequences, N_CONDITION_POINTS))
    return np.stack([times, values], axis=-1)


def sample_splines(conditions: np.ndarray, horizon: int) -> SplineSet:
    """Natural cubic splines through each row of `conditions`, sampled at `horizon` evenly spaced t in [0, 1]."""
    times = np.linspace(0.0, 1.0, horizon)
    values = np.stack([CubicSpline(c[:, 0], c[:, 1], bc_type="natural")(times) for c in conditions])
    return SplineSet(conditions.astype(np.float32), times, values)


def train_test_split(num_sequences: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of sequence indices into (train, test)."""
    order = np.random.default_rng(seed + 1).permutation(num_sequences)
    n_test = max(1, round(num_sequences * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
