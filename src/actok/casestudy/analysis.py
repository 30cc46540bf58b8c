"""Marginal information of token sequences: how much a token tells that the previous one did not."""

from __future__ import annotations

import numpy as np

# Third-party reimplementation on naive 256-bin tokens (REFERENCES §7), H = 25, 50, 100, 200, 400, 800.
PUBLISHED_SAMPLING_RATES = (25, 50, 100, 200, 400, 800)
PUBLISHED_DIFF_ENTROPY_BITS = (6.10, 5.04, 4.09, 3.09, 2.18, 1.47)


def marginal_information(ids: list[list[int]]) -> dict[str, float]:
    """Entropy (bits) of the difference between consecutive tokens, pooled over all sequences, and the share
    of differences that are zero (a token repeating its predecessor)."""
    diffs = np.concatenate([np.diff(np.asarray(x, dtype=np.int64)) for x in ids if len(x) > 1])
    _, counts = np.unique(diffs, return_counts=True)
    p = counts / counts.sum()
    return {
        "diff_entropy_bits": float(-(p * np.log2(p)).sum()),
        "zero_diff_share": float(np.mean(diffs == 0)),
        "mean_tokens": float(np.mean([len(x) for x in ids])),
    }
