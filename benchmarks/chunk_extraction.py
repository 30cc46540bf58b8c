"""Chunk extraction speed: actok's vectorized pipeline vs a plain per-frame loop, in the same run.

Workload (foundation issue): unitree_g1_pickbottle (36k frames), H=30, all 26 dims, delta on the 14 arm dims,
sample_fraction 1.0, QUANTILES normalization, no holdout. Both sides start from episodes already in memory
(the parquet read is timed separately) and produce the same normalized chunks (checked).

    python benchmarks/chunk_extraction.py --datasets-dir DIR [--root FOLDER] [--repeats 3]

`--datasets-dir` defaults to $ACTOK_SHARED_DATASETS; `--root` picks another dataset folder.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _datasets import add_datasets_dir, datasets_dir

from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.data.chunks import collect_chunks

DATASET = "unitree_g1_pickbottle"  # inside --datasets-dir
DELTA = list(range(14))


def per_frame_chunks(episodes, horizon):
    """The reference's shape of work: frames appended one by one, each chunk and step transformed in Python."""
    out = []
    for ep in episodes:
        states, actions = [], []
        for t in range(len(ep)):
            states.append(np.array(ep.state[t]))
            actions.append(np.array(ep.action[t]))
        for i in range(len(actions) - horizon + 1):
            chunk = np.zeros((horizon, len(actions[0])), dtype=actions[0].dtype)
            for t in range(horizon):
                step = actions[i + t].copy()
                for d in DELTA:
                    step[d] = actions[i + t][d] - states[i][d]
                chunk[t] = step
            out.append(chunk)
    return np.array(out)


def quantile_normalize(chunks, stats):
    """LeRobot's QUANTILES formula, as it writes it."""
    q01, q99 = stats["q01"], stats["q99"]
    return 2.0 * (np.clip(chunks, q01, q99) - q01) / np.maximum(q99 - q01, 1e-8) - 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help=f"dataset folder (default: DIR/{DATASET})")
    add_datasets_dir(parser)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = args.root or datasets_dir(parser, args) / DATASET

    t0 = time.perf_counter()
    reader = LeRobotDatasetReader(root)
    episodes = reader.episodes("observation.state")
    read_s = time.perf_counter() - t0
    config = ChunkConfig(
        action_horizon=30,
        encoded_dims="0:26",
        delta_dims=",".join(map(str, DELTA)),
        sample_fraction=1.0,
        holdout_fraction=0,
    )

    def best(fn):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return out, min(times)

    def extract():  # episodes -> delta-transformed chunks: the part the reference does frame by frame
        return collect_chunks([(i, ep.action, ep.state) for i, ep in enumerate(episodes)], 30, 1.0, DELTA)

    raw, extract_s = best(extract)
    chunks, build_s = best(lambda: build_chunks(reader, config))
    np.testing.assert_array_equal(raw, chunks.train_raw)

    t0 = time.perf_counter()
    base_raw = per_frame_chunks(episodes, 30)
    base_extract_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    base_norm = quantile_normalize(base_raw, chunks.normalizer.stats)
    base_norm_s = time.perf_counter() - t0
    assert np.array_equal(base_norm, chunks.train), "baseline and actok disagree"

    frames = sum(len(e) for e in episodes)
    print(f"dataset: {reader.root.name}, {frames} frames, {len(episodes)} episodes -> {chunks.train.shape} chunks")
    print(f"parquet read (once):                     {read_s * 1e3:8.1f} ms")
    print(f"chunk extraction, per-frame baseline:    {base_extract_s * 1e3:8.1f} ms")
    print(
        f"chunk extraction, actok (best of {args.repeats}):     {extract_s * 1e3:8.1f} ms   speed-up {base_extract_s / extract_s:.1f}x (target >= 50x)"
    )
    print(f"baseline extraction + np.clip normalize: {(base_extract_s + base_norm_s) * 1e3:8.1f} ms")
    print(
        f"actok build_chunks, whole pipeline:      {build_s * 1e3:8.1f} ms   speed-up {(base_extract_s + base_norm_s) / build_s:.1f}x (target < 1 s)"
    )
    print("  (build_chunks also computes the missing q01/q99 and the delta-dim stats, which the baseline is given)")


if __name__ == "__main__":
    main()
