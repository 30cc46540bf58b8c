"""Rate-distortion of our `klt` tokenizer against FAST: mean tokens per chunk at equal held-out RMSE.

For each dataset and horizon, FAST is fitted at several scales on the training episodes and scored on the
held-out episodes; for each FAST point, klt's scale is searched (log-log interpolation, then a measured fit)
until its held-out RMSE is within 2% of FAST's, and the mean tokens per chunk are compared. Both use
vocab_size 1024 and the same chunks (LeRobot pipeline, QUANTILES normalization, sample_fraction 0.2, 10% of
episodes held out). Target (zoo issue): >= 20% fewer tokens at equal RMSE (within 5%).

    python benchmarks/rate_distortion.py [--datasets pusht,unitree_g1_pickbottle,robosuite_panda] [--horizons 10,30,50]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from actok import create_tokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.errors import ActokError

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DIMS = {"pusht": "0:2", "unitree_g1_pickbottle": "0:26", "robosuite_panda": "0:7"}
DELTA = {"unitree_g1_pickbottle": ",".join(map(str, range(14)))}


def score(name: str, chunks, scale: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = create_tokenizer(name, scale=scale, vocab_size=1024).fit(chunks.train)
    ids = tok.encode(chunks.holdout)
    rmse = float(np.sqrt(np.mean((tok.decode(ids) - chunks.holdout) ** 2)))
    return rmse, float(np.mean([len(s) for s in ids]))


def matched(chunks, target: float, start: float) -> tuple[float, float, float]:
    """klt's (scale, rmse, tokens) with held-out RMSE within 2% of `target` (or the closest found)."""
    points = [(s, *score("klt", chunks, s)) for s in (start * 0.8, start * 1.25)]
    for _ in range(4):
        best = min(points, key=lambda p: abs(np.log(p[1] / target)))
        if abs(best[1] / target - 1) <= 0.02:
            return best
        (s1, r1, _), (s2, r2, _) = sorted(points, key=lambda p: abs(np.log(p[1] / target)))[:2]
        slope = (np.log(r2) - np.log(r1)) / (np.log(s2) - np.log(s1)) if s1 != s2 and r1 != r2 else -1.0
        scale = float(np.exp(np.log(s1) + (np.log(target) - np.log(r1)) / slope))
        points.append((scale, *score("klt", chunks, scale)))
    return min(points, key=lambda p: abs(np.log(p[1] / target)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="pusht,unitree_g1_pickbottle,robosuite_panda")
    parser.add_argument("--horizons", default="10,30,50")
    parser.add_argument("--fast-scales", default="5,10,20")
    parser.add_argument("--datasets-dir", type=Path, default=DATASETS)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    print(
        f"{'dataset':<22} {'H':>3} {'train':>6} {'FAST scale':>10} {'FAST rmse':>9} {'FAST tok':>8} "
        f"{'klt scale':>9} {'klt rmse':>8} {'klt tok':>7} {'fewer tokens':>12}"
    )
    for dataset in args.datasets.split(","):
        reader = LeRobotDatasetReader(args.datasets_dir / dataset)
        for horizon in map(int, args.horizons.split(",")):
            config = ChunkConfig(
                action_horizon=horizon, encoded_dims=DIMS[dataset], delta_dims=DELTA.get(dataset), sample_fraction=0.2
            )
            try:
                chunks = build_chunks(reader, config)
            except ActokError as exc:
                print(f"{dataset:<22} {horizon:>3} skipped: {exc}")
                continue
            for fast_scale in map(float, args.fast_scales.split(",")):
                try:
                    f_rmse, f_tok = score("fast", chunks, fast_scale)
                except ActokError as exc:
                    print(f"{dataset:<22} {horizon:>3} FAST scale {fast_scale:g} skipped: {exc}")
                    continue
                k_scale, k_rmse, k_tok = matched(chunks, f_rmse, fast_scale)
                row = {
                    "dataset": dataset,
                    "horizon": horizon,
                    "train_chunks": len(chunks.train),
                    "fast_scale": fast_scale,
                    "fast_rmse": f_rmse,
                    "fast_tokens": f_tok,
                    "klt_scale": k_scale,
                    "klt_rmse": k_rmse,
                    "klt_tokens": k_tok,
                    "token_reduction": 1 - k_tok / f_tok,
                }
                rows.append(row)
                print(
                    f"{dataset:<22} {horizon:>3} {len(chunks.train):>6} {fast_scale:>10g} {f_rmse:>9.4f} {f_tok:>8.1f} "
                    f"{k_scale:>9.2f} {k_rmse:>8.4f} {k_tok:>7.1f} {row['token_reduction']:>11.0%}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
