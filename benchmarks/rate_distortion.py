"""Rate-distortion of our `klt` tokenizer against FAST: mean tokens per chunk at equal held-out RMSE.

For each dataset and horizon, FAST is fitted at several scales on the training episodes and scored on the
held-out episodes; for each FAST point, klt's scale is searched (log-log interpolation, then a measured fit)
until its held-out RMSE is within 2% of FAST's, and the mean tokens per chunk are compared. Both use
vocab_size 1024 and the same chunks (LeRobot pipeline, QUANTILES normalization, sample_fraction 0.2, 10% of
episodes held out); every point is one cell of the bench harness (`actok.bench.run_cell`: the metrics
`actok bench` writes), scored on every held-out chunk. Target (zoo issue): >= 20% fewer tokens at equal RMSE
(within 5%).

    python benchmarks/rate_distortion.py --datasets-dir DIR [--datasets pusht,unitree_g1_pickbottle,robosuite_panda]
        [--horizons 10,30,50]      (--datasets-dir defaults to $ACTOK_SHARED_DATASETS)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from _datasets import add_datasets_dir, datasets_dir

from actok import bench
from actok.data import ChunkConfig
from actok.errors import ActokError

DIMS = {"pusht": "0:2", "unitree_g1_pickbottle": "0:26", "robosuite_panda": "0:7"}
DELTA = {"unitree_g1_pickbottle": ",".join(map(str, range(14)))}
VOCAB_SIZE = 1024


def outcome(dataset: bench.DatasetSpec, settings: bench.BenchSettings, name: str, scale: float) -> bench.CellOutcome:
    """One cell of the bench harness: tokenizer `name` at `scale` (the dataset's chunks are built once for
    consecutive cells of the same dataset and settings)."""
    spec = bench.TokenizerSpec(name, {"scale": scale, "vocab_size": VOCAB_SIZE}, f"{name}-scale{scale:g}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FAST warns when its coefficient range nears the vocabulary
        return bench.run_cell(bench.Cell(dataset, spec, settings))


def score(dataset, settings, name: str, scale: float) -> tuple[float, float]:
    """(held-out RMSE, mean tokens per chunk) of tokenizer `name` at `scale`."""
    cell = outcome(dataset, settings, name, scale)
    if cell.error:
        raise ActokError(cell.error)
    return cell.result.metrics["reconstruction_rmse"], cell.result.metrics["mean_token_length"]


def matched(dataset, settings, target: float, start: float) -> tuple[float, float, float]:
    """klt's (scale, rmse, tokens) with held-out RMSE within 2% of `target` (or the closest found)."""
    points = [(s, *score(dataset, settings, "klt", s)) for s in (start * 0.8, start * 1.25)]
    for _ in range(4):
        best = min(points, key=lambda p: abs(np.log(p[1] / target)))
        if abs(best[1] / target - 1) <= 0.02:
            return best
        (s1, r1, _), (s2, r2, _) = sorted(points, key=lambda p: abs(np.log(p[1] / target)))[:2]
        slope = (np.log(r2) - np.log(r1)) / (np.log(s2) - np.log(s1)) if s1 != s2 and r1 != r2 else -1.0
        scale = float(np.exp(np.log(s1) + (np.log(target) - np.log(r1)) / slope))
        points.append((scale, *score(dataset, settings, "klt", scale)))
    return min(points, key=lambda p: abs(np.log(p[1] / target)))


def row(name: str, horizon: int, fast: bench.CellOutcome, dataset, settings, fast_scale: float) -> dict:
    """FAST's point and klt's matched one, as a table row."""
    metrics = fast.result.metrics
    f_rmse, f_tok = metrics["reconstruction_rmse"], metrics["mean_token_length"]
    k_scale, k_rmse, k_tok = matched(dataset, settings, f_rmse, fast_scale)
    return {
        "dataset": name,
        "horizon": horizon,
        "train_chunks": metrics["num_train_chunks"],
        "fast_scale": fast_scale,
        "fast_rmse": f_rmse,
        "fast_tokens": f_tok,
        "klt_scale": k_scale,
        "klt_rmse": k_rmse,
        "klt_tokens": k_tok,
        "token_reduction": 1 - k_tok / f_tok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="pusht,unitree_g1_pickbottle,robosuite_panda")
    parser.add_argument("--horizons", default="10,30,50")
    parser.add_argument("--fast-scales", default="5,10,20")
    add_datasets_dir(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    folder = datasets_dir(parser, args)
    rows = []
    print(
        f"{'dataset':<22} {'H':>3} {'train':>6} {'FAST scale':>10} {'FAST rmse':>9} {'FAST tok':>8} "
        f"{'klt scale':>9} {'klt rmse':>8} {'klt tok':>7} {'fewer tokens':>12}"
    )
    for name in args.datasets.split(","):
        dataset = bench.DatasetSpec.resolve(root=folder / name)
        for horizon in map(int, args.horizons.split(",")):
            config = ChunkConfig(
                action_horizon=horizon, encoded_dims=DIMS[name], delta_dims=DELTA.get(name), sample_fraction=0.2
            )
            settings = bench.BenchSettings(config, max_chunks=None)  # every held-out chunk
            for fast_scale in map(float, args.fast_scales.split(",")):
                try:
                    fast = outcome(dataset, settings, "fast", fast_scale)
                except ActokError as exc:  # the dataset cannot be cut at this horizon
                    print(f"{name:<22} {horizon:>3} skipped: {exc}")
                    break
                if fast.error:
                    print(f"{name:<22} {horizon:>3} FAST scale {fast_scale:g} skipped: {fast.error}")
                    continue
                rows.append(row(name, horizon, fast, dataset, settings, fast_scale))
                r = rows[-1]
                print(
                    f"{name:<22} {horizon:>3} {r['train_chunks']:>6} {fast_scale:>10g} {r['fast_rmse']:>9.4f} "
                    f"{r['fast_tokens']:>8.1f} {r['klt_scale']:>9.2f} {r['klt_rmse']:>8.4f} {r['klt_tokens']:>7.1f} "
                    f"{r['token_reduction']:>11.0%}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
