"""Rate-distortion bounds: how many bits per chunk any tokenizer needs at a given RMSE, for Gaussian chunks.

Reverse water-filling over independent components with variances v_i gives, at the water level θ, the
distortion Σ min(θ, v_i) and the rate Σ max(0, log2(v_i / θ) / 2). Two sets of variances give two references:
- the DCT bound (`metrics.dct_coefficient_variances`): independent DCT coefficients per dim, what FAST's transform
  reaches at best; a transform that also decorrelates the dims can cross it;
- the KLT bound (`klt_coefficient_variances`): the eigenvalues of the full covariance of the flattened training
  chunks `[H·D]`, the tightest Gaussian reference for any orthonormal transform of these chunks. With fewer chunks
  than H·D the sample covariance is rank-deficient and the bound optimistic.

A tokenizer's gap to a bound is in bits per chunk and in tokens (bits / log2(vocab_size)): how much any
tokenizer could still gain at that error.
"""

from __future__ import annotations

import numpy as np

from actok.bench.metrics import dct_coefficient_variances

BISECTION_STEPS = 100  # halvings of the water level's log range: far below float64 resolution
COVARIANCE_BLOCK = 65536  # chunks whose flattened values are copied at once


def klt_coefficient_variances(chunks: np.ndarray) -> np.ndarray:
    """Eigenvalues of the covariance of the flattened chunks `[N, H, D]` -> `[H·D]`, decreasing, clipped at 0. The
    covariance is accumulated over blocks of COVARIANCE_BLOCK chunks (shifted by the first block's mean), so a
    million chunks are never copied as float64 at once."""
    n = len(chunks)
    flat = np.asarray(chunks).reshape(n, -1)
    shift = flat[:COVARIANCE_BLOCK].mean(axis=0, dtype=np.float64)
    total, gram = np.zeros(flat.shape[1]), np.zeros((flat.shape[1], flat.shape[1]))
    for start in range(0, n, COVARIANCE_BLOCK):
        block = flat[start : start + COVARIANCE_BLOCK].astype(np.float64) - shift
        total += block.sum(axis=0)
        gram += block.T @ block
    mean = total / n
    cov = gram / n - np.outer(mean, mean)  # the population variance, as dct_coefficient_variances uses
    return np.maximum(np.linalg.eigvalsh(cov)[::-1], 0.0)


def gaussian_rate_bits(variances: np.ndarray, rmse: np.ndarray | float) -> np.ndarray:
    """Bits per chunk the reverse water-filling bound needs for an RMSE per element (normalized units) over
    independent components with these variances `[H·D]`; `rmse` a number or an array `[K]` -> array `[K]` (0 bits
    at or above the components' RMS)."""
    var = np.asarray(variances, dtype=np.float64)
    target = np.atleast_1d(np.asarray(rmse, dtype=np.float64)) ** 2 * len(var)  # total distortion per chunk
    positive = var[var > 0]
    if not len(positive):
        return np.zeros(len(target))
    lo = np.full(len(target), np.log(positive.min()) - 50.0)  # log θ: distortion far below every target
    hi = np.full(len(target), np.log(positive.max()))
    for _ in range(BISECTION_STEPS):  # distortion grows with θ: keep the largest θ not above the target
        mid = (lo + hi) / 2
        below = np.minimum(np.exp(mid)[:, None], var[None, :]).sum(axis=1) <= target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    theta = np.exp(lo)[:, None]
    return np.maximum(0.0, 0.5 * np.log2(positive[None, :] / theta)).sum(axis=1)


def bound_variances(train_chunks: np.ndarray) -> dict[str, np.ndarray]:
    """The two bounds' component variances `[H·D]` for training chunks `[N, H, D]`: {"dct": ..., "klt": ...}."""
    return {"dct": dct_coefficient_variances(train_chunks), "klt": klt_coefficient_variances(train_chunks)}


def bound_gaps(
    variances: dict[str, np.ndarray], rmse: float, bits_per_chunk: float, vocab_size: int
) -> dict[str, float]:
    """A tokenizer's gap to each bound of `variances` (`bound_variances`) at its held-out RMSE: `{name}_bound_bits`
    (bits per chunk the bound needs), `{name}_bound_gap_bits` (the tokenizer's bits per chunk minus those) and
    `{name}_bound_gap_tokens` (the gap / log2(vocab_size): how many tokens any tokenizer could still save)."""
    out = {}
    for name, var in variances.items():
        bound = float(gaussian_rate_bits(var, rmse)[0])
        out[f"{name}_bound_bits"] = bound
        out[f"{name}_bound_gap_bits"] = bits_per_chunk - bound
        out[f"{name}_bound_gap_tokens"] = (bits_per_chunk - bound) / np.log2(vocab_size)
    return out
