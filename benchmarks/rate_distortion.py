"""Our `klt` tokenizer against FAST at equal held-out RMSE, on every shared dataset and on held-out-style variants:
the one command behind docs/zoo.md's `klt` claims.

Cases: each shared dataset at several horizons (QUANTILES normalization, 10% of episodes held out, seed 0), and
variants built from them to stand in for datasets nobody tuned on: few episodes, a subset of dims, 100 Hz-like
resampling (30 Hz chunks of 15 steps interpolated to 50), and synthetic 40-D chunks. Both tokenizers use their
default parameters and vocab 1024; klt's scale is searched until its held-out RMSE is within 2% of FAST's at
scale 10 (`actok.bench.compare`). Prints one table row per case and writes every measurement as JSON (its batch
encode/decode times are taken while the other cases run: benchmarks/klt_speed.py measures speed).

    python benchmarks/rate_distortion.py --datasets-dir DIR --json rd.json [--cases pusht_h10,g1_h30] [--engine ray]
        (--datasets-dir defaults to $ACTOK_SHARED_DATASETS)
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from _datasets import add_datasets_dir, datasets_dir

from actok.bench.compare import Case, compare_case
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.executor import run_grid

G1_ARMS = ",".join(map(str, range(14)))
# name: (dataset, ChunkConfig fields, what the case stands for)
CASES = {
    "pusht_h10": ("pusht", {"action_horizon": 10, "sample_fraction": 0.2}, "2-D, 206 episodes"),
    "pusht_h30": ("pusht", {"action_horizon": 30, "sample_fraction": 0.2}, ""),
    "pusht_h50": ("pusht", {"action_horizon": 50, "sample_fraction": 0.2}, ""),
    "pusht_state_h10": ("pusht_state", {"action_horizon": 10, "sample_fraction": 0.2}, "pusht's actions"),
    "g1_h10": ("unitree_g1_pickbottle", {"action_horizon": 10, "delta_dims": G1_ARMS, "sample_fraction": 0.2}, ""),
    "g1_h30": ("unitree_g1_pickbottle", {"action_horizon": 30, "delta_dims": G1_ARMS, "sample_fraction": 0.2}, ""),
    "g1_h50": ("unitree_g1_pickbottle", {"action_horizon": 50, "delta_dims": G1_ARMS, "sample_fraction": 0.2}, ""),
    "robosuite_h10": ("robosuite_panda", {"action_horizon": 10, "sample_fraction": 1.0}, "7-D, 4 train episodes"),
    "robosuite_h20": ("robosuite_panda", {"action_horizon": 20, "sample_fraction": 1.0}, ""),
    "robosuite_h50": ("robosuite_panda", {"action_horizon": 50, "sample_fraction": 1.0}, ""),
    "reachy2_h10": ("reachy2_apple_storage", {"action_horizon": 10, "sample_fraction": 1.0}, "19-D, 2 train episodes"),
    "reachy2_h30": ("reachy2_apple_storage", {"action_horizon": 30, "sample_fraction": 1.0}, ""),
    "g1_25ep_h50": (
        "unitree_g1_pickbottle",
        {"action_horizon": 50, "max_episodes": 28, "sample_fraction": 0.5},
        "like the 28-D / 25 episodes / H=50 failure: absolute joints, 25 train episodes",
    ),
    "g1_hand_8ep_h20": (
        "unitree_g1_pickbottle",
        {"action_horizon": 20, "encoded_dims": "14:22", "max_episodes": 9, "sample_fraction": 1.0},
        "like the 8-D / 8 episodes / H=20 failure: 8 hand dims, 8 train episodes",
    ),
    "pusht_full_h10": (
        "pusht",
        {"action_horizon": 10, "sample_fraction": 1.0},
        "like the 2-D / 1000 episodes / H=10 failure: every chunk",
    ),
    "pusht_8ep_h20": ("pusht", {"action_horizon": 20, "max_episodes": 9, "sample_fraction": 1.0}, "8 train episodes"),
    "g1_100hz_h50": (
        "unitree_g1_pickbottle",
        {"action_horizon": 15, "delta_dims": G1_ARMS, "sample_fraction": 0.2},
        "100 Hz-like: 15-step chunks interpolated to 50 steps",
    ),
}
SYNTHETIC = "synthetic_40d_h20"


def resample(chunks: np.ndarray, horizon: int) -> np.ndarray:
    """Chunks `[N, H, D]` linearly interpolated in time to `[N, horizon, D]` (a faster control rate)."""
    t = np.linspace(0, chunks.shape[1] - 1, horizon)
    i = np.minimum(np.floor(t).astype(int), chunks.shape[1] - 2)
    f = (t - i)[None, :, None]
    return chunks[:, i] * (1 - f) + chunks[:, i + 1] * f


def synthetic(seed: int = 0, episodes: int = 30, horizon: int = 20, dims: int = 40) -> Case:
    """40-D chunks from 6 smooth latent processes through a fixed nonlinear mixing, plus sensor noise; 3 of 30
    episodes held out: many correlated dims, as a dexterous hand's."""
    rng = np.random.default_rng(seed)
    mixing = np.linspace(-1, 1, dims)[:, None] ** np.arange(6)[None, :]
    chunks = []
    for _ in range(episodes):
        latent = np.cumsum(np.cumsum(rng.normal(size=(200, 6)) * 0.002, axis=0), axis=0)
        x = np.tanh(latent @ mixing.T) + rng.normal(size=(200, dims)) * 0.003
        chunks.append(np.lib.stride_tricks.sliding_window_view(x, horizon, axis=0).transpose(0, 2, 1)[::2])
    return Case(SYNTHETIC, np.concatenate(chunks[:-3]), np.concatenate(chunks[-3:]), {"about": "synthetic 40-D"})


