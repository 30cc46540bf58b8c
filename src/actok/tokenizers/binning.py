"""RT-2 / OpenVLA-style uniform binning: every element of a normalized chunk becomes one of `n_bins` tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actok.errors import ActokError
from actok.tokenizers.base import ActionTokenizer, as_chunks, flatten_rows


class BinningTokenizer(ActionTokenizer):
    """`n_bins` uniform bins over [-1, 1] (values outside are clipped into the end bins); decode to bin
    centres, so the round-trip error inside [-1, 1] is at most half a bin, `1 / n_bins`. Tokens are
    time-major with dims interleaved (t0d0, t0d1, ..., t1d0, ...): H·D tokens per chunk."""

    name = "binning"
    learns_from_data = False

    def __init__(self, n_bins: int = 256):
        super().__init__()
        if int(n_bins) < 2:
            raise ActokError(f"n_bins must be >= 2, got {n_bins}")
        self.n_bins = int(n_bins)

    @property
    def vocab_size(self) -> int:
        return self.n_bins

    def get_params(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins}

    def fit(self, chunks: np.ndarray) -> BinningTokenizer:
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

    def decode(
        self,
        ids: Sequence[Sequence[int]],
        horizon: int | None = None,
        action_dim: int | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ):
        self._check_policy(on_invalid)
        h, d = self._decode_shape(horizon, action_dim)
        n_tokens = h * d
        body, valid = self._fixed_length_body(ids, n_tokens, self.n_bins, on_invalid)
        table = self.bin_values(d)
        dim_of_position = np.arange(n_tokens) % d
        values = table[np.clip(body, 0, self.n_bins - 1), dim_of_position]
        if on_invalid == "relaxed":
            # Keep what decodes: clip stray ids into range, fill missing positions with 0 (the normalized centre).
            values[body < 0] = 0.0
        else:
            values[~valid] = 0.0
        out = values.reshape(len(body), h, d)
        return (out, valid) if return_valid else out
