"""A tokenizer against FAST at equal held-out RMSE: the measurements behind docs/zoo.md's `klt` claims.

`compare_case` fits FAST at one scale on a case's training chunks, searches the other tokenizer's scale until its
held-out RMSE is within `RMSE_TOLERANCE` of FAST's, and measures both: mean tokens per chunk (the other's
interpolated log-log to FAST's RMSE exactly), the RMSE increase under token noise, the validity of random
in-vocabulary id sequences, the prefix curve, the gap to the DCT and KLT bounds in tokens, and batch encode /
decode times. Arrays in, plain JSON-ready dicts out; a module function so `run_grid` can run it under Ray.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actok.bench.bounds import bound_gaps, bound_variances
from actok.bench.metrics import corrupt_tokens
from actok.bench.runner import NOISE_FRACTIONS, prefix_curve
from actok.tokenizers import create_tokenizer

RMSE_TOLERANCE = 0.02  # relative: "equal RMSE"
SCALE_STEPS = 5  # fits tried per scale search
RANDOM_SEQUENCES = 500


@dataclass(frozen=True)
class Case:
    """One comparison: normalized training and held-out chunks `[N, H, D]`, `[M, H, D]`, and how they were made."""

    name: str
    train: np.ndarray
    holdout: np.ndarray
    notes: dict[str, Any] = field(default_factory=dict)


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def fit_and_score(name: str, case: Case, scale: float, vocab_size: int) -> tuple[Any, float, float]:
    """(fitted tokenizer, held-out RMSE, mean tokens per chunk) at this scale."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = create_tokenizer(name, scale=scale, vocab_size=vocab_size).fit(case.train)
        ids = tok.encode(case.holdout)
    return tok, _rmse(tok.decode(ids), case.holdout), float(np.mean([len(s) for s in ids]))


def match_rmse(name: str, case: Case, target: float, start: float, vocab_size: int) -> dict[str, Any]:
    """Search `name`'s scale (power-law steps: RMSE ~ 1 / scale) until its held-out RMSE is within RMSE_TOLERANCE
    of `target`; the tokens at `target` are interpolated log-log between the two nearest points around it."""
    points, scale = [], start
    for _ in range(SCALE_STEPS):
        tok, rmse, tokens = fit_and_score(name, case, scale, vocab_size)
        points.append((scale, rmse, tokens, tok))
        if abs(rmse / target - 1) <= RMSE_TOLERANCE / 4:
            break
        scale *= rmse / target
    below = [p for p in points if p[1] <= target]
    above = [p for p in points if p[1] > target]
    best = min(points, key=lambda p: abs(np.log(p[1] / target)))
    tokens = best[2]
    if below and above:
        (_, r1, t1, _), (_, r2, t2, _) = max(below, key=lambda p: p[1]), min(above, key=lambda p: p[1])
        w = np.log(target / r1) / np.log(r2 / r1)
        tokens = float(np.exp((1 - w) * np.log(t1) + w * np.log(t2)))
    return {"scale": best[0], "rmse": best[1], "measured_tokens": best[2], "tokens": tokens, "tokenizer": best[3]}


def robustness(tok: Any, case: Case, ids: list[list[int]], seed: int = 0) -> dict[str, float]:
    """RMSE increase under token noise (each id replaced by a random one with probability 1% / 5%; invalid rows
    decode to zeros), and how random in-vocabulary id sequences decode: valid, finite, within the training range."""
    clean = _rmse(tok.decode(ids), case.holdout)
    out = {}
    for fraction in NOISE_FRACTIONS:
        noisy = tok.decode(corrupt_tokens(ids, fraction, tok.vocab_size, seed))
        out[f"noise_{round(fraction * 100)}pct_rmse_increase"] = _rmse(noisy, case.holdout) - clean
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 2 * max(len(s) for s in ids) + 2, RANDOM_SEQUENCES)
    random_ids = [rng.integers(0, tok.vocab_size, k).tolist() for k in lengths]
    decoded, valid = tok.decode(random_ids, return_valid=True)
    low, high = case.train.min(axis=(0, 1)), case.train.max(axis=(0, 1))
    inside = ((decoded >= low) & (decoded <= high)).all(axis=(1, 2))
    out["random_sequences_valid_fraction"] = float(valid.mean())
    out["random_sequences_in_training_range_fraction"] = float((valid & inside).mean())
    return out


def batch_times(tok: Any, case: Case, ids: list[list[int]], repeats: int = 3) -> dict[str, float]:
    """Best-of-`repeats` batch encode and decode times of the held-out chunks, in microseconds per chunk."""
    times = {}
    for what, call in (("encode", lambda: tok.encode(case.holdout)), ("decode", lambda: tok.decode(ids))):
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        times[f"{what}_us_per_chunk"] = best / len(case.holdout) * 1e6
    return times


def measure(tok: Any, case: Case, rmse: float, tokens: float, variances: dict[str, np.ndarray]) -> dict[str, Any]:
    """Everything `compare_case` reports for one fitted tokenizer at its matched point (`variances`: the bounds'
    component variances of the case's training chunks, `bounds.bound_variances`)."""
    ids = tok.encode(case.holdout)
    bits = tokens * np.log2(tok.vocab_size)
    gaps = bound_gaps(variances, rmse, bits, tok.vocab_size)
    return {
        "rmse": rmse,
        "tokens": tokens,
        **robustness(tok, case, ids),
        "prefix_rmse": prefix_curve(tok, case.holdout, ids),
        **batch_times(tok, case, ids),
        **{k: v for k, v in gaps.items() if k.endswith("_tokens")},
    }


def compare_case(case: Case, name: str = "klt", fast_scale: float = 10.0, vocab_size: int = 1024) -> dict[str, Any]:
    """FAST at `fast_scale` vs `name` at the same held-out RMSE on one case (module docstring)."""
    fast, fast_rmse, fast_tokens = fit_and_score("fast", case, fast_scale, vocab_size)
    other = match_rmse(name, case, fast_rmse, fast_scale, vocab_size)
    tok = other.pop("tokenizer")
    variances = bound_variances(case.train)
    result = {
        "case": case.name,
        **case.notes,
        "horizon": case.train.shape[1],
        "action_dim": case.train.shape[2],
        "train_chunks": len(case.train),
        "holdout_chunks": len(case.holdout),
        "fast_scale": fast_scale,
        "fast": measure(fast, case, fast_rmse, fast_tokens, variances),
        name: {**measure(tok, case, other["rmse"], other["tokens"], variances), **other},
        "token_reduction": 1 - other["tokens"] / fast_tokens,
    }
    if hasattr(tok, "fitted_transform"):
        result[name]["fitted_transform"] = list(tok.fitted_transform)
    return result
