"""RT-2 / OpenVLA-style uniform binning: every element of a normalized chunk becomes one of `n_bins` tokens."""

from __future__ import annotations

import numpy as np

from actok.tokenizers.base import ActionTokenizer, TokenBatch, as_chunks, flatten_rows
from actok.tokenizers.params import Bins


class BinningTokenizer(ActionTokenizer):
    """`n_bins` uniform bins over [-1, 1] (values outside are clipped into the end bins); decode to bin
    centres, so the round-trip error inside [-1, 1] is at most half a bin, `1 / n_bins`. Tokens are
    time-major with dims interleaved (t0d0, t0d1, ..., t1d0, ...): H·D tokens per chunk."""

    name = "binning"
    conformance_rmse_bound = 1 / 256  # half a bin

    def __init__(self, n_bins: Bins = 256):
        super().__init__()
        self.n_bins = n_bins

    @property
    def vocab_size(self) -> int:
        return self.n_bins

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> BinningTokenizer:
        self._set_shape(as_chunks(chunks))
        return self

    def bins(self, chunks: np.ndarray) -> np.ndarray:
        """Normalized chunks `[N, H, D]` -> bin indices `[N, H, D]` int64."""
        scaled = np.floor((np.asarray(chunks, dtype=np.float64) + 1.0) * (self.n_bins / 2.0))
        return np.clip(scaled, 0, self.n_bins - 1).astype(np.int64)

    def bin_values(self, action_dim: int) -> np.ndarray:
        """Value each bin decodes to, `[n_bins, action_dim]` (uniform bins: the centres, for any dim)."""
        centers = -1.0 + (np.arange(self.n_bins) + 0.5) * (2.0 / self.n_bins)
        return np.repeat(centers[:, None], action_dim, axis=1)

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        chunks = self._check_shape(chunks)
        return flatten_rows(self.bins(chunks)).tolist()

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Valid: exactly H·D ids in [0, n_bins). The repair clips stray ids into range and puts 0 (the
        normalized centre) where an id is missing or not an id."""
        n_tokens = horizon * action_dim
        body = batch.fixed(n_tokens)
        valid = (batch.lengths == n_tokens) & ((body >= 0) & (body < self.n_bins)).all(axis=1)
        values = self.bin_values(action_dim)[np.clip(body, 0, self.n_bins - 1), np.arange(n_tokens) % action_dim]
        values[body < 0] = 0.0
        return values.reshape(len(body), horizon, action_dim), valid

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        return f"exactly {horizon * action_dim} ids (H {horizon} x D {action_dim}), each in [0, {self.n_bins})"