def build_case(name: str, datasets: Path) -> Case:
    if name == SYNTHETIC:
        return synthetic()
    dataset, fields, about = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks = build_chunks(LeRobotDatasetReader(datasets / dataset), ChunkConfig(**fields))
    train, holdout = chunks.train, chunks.holdout
    if name.startswith("g1_100hz"):
        train, holdout = resample(train, 50), resample(holdout, 50)
    notes = {"dataset": dataset, "about": about, "train_episodes": len(chunks.train_episodes)}
    return Case(name, train, holdout, notes)


def run_case(item: tuple[str, str, float]) -> dict:
    name, datasets, fast_scale = item
    return compare_case(build_case(name, Path(datasets)), fast_scale=fast_scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join([*CASES, SYNTHETIC]))
    parser.add_argument("--fast-scale", type=float, default=10.0)
    add_datasets_dir(parser)
    parser.add_argument("--engine", default="local", choices=("local", "ray"))
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here (never replaced)")
    args = parser.parse_args()
    if args.json is not None and args.json.exists():
        parser.error(f"{args.json} exists; choose another --json path")
    folder = datasets_dir(parser, args)
    names = args.cases.split(",")
    print(
        "| case | H x D | train chunks | FAST tokens @ RMSE | klt tokens | fewer | klt transform | "
        "gap to KLT bound (tokens) FAST / klt | 5% noise ΔRMSE FAST / klt | random ids valid FAST / klt | "
        "klt prefix RMSE 25/50/75/100% |"
    )
    print("|" + "---|" * 11)
    rows = []
    items = [(n, str(folder), args.fast_scale) for n in names]
    for i, row in run_grid(run_case, items, engine=args.engine):
        if isinstance(row, Exception):
            print(f"| {names[i]} | failed: {row} |")
            continue
        rows.append(row)
        f, k = row["fast"], row["klt"]
        print(
            f"| {row['case']} | {row['horizon']} x {row['action_dim']} | {row['train_chunks']} | "
            f"{f['tokens']:.1f} @ {f['rmse']:.4f} | {k['tokens']:.1f} | {row['token_reduction']:.0%} | "
            f"{k['fitted_transform'][0]} {k['fitted_transform'][1]:g} | "
            f"{f['klt_bound_gap_tokens']:.1f} / {k['klt_bound_gap_tokens']:.1f} | "
            f"{f['noise_5pct_rmse_increase']:.3f} / {k['noise_5pct_rmse_increase']:.3f} | "
            f"{f['random_sequences_valid_fraction']:.0%} / {k['random_sequences_valid_fraction']:.0%} | "
            f"{' / '.join(f'{r:.3f}' for r in k['prefix_rmse'])} |",
            flush=True,
        )
    if rows:
        reductions = [r["token_reduction"] for r in rows]
        print(f"\nmean token reduction {np.mean(reductions):.1%}, worst {min(reductions):.1%} ({len(rows)} cases)")
    if args.json is not None:
        with open(args.json, "x") as file:
            json.dump(rows, file, indent=1)
            file.write("\n")


if __name__ == "__main__":
    main()
