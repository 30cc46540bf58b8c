"""klt's batch encode and decode speed against FAST's, in the same run, on the same held-out chunks.

Target (issue 13): klt's batch encode and decode at least as fast as FAST's. Both are fitted on the training
episodes with their default parameters (vocab 1024, scale 10) and time `encode` / `decode` of the held-out chunks,
best of `--repeats`, interleaved so that both see the same machine load; the ratios are klt's time / FAST's.

    python benchmarks/klt_speed.py --datasets-dir DIR [--dataset unitree_g1_pickbottle] [--horizon 30]

`--datasets-dir` defaults to $ACTOK_SHARED_DATASETS. On G1 the delta transform is applied to the 14 arm joints.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _datasets import add_datasets_dir, datasets_dir

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_datasets_dir(parser)
    parser.add_argument("--dataset", default="unitree_g1_pickbottle")
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    folder = datasets_dir(parser, args)
    config = ChunkConfig(action_horizon=args.horizon, delta_dims=DELTA.get(args.dataset), sample_fraction=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks = build_chunks(LeRobotDatasetReader(folder / args.dataset), config)
        toks = {name: create_tokenizer(name).fit(chunks.train) for name in ("fast", "klt")}
    held = chunks.holdout
    ids = {name: tok.encode(held) for name, tok in toks.items()}
    calls = {}
    for name, tok in toks.items():
        calls[f"{name} encode"] = lambda tok=tok: tok.encode(held)
        calls[f"{name} decode"] = lambda tok=tok, name=name: tok.decode(ids[name])
    best = best_times(calls, args.repeats)
    print(f"{args.dataset}, H={args.horizon}, D={held.shape[2]}: {len(held)} held-out chunks, best of {args.repeats}")
    for name, tok in toks.items():
        rmse = np.sqrt(np.mean((tok.decode(ids[name]) - held) ** 2))
        tokens = np.mean([len(s) for s in ids[name]])
        us = {what: best[f"{name} {what}"] / len(held) * 1e6 for what in ("encode", "decode")}
        print(f"{name:>5}: encode {us['encode']:6.1f} µs/chunk, decode {us['decode']:6.1f} µs/chunk, "
              f"{tokens:5.1f} tokens, RMSE {rmse:.4f}")  # fmt: skip
    for what in ("encode", "decode"):
        print(f"klt / FAST {what} time: {best[f'klt {what}'] / best[f'fast {what}']:.2f}")


if __name__ == "__main__":
    main()
