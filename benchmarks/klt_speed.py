"""klt's batch encode and decode speed against FAST's, in the same run, on the same held-out chunks.

Target (issue 13): klt's batch encode and decode at least as fast as FAST's. Both are fitted on the training
episodes with their default parameters (vocab 1024, scale 10) and time `encode` / `decode` of the held-out chunks,
best of `--repeats`, interleaved so that both see the same machine load; the ratios are klt's time / FAST's.

    python benchmarks/klt_speed.py --datasets-dir DIR [--dataset unitree_g1_pickbottle] [--horizon 30]
    python benchmarks/klt_speed.py --datasets-dir DIR --cases g1_h50,reachy2_h30,g1_25ep_h50   # a table
    python benchmarks/klt_speed.py --datasets-dir DIR --horizon 50 --batch-sizes 1,10,100      # per call

`--datasets-dir` defaults to $ACTOK_SHARED_DATASETS. On G1 the delta transform is applied to the 14 arm joints.
`--cases` takes the case names of benchmarks/rate_distortion.py (each shared dataset at several horizons, and the
stand-ins for datasets nobody tuned on) and prints one table row per case. `--batch-sizes` times calls on the
first n held-out chunks instead (µs per call, best of at least `--repeats` and of ~2000 chunks' worth of calls).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _datasets import add_datasets_dir, datasets_dir
from rate_distortion import CASES, SYNTHETIC, build_case

from actok import create_tokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks

DELTA = {"unitree_g1_pickbottle": ",".join(map(str, range(14)))}


def best_times(calls: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each call, the calls interleaved `repeats` times."""
    best = dict.fromkeys(calls, np.inf)
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def fitted(train: np.ndarray) -> dict:
    """FAST and klt at their default parameters, fitted on `train`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: create_tokenizer(name).fit(train) for name in ("fast", "klt")}


def measure(train: np.ndarray, held: np.ndarray, repeats: int) -> dict[str, dict]:
    """FAST and klt fitted on `train` (default parameters), timed on `held`: per tokenizer its µs per chunk to
    encode and decode, tokens per chunk, held-out RMSE (and klt's fitted transform and coded components)."""
    toks = fitted(train)
    ids = {name: tok.encode(held) for name, tok in toks.items()}
    calls = {}
    for name, tok in toks.items():
        calls[f"{name} encode"] = lambda tok=tok: tok.encode(held)
        calls[f"{name} decode"] = lambda tok=tok, name=name: tok.decode(ids[name])
    best = best_times(calls, repeats)
    out = {}
    for name, tok in toks.items():
        out[name] = {what: best[f"{name} {what}"] / len(held) * 1e6 for what in ("encode", "decode")}
        out[name]["tokens"] = float(np.mean([len(s) for s in ids[name]]))
        out[name]["rmse"] = float(np.sqrt(np.mean((tok.decode(ids[name]) - held) ** 2)))
    klt = toks["klt"]
    out["klt"]["transform"] = f"{klt.fitted_transform[0]} {klt.fitted_transform[1]:g}"
    out["klt"]["coded"] = f"{klt.basis.shape[1]} of {klt.basis.shape[0]}"
    return out


def per_call(train: np.ndarray, held: np.ndarray, sizes: list[int], repeats: int) -> None:
    """Print each tokenizer's µs per encode and decode call of the first n held-out chunks, for n in `sizes`."""
    toks = fitted(train)
    print(f"µs per call (best of at least {repeats}); klt time / FAST time in brackets")
    for n in sizes:
        x = held[:n]
        ids = {name: tok.encode(x) for name, tok in toks.items()}
        calls = {}
        for name, tok in toks.items():
            calls[f"{name} encode"] = lambda tok=tok, x=x: tok.encode(x)
            calls[f"{name} decode"] = lambda tok=tok, seqs=ids[name]: tok.decode(seqs)
        best = {k: v * 1e6 for k, v in best_times(calls, max(repeats, 2000 // len(x))).items()}
        print(f"{len(x):5d} chunks: " + ", ".join(
            f"{what} FAST {best[f'fast {what}']:.0f} klt {best[f'klt {what}']:.0f} "
            f"({best[f'klt {what}'] / best[f'fast {what}']:.2f})" for what in ("encode", "decode")))  # fmt: skip


def print_single(name: str, horizon: int, held: np.ndarray, repeats: int, result: dict) -> None:
    print(f"{name}, H={horizon}, D={held.shape[2]}: {len(held)} held-out chunks, best of {repeats}")
    for tok in ("fast", "klt"):
        r = result[tok]
        print(f"{tok:>5}: encode {r['encode']:6.1f} µs/chunk, decode {r['decode']:6.1f} µs/chunk, "
              f"{r['tokens']:5.1f} tokens, RMSE {r['rmse']:.4f}")  # fmt: skip
    for what in ("encode", "decode"):
        print(f"klt / FAST {what} time: {result['klt'][what] / result['fast'][what]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_datasets_dir(parser)
    parser.add_argument("--dataset", default="unitree_g1_pickbottle")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--cases", default=None, help=f"rate_distortion.py cases: {','.join([*CASES, SYNTHETIC])}")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated chunks per call, e.g. 1,10,100")
    args = parser.parse_args()
    folder = datasets_dir(parser, args)
    if args.cases is None:
        config = ChunkConfig(action_horizon=args.horizon, delta_dims=DELTA.get(args.dataset), sample_fraction=1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chunks = build_chunks(LeRobotDatasetReader(folder / args.dataset), config)
        if args.batch_sizes is not None:
            per_call(chunks.train, chunks.holdout, [int(n) for n in args.batch_sizes.split(",")], args.repeats)
            return
        result = measure(chunks.train, chunks.holdout, args.repeats)
        print_single(args.dataset, args.horizon, chunks.holdout, args.repeats, result)
        return
    unknown = [name for name in args.cases.split(",") if name not in CASES and name != SYNTHETIC]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join([*CASES, SYNTHETIC])}")
    print(f"best of {args.repeats}, µs per chunk; ratios: klt time / FAST time")
    print("| case | H x D | held-out chunks | klt transform | coded | FAST encode / decode | klt encode / decode "
          "| klt / FAST encode, decode |")  # fmt: skip
    print("|" + "---|" * 8)
    for name in args.cases.split(","):
        case = build_case(name, folder)
        r = measure(case.train, case.holdout, args.repeats)
        f, k = r["fast"], r["klt"]
        print(f"| {name} | {case.holdout.shape[1]} x {case.holdout.shape[2]} | {len(case.holdout)} | "
              f"{k['transform']} | {k['coded']} | {f['encode']:.1f} / {f['decode']:.1f} | "
              f"{k['encode']:.1f} / {k['decode']:.1f} | {k['encode'] / f['encode']:.2f}, "
              f"{k['decode'] / f['decode']:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
