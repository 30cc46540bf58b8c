"""Learned tokenizers: time to the early-stopping point, and batched encode + decode of 10,000 chunks.

Targets (learned-tokenizers issue): `rvq` with its defaults trains to its early-stopping point in under 2 minutes
on pusht (H=10) and on unitree_g1_pickbottle (H=30, 26 dims, delta on the 14 arm dims), each with the pipeline
`actok train` uses (sample_fraction 0.1, 10% of episodes held out for early stopping); batched encode + decode
of 10,000 chunks takes under 1 s on the CPU. The baseline in the same run is the plain per-chunk loop
(one encode and one decode call per chunk), which must return the same ids.

    python benchmarks/learned_speed.py [--tokenizers rvq] [--datasets-dir DIR]  (default $ACTOK_SHARED_DATASETS)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _datasets import add_datasets_dir, datasets_dir

from actok import create_tokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks

CASES = {
    "pusht": ChunkConfig(action_horizon=10, sample_fraction=0.1),
    "unitree_g1_pickbottle": ChunkConfig(
        action_horizon=30, encoded_dims="0:26", delta_dims=",".join(map(str, range(14))), sample_fraction=0.1
    ),
}
N_CHUNKS = 10_000
BASELINE_CHUNKS = 500  # the per-chunk loop is timed on fewer chunks and scaled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizers", default="rvq", help="comma-separated learned tokenizers (default rvq)")
    add_datasets_dir(parser)
    args = parser.parse_args()
    folder = datasets_dir(parser, args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA available: {torch.cuda.is_available()}")
    print(
        f"{'tokenizer':<7} {'dataset':<22} {'chunks':>6} {'epochs':>6} {'stop':>14} {'fit s':>7} {'val RMSE':>9} "
        f"{'10k enc+dec s':>14} {'per-chunk loop s':>17} {'ratio':>6}"
    )
    for name in args.tokenizers.split(","):
        for dataset, config in CASES.items():
            chunks = build_chunks(LeRobotDatasetReader(folder / dataset), config)
            tok = create_tokenizer(name, progress=False)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tok.fit(chunks.train, validation=chunks.holdout)
            fit_time = time.perf_counter() - start
            x = np.resize(chunks.holdout, (N_CHUNKS, *chunks.holdout.shape[1:]))
            tok.decode(tok.encode(x[:100]))  # warm-up
            start = time.perf_counter()
            ids = tok.encode(x)
            tok.decode(ids)
            batch_time = time.perf_counter() - start
            start = time.perf_counter()
            loop_ids = [tok.encode(x[i : i + 1])[0] for i in range(BASELINE_CHUNKS)]
            for s in loop_ids:
                tok.decode([s])
            loop_time = (time.perf_counter() - start) * N_CHUNKS / BASELINE_CHUNKS
            assert loop_ids == ids[:BASELINE_CHUNKS], "batch and per-chunk ids differ"
            s = tok.training_summary
            print(
                f"{name:<7} {dataset:<22} {s['num_train_chunks']:>6} {s['epochs_run']:>6} {s['stopped_by']:>14} "
                f"{fit_time:>7.1f} {s['validation_rmse']:>9.4f} {batch_time:>14.3f} {loop_time:>17.2f} "
                f"{loop_time / batch_time:>5.0f}x"
            )


if __name__ == "__main__":
    main()
