"""Quantile (equal-mass) binning: per dimension, bin edges at the training data's quantiles (REFERENCES §4).

`bin = floor(ecdf(a) * n_bins)`, i.e. every bin holds the same share of the training values of its dimension;
decode maps a bin to the median of the training values that fell in it. Dense regions get fine bins and the
tails coarse ones, unlike uniform binning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from actok.errors import ActokError
from actok.tokenizers.base import CONFIG_FILE, as_chunks, state_array
from actok.tokenizers.binning import BinningTokenizer
from actok.tokenizers.params import Bins


class QuantileBinningTokenizer(BinningTokenizer):
    """`n_bins` equal-mass bins per dimension; H·D tokens per chunk, time-major with dims interleaved."""

    name = "quantile-binning"
    conformance_rmse_bound = 0.005

    def __init__(self, n_bins: Bins = 256):
        super().__init__(n_bins=n_bins)
        self.edges: np.ndarray | None = None  # [n_bins - 1, D] inner edges
        self.values: np.ndarray | None = None  # [n_bins, D] decode values

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> QuantileBinningTokenizer:
        chunks = as_chunks(chunks)
        if len(chunks) == 0:
            raise ActokError("cannot fit quantile-binning on zero chunks")
        self._set_shape(chunks)
        flat = chunks.reshape(-1, chunks.shape[2])
        self.edges = np.quantile(flat, np.arange(1, self.n_bins) / self.n_bins, axis=0)
        bins = self.bins(chunks).reshape(-1, chunks.shape[2])
        self.values = np.empty((self.n_bins, chunks.shape[2]))
        for d in range(chunks.shape[2]):  # a loop over dims (tens), not over values
            order = np.argsort(bins[:, d], kind="stable")
            sorted_bins, sorted_vals = bins[order, d], flat[order, d]
            starts = np.searchsorted(sorted_bins, np.arange(self.n_bins), side="left")
            stops = np.searchsorted(sorted_bins, np.arange(self.n_bins), side="right")
            # Bins left empty by ties take the midpoint of their edges.
            padded = np.concatenate([[flat[:, d].min()], self.edges[:, d], [flat[:, d].max()]])
            mid = (padded[:-1] + padded[1:]) / 2
            self.values[:, d] = [
                np.median(sorted_vals[a:b]) if b > a else mid[k]
                for k, (a, b) in enumerate(zip(starts, stops, strict=True))
            ]
        return self

    def bins(self, chunks: np.ndarray) -> np.ndarray:
        """Normalized chunks `[N, H, D]` -> bin indices `[N, H, D]`: the number of inner edges <= value."""
        if self.edges is None:
            raise ActokError("quantile-binning tokenizer is not fitted: call fit(chunks) first")
        chunks = np.asarray(chunks, dtype=np.float64)
        out = np.empty(chunks.shape, dtype=np.int64)
        for d in range(chunks.shape[2]):
            out[..., d] = np.searchsorted(self.edges[:, d], chunks[..., d], side="right")
        return out

    def bin_values(self, action_dim: int) -> np.ndarray:
        if self.values is None:
            raise ActokError("quantile-binning tokenizer is not fitted: call fit(chunks) first")
        if action_dim != self.values.shape[1]:
            raise ActokError(
                f"quantile-binning was fitted on {self.values.shape[1]} dims, asked to decode {action_dim}"
            )
        return self.values

    def _save_state(self, directory: Path) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "values": self.values.tolist()}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        self.edges = state_array(directory, state, "edges", (self.n_bins - 1, self.action_dim))
        self.values = state_array(directory, state, "values", (self.n_bins, self.action_dim))
        if (np.diff(self.edges, axis=0) < 0).any():
            raise ActokError(
                f"{directory / CONFIG_FILE}: state.edges are not sorted along each dimension (bins need sorted edges)"
            )
