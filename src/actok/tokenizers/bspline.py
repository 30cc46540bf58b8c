"""B-spline tokenizer (BEAST, REFERENCES §5): per dimension, the control points of a clamped uniform B-spline
fitted to the chunk by ridge least squares, each quantized to `n_bins` levels between bounds learned from the
training data. Fixed length: n_control_points · D tokens (control-point-major, dims interleaved), decodable in
parallel; decode evaluates the spline at the H steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from annotated_types import Interval
from scipy.interpolate import BSpline

from actok.errors import ActokError
from actok.tokenizers.base import ActionTokenizer, TokenBatch, as_chunks, flatten_rows, state_array
from actok.tokenizers.params import Bins

RIDGE = 1e-5
MAX_CONTROL_POINTS = 1024
MAX_DEGREE = 15


def clamped_uniform_basis(horizon: int, n_control_points: int, degree: int) -> np.ndarray:
    """Cox–de Boor basis `[H, N]` of a clamped uniform B-spline (knots 0 and 1 repeated degree + 1 times),
    evaluated at H evenly spaced times in [0, 1]."""
    interior = np.linspace(0.0, 1.0, n_control_points - degree + 1)[1:-1]
    knots = np.concatenate([np.zeros(degree + 1), interior, np.ones(degree + 1)])
    return BSpline.design_matrix(np.linspace(0.0, 1.0, horizon), knots, degree).toarray()


class BSplineTokenizer(ActionTokenizer):
    """BEAST-style B-spline tokenizer.

    Args:
        n_control_points: control points per dimension (tokens per dimension); at least degree + 1.
        degree: spline degree (3 = cubic).
        n_bins: quantization levels per control point.
        pin_first: constrain the first control point to the chunk's first value, so the decoded chunk starts
            exactly where the original does (up to quantization): continuity with the current position.
    """

    name = "bspline"
    conformance_rmse_bound = 0.015

    def __init__(
        self,
        n_control_points: Annotated[int, Interval(ge=1, le=MAX_CONTROL_POINTS)] = 5,
        degree: Annotated[int, Interval(ge=0, le=MAX_DEGREE)] = 3,
        n_bins: Bins = 256,
        pin_first: bool = False,
    ):
        super().__init__()
        if n_control_points < degree + 1:
            raise ActokError(
                f"bspline needs n_control_points >= degree + 1 (got n_control_points={n_control_points}, "
                f"degree={degree})"
            )
        self.n_control_points, self.degree, self.n_bins, self.pin_first = n_control_points, degree, n_bins, pin_first
        self.low: np.ndarray | None = None  # [N, D] quantization bounds per control point and dim
        self.high: np.ndarray | None = None

    @property
    def vocab_size(self) -> int:
        return self.n_bins

    def basis(self, horizon: int) -> np.ndarray:
        return clamped_uniform_basis(horizon, self.n_control_points, self.degree)

    def control_points(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[B, H, D]` -> ridge least-squares control points `[B, N, D]`."""
        phi = self.basis(chunks.shape[1])
        if not self.pin_first:
            solve = np.linalg.solve(phi.T @ phi + RIDGE * np.eye(phi.shape[1]), phi.T)  # [N, H]
            return np.einsum("nh,bhd->bnd", solve, chunks)
        # Clamped splines pass through their first control point: fix it to the first sample, fit the rest.
        rest = phi[:, 1:]
        solve = np.linalg.solve(rest.T @ rest + RIDGE * np.eye(rest.shape[1]), rest.T)
        first = chunks[:, :1, :]
        others = np.einsum("nh,bhd->bnd", solve, chunks - phi[None, :, :1] * first)
        return np.concatenate([first, others], axis=1)

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> BSplineTokenizer:
        chunks = as_chunks(chunks)
        if len(chunks) == 0:
            raise ActokError("cannot fit bspline on zero chunks")
        self._set_shape(chunks)
        coeff = self.control_points(chunks)
        self.low, self.high = coeff.min(axis=0), coeff.max(axis=0)
        return self

    def _levels(self) -> tuple[np.ndarray, np.ndarray]:
        if self.low is None:
            raise ActokError("bspline tokenizer is not fitted: call fit(chunks) first")
        return self.low, np.where(self.high > self.low, self.high - self.low, 1.0)

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        chunks = self._check_shape(chunks)
        low, width = self._levels()
        scaled = (self.control_points(chunks) - low) / width * (self.n_bins - 1)
        return flatten_rows(np.clip(np.rint(scaled), 0, self.n_bins - 1).astype(np.int64)).tolist()

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Valid: exactly N·D ids in [0, n_bins). The repair clips stray ids and puts missing control points at
        the middle of their range."""
        low, width = self._levels()
        n_tokens = self.n_control_points * action_dim
        body = batch.fixed(n_tokens)
        valid = (batch.lengths == n_tokens) & ((body >= 0) & (body < self.n_bins)).all(axis=1)
        levels = np.where(body >= 0, np.clip(body, 0, self.n_bins - 1), (self.n_bins - 1) / 2)
        coeff = low + levels.reshape(len(body), self.n_control_points, action_dim) / (self.n_bins - 1) * width
        return np.einsum("hn,bnd->bhd", self.basis(horizon), coeff), valid

    def _check_decode_shape(self, horizon: int, action_dim: int) -> None:
        low, _ = self._levels()
        if action_dim != low.shape[1]:
            raise ActokError(f"bspline was fitted on {low.shape[1]} dims, asked to decode {action_dim}")

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        n = self.n_control_points * action_dim
        return f"exactly {n} ids ({self.n_control_points} control points x D {action_dim}), each in [0, {self.n_bins})"

    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._levels()
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        shape = (self.n_control_points, self.action_dim)
        self.low, self.high = (state_array(directory, state, key, shape) for key in ("low", "high"))
        with np.errstate(over="ignore"):
            span = self.high - self.low
        if not np.isfinite(span).all() or (span < 0).any():
            raise ActokError(f"{directory}: the bspline state's high - low must be finite and >= 0 in every slot")
