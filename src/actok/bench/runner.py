"""Scoring one fitted tokenizer: sample chunks from a split, encode/decode, time and score (`benchmark_tokenizer`).

It knows nothing about any one tokenizer (a tokenizer adds only its `diagnostics`); the metrics dict becomes a
`BenchResult` in `actok.bench.harness`, written by `write_result` (never replacing a file).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from actok.bench import bounds
from actok.bench.metrics import (
    corrupt_tokens,
    error_tail_metrics,
    jerk_metrics,
    reconstruction_metrics,
    token_length_metrics,
    token_statistics,
)
from actok.data.pipeline import ChunkSet
from actok.tokenizers.base import ActionTokenizer

NOISE_FRACTIONS = (0.01, 0.05)  # share of tokens replaced by random ids in the robustness metrics
PREFIX_FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # shares of each encoding decoded for the prefix curve


def evaluation_split(chunks: ChunkSet) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, normalized, raw) of the split to score: held-out episodes, or training ones without a holdout."""
    if len(chunks.holdout):
        return "holdout", chunks.holdout, chunks.holdout_raw
    return "train", chunks.train, chunks.train_raw


def sample_indices(n: int, max_chunks: int | None, seed: int = 0) -> np.ndarray:
    """Random sample (sorted) of at most `max_chunks` of `n` chunk positions."""
    if max_chunks is None or max_chunks >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_chunks, replace=False))


