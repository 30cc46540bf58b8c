"""Metric functions: arrays in, plain floats/lists out. Names follow the benchmark seed's JSON."""

from __future__ import annotations

import numpy as np


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
