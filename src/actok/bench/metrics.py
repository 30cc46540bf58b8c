"""Metric functions: arrays in, plain floats/lists out. Names follow the benchmark seed's JSON."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.fft import dct

BINNING_256_MAX_ABS_ERROR = 1 / 256  # half a bin of 256-bin binning over [-1, 1]


def reconstruction_metrics(original: np.ndarray, decoded: np.ndarray, prefix: str = "") -> dict:
    """Errors between chunks `[N, H, D]`: mae, mse, rmse, max and p95 absolute error, per-dimension MAE."""
    err = np.abs(np.asarray(decoded, dtype=np.float64) - np.asarray(original, dtype=np.float64))
    mse = float(np.mean(err**2))
    return {
        f"{prefix}reconstruction_mae": float(err.mean()),
        f"{prefix}reconstruction_mse": mse,
        f"{prefix}reconstruction_rmse": float(np.sqrt(mse)),
        f"{prefix}reconstruction_max_abs_error": float(err.max()),
        f"{prefix}reconstruction_p95_abs_error": float(np.percentile(err, 95)),
        f"{prefix}per_dimension_mae": err.mean(axis=(0, 1)).tolist(),
    }


def token_length_metrics(ids: list[list[int]], horizon: int, action_dim: int) -> dict:
    """Compression stats: (H·D) / mean tokens, and the token-count distribution."""
    lengths = np.array([len(s) for s in ids], dtype=np.float64)
    mean = float(lengths.mean())
    return {
        "compression_ratio": float(horizon * action_dim / mean) if mean > 0 else float("inf"),
        "mean_token_length": mean,
        "std_token_length": float(lengths.std()),
        "min_token_length": float(lengths.min()),
        "max_token_length": float(lengths.max()),
        "p50_token_length": float(np.percentile(lengths, 50)),
        "p99_token_length": float(np.percentile(lengths, 99)),
    }


def compression_sample(n_chunks: int, size: int = 1000, seed: int = 42) -> np.ndarray:
    """Positions of the chunks LeRobot's tokenizer script reports compression on: `min(size, n_chunks)` drawn
    without replacement with `np.random.RandomState(seed)`."""
    return np.random.RandomState(seed).choice(n_chunks, size=min(size, n_chunks), replace=False)


def compression_stats(ids: list[list[int]], horizon: int, action_dim: int) -> dict:
    """LeRobot's compression stats of the token ids of a sample (`compression_sample`): `token_length_metrics`'
    ratio, mean, p99, min and max token length, and the number of chunks; `{}` for no chunk."""
    if not ids:
        return {}
    lengths = token_length_metrics(ids, horizon, action_dim)
    keys = ("compression_ratio", "mean_token_length", "p99_token_length", "min_token_length", "max_token_length")
    return {**{k: lengths[k] for k in keys}, "num_chunks": len(ids)}


def error_tail_metrics(metrics: dict, train_rmse: float | None = None) -> dict:
    """From `reconstruction_metrics`' values: the max error against 256-bin binning's bound (1/256 in normalized
    units; `max_abs_error_vs_binning_bound` 1 = the bound), and, for a tokenizer whose fit reports the RMSE it
    reached on its training chunks (`train_rmse`, a learned tokenizer's diagnostics), the evaluated-to-training
    RMSE ratio (`heldout_to_train_rmse_ratio`; None when the training RMSE is 0)."""
    out = {"max_abs_error_vs_binning_bound": metrics["reconstruction_max_abs_error"] / BINNING_256_MAX_ABS_ERROR}
    if train_rmse is not None:
        out["heldout_to_train_rmse_ratio"] = metrics["reconstruction_rmse"] / train_rmse if train_rmse else None
    return out


def jerk_metrics(original: np.ndarray, decoded: np.ndarray) -> dict:
    """Smoothness: mean |third difference along time| of original and decoded chunks (needs H >= 4)."""
    if original.shape[1] < 4:
        return {"mean_abs_jerk_original": None, "mean_abs_jerk_decoded": None, "jerk_ratio": None}
    jo = float(np.abs(np.diff(original, n=3, axis=1)).mean())
    jd = float(np.abs(np.diff(decoded, n=3, axis=1)).mean())
    return {
        "mean_abs_jerk_original": jo,
        "mean_abs_jerk_decoded": jd,
        "jerk_ratio": jd / jo if jo > 0 else None,
    }


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) if len(p) else 0.0


def token_statistics(ids: list[list[int]], vocab_size: int, n_least_used: int = 10) -> dict:
    """Information content of the token stream (pooled over the evaluated chunks):
    - `token_entropy_bits`: empirical entropy of one token, and `entropy_coded_bits_per_chunk` (mean tokens x
      that entropy: what an ideal coder of independent tokens would spend, vs `bits_per_chunk`);
    - `conditional_entropy_bits`: entropy of a token given the previous one in its chunk (the marginal
      information an autoregressive model gets per token);
    - `vocab_utilization` (distinct ids used / vocab_size), `unused_token_count`, and the `least_used_tokens`
      among those used, as [id, count] pairs."""
    flat = np.fromiter((t for s in ids for t in s), dtype=np.int64)
    counts = np.bincount(flat[(flat >= 0) & (flat < vocab_size)], minlength=vocab_size)
    entropy = _entropy_bits(counts)
    pairs = np.array([(a, b) for s in ids for a, b in itertools.pairwise(s)], dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        _, joint = np.unique(pairs, axis=0, return_counts=True)
        _, previous = np.unique(pairs[:, 0], return_counts=True)
        conditional = _entropy_bits(joint) - _entropy_bits(previous)
    else:
        conditional = None
    used = np.flatnonzero(counts)
    least = used[np.argsort(counts[used], kind="stable")][:n_least_used]
    return {
        "token_entropy_bits": entropy,
        "entropy_coded_bits_per_chunk": entropy * float(np.mean([len(s) for s in ids])),
        "conditional_entropy_bits": conditional,
        "vocab_utilization": float(len(used) / vocab_size),
        "unused_token_count": int(vocab_size - len(used)),
        "least_used_tokens": [[int(t), int(counts[t])] for t in least],
    }


def corrupt_tokens(ids: list[list[int]], fraction: float, vocab_size: int, seed: int = 0) -> list[list[int]]:
    """Replace each token with probability `fraction` by a uniformly random id in [0, vocab_size)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in ids:
        arr = np.asarray(s, dtype=np.int64)
        hit = rng.random(len(arr)) < fraction
        arr[hit] = rng.integers(0, vocab_size, int(hit.sum()))
        out.append(arr.tolist())
    return out


def dct_coefficient_variances(chunks: np.ndarray) -> np.ndarray:
    """Variance over chunks of every orthonormal DCT-II coefficient (along time), `[H·D]`, frequency-major."""
    return dct(np.asarray(chunks, dtype=np.float64), axis=1, norm="ortho").reshape(len(chunks), -1).var(axis=0)


def reverse_water_filling(variances: np.ndarray, n_points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian rate-distortion bound for independent components with these variances: (RMSE per element,
    bits per chunk) along the curve. Each component gets distortion min(theta, variance) and
    max(0, log2(variance / theta) / 2) bits; sweeping theta traces the bound."""
    var = np.asarray(variances, dtype=np.float64)
    var = var[var > 0]
    if not len(var):
        return np.zeros(0), np.zeros(0)
    thetas = np.geomspace(var.max(), var.max() * 1e-8, n_points)
    distortion = np.minimum(thetas[:, None], var[None, :]).sum(axis=1) / len(variances)
    bits = np.maximum(0.0, 0.5 * np.log2(var[None, :] / thetas[:, None])).sum(axis=1)
    return np.sqrt(distortion), bits