def _timed(fn, repeats: int):
    """Run `fn` `repeats` times; return (last result, best wall time in seconds)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def benchmark_tokenizer(
    tokenizer: ActionTokenizer,
    chunks: ChunkSet,
    max_chunks: int | None = 500,
    seed: int = 0,
    timing_repeats: int = 3,
    bound_variances: dict[str, np.ndarray] | None = None,
) -> dict:
    """Encode + decode a sample of the evaluation split; return the metrics dict.

    `bound_variances` (`bounds.bound_variances` of the training chunks: the report's rate-distortion bounds and each
    result's gaps to them) depends on the chunks only: pass it when scoring several tokenizers on the same chunks;
    it is computed here otherwise. A tokenizer whose every id sequence decodes (`every_sequence_decodes`) also gets
    its prefix curve (`prefix_rmse`). Every error metric is computed here the
    same way for every tokenizer; the tokenizer adds only facts about its own state (`diagnostics`).

    Times are for batch calls divided by the number of chunks (seconds per chunk, best of `timing_repeats`).
    """
    split, normalized, raw = evaluation_split(chunks)
    idx = sample_indices(len(normalized), max_chunks, seed)
    original, original_raw = normalized[idx], raw[idx]
    n, horizon, dim = len(idx), chunks.horizon, len(chunks.encoded_dims)
    ids, enc_time = _timed(lambda: tokenizer.encode(original), timing_repeats)
    (decoded, valid), dec_time = _timed(
        lambda: tokenizer.decode(ids, horizon=horizon, action_dim=dim, return_valid=True), timing_repeats
    )
    metrics = {
        **reconstruction_metrics(original, decoded),
        **token_length_metrics(ids, horizon, dim),
        "mean_encode_time_sec": enc_time / n,
        "mean_decode_time_sec": dec_time / n,
        "num_chunks_evaluated": n,
        "total_chunks_available": len(normalized),
        "vocab_size": tokenizer.vocab_size,
        "bits_per_chunk": float(np.mean([len(s) for s in ids]) * np.log2(tokenizer.vocab_size)),
        "invalid_decode_fraction": float(1.0 - valid.mean()),
        **reconstruction_metrics(original_raw, chunks.normalizer.unnormalize(decoded), prefix="raw_"),
        **jerk_metrics(original, decoded),
        "evaluated_split": split,
        "num_train_episodes": len(chunks.train_episodes),
        "num_holdout_episodes": len(chunks.holdout_episodes),
        "num_train_chunks": len(chunks.train),
        "num_holdout_chunks": len(chunks.holdout),
        **token_statistics(ids, tokenizer.vocab_size),
    }
    lengths, counts = np.unique([len(s) for s in ids], return_counts=True)
    metrics["token_length_counts"] = [[int(a), int(b)] for a, b in zip(lengths, counts, strict=True)]
    # For the report's rate-distortion bounds: the training chunks' DCT coefficient and KLT variances.
    if bound_variances is None:
        bound_variances = bounds.bound_variances(chunks.train)
    metrics["train_dct_coefficient_variances"] = bound_variances["dct"].tolist()
    metrics["train_klt_coefficient_variances"] = bound_variances["klt"].tolist()
    metrics.update(
        bounds.bound_gaps(
            bound_variances, metrics["reconstruction_rmse"], metrics["bits_per_chunk"], tokenizer.vocab_size
        )
    )
    if tokenizer.every_sequence_decodes:
        metrics["prefix_token_fractions"] = list(PREFIX_FRACTIONS)
        metrics["prefix_rmse"] = prefix_curve(tokenizer, original, ids)
    metrics.update(_noise_metrics(tokenizer, ids, original, metrics["reconstruction_rmse"], seed))
    diagnostics = tokenizer.diagnostics(original, ids)
    metrics.update(diagnostics)
    metrics.update(error_tail_metrics(metrics, diagnostics.get("train_rmse")))
    return metrics


def _noise_metrics(
    tokenizer: ActionTokenizer, ids: list[list[int]], original: np.ndarray, clean_rmse: float, seed: int
) -> dict:
    """Robustness of decoding to a model's wrong tokens: RMSE increase and invalid fraction when a share
    (`NOISE_FRACTIONS`) of the tokens of `original` `[N, H, D]` is replaced by random ids."""
    out = {}
    for fraction in NOISE_FRACTIONS:
        noisy, noisy_valid = tokenizer.decode(
            corrupt_tokens(ids, fraction, tokenizer.vocab_size, seed),
            horizon=original.shape[1],
            action_dim=original.shape[2],
            return_valid=True,
        )
        tag = f"noise_{round(fraction * 100)}pct"
        out[f"{tag}_rmse_increase"] = float(np.sqrt(np.mean((noisy - original) ** 2)) - clean_rmse)
        out[f"{tag}_invalid_decode_fraction"] = float(1.0 - noisy_valid.mean())
    return out


def prefix_curve(tokenizer: ActionTokenizer, chunks: np.ndarray, ids: list[list[int]]) -> list[float]:
    """RMSE against `chunks` `[N, H, D]` decoding the first ceil(f x length) of each of their encodings `ids`, f
    in PREFIX_FRACTIONS (rows the tokenizer finds invalid decode to zeros)."""
    _, horizon, dim = chunks.shape
    return [
        float(np.sqrt(np.mean((tokenizer.decode(prefixes, horizon=horizon, action_dim=dim) - chunks) ** 2)))
        for prefixes in ([s[: int(np.ceil(f * len(s)))] for s in ids] for f in PREFIX_FRACTIONS)
    ]


def results_filename(repo_id: str, tokenizer: str | None = None, timestamp: str | None = None) -> str:
    """`{timestamp}_{repo_id}_action_tokenizer_results.json`; the tokenizer name is inserted when several
    tokenizers are benchmarked in one run."""
    timestamp = timestamp or datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    safe_repo = re.sub(r"[^A-Za-z0-9._-]+", "_", repo_id)
    middle = f"{safe_repo}_{tokenizer}" if tokenizer else safe_repo
    return f"{timestamp}_{middle}_action_tokenizer_results.json"


def write_result(output_dir: str | Path, filename: str, result: dict) -> Path:
    """Write `result` as JSON without ever replacing an existing file (a numeric suffix is added)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / filename
    stem = filename[: -len(".json")]
    k = 1
    while True:
        try:
            with open(path, "x") as f:  # "x": fail rather than overwrite
                json.dump(result, f, indent=2)
                f.write("\n")
            return path
        except FileExistsError:
            path = out / f"{stem}_{k}.json"
            k += 1


def comparison_table(rows: list[dict]) -> str:
    """A compact fixed-width table, one row per tokenizer result ({"name", "metrics"})."""
    columns = [
        ("tokenizer", lambda r: r["name"], "{}"),
        ("vocab", lambda r: r["metrics"]["vocab_size"], "{:d}"),
        ("mean tok", lambda r: r["metrics"]["mean_token_length"], "{:.1f}"),
        ("ratio", lambda r: r["metrics"]["compression_ratio"], "{:.2f}x"),
        ("rmse", lambda r: r["metrics"]["reconstruction_rmse"], "{:.4f}"),
        ("p95 err", lambda r: r["metrics"]["reconstruction_p95_abs_error"], "{:.4f}"),
        ("max err", lambda r: r["metrics"]["reconstruction_max_abs_error"], "{:.4f}"),
        ("raw rmse", lambda r: r["metrics"]["raw_reconstruction_rmse"], "{:.4g}"),
        ("invalid", lambda r: r["metrics"]["invalid_decode_fraction"], "{:.3f}"),
        ("enc us", lambda r: r["metrics"]["mean_encode_time_sec"] * 1e6, "{:.1f}"),
        ("dec us", lambda r: r["metrics"]["mean_decode_time_sec"] * 1e6, "{:.1f}"),
    ]
    cells = [[fmt.format(get(r)) for _, get, fmt in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(columns)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths, strict=True)))

    return "\n".join([line([h for h, _, _ in columns]), line(["-" * w for w in widths]), *map(line, cells)])
