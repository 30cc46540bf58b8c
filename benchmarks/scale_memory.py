"""Peak memory and wall time of `actok train` on a synthetic LeRobot v3.0 dataset of N frames × D dims.

Writes the dataset (files of ~100 MB like LeRobot's: float32 `action` and `observation.state`, `timestamp`,
`frame_index`, `episode_index`, `index`, `task_index`; `meta/stats.json` with min/max/mean/std/count but no
quantiles, so QUANTILES normalization has to compute q01/q99 from the frames), then runs, each in its own child
process, and records the child's peak resident memory (`ru_maxrss` of its `os.wait4` resource usage) and wall
time:

- `read actions`: a plain baseline in the same run, pyarrow reading every file's `action` column into one array
  (what merely holding the actions costs);
- `actok train`: the whole command (read, chunk, normalize, fit, save), with the extra flags given.

    python benchmarks/scale_memory.py --frames 1000000 --dims 8 [--keep DIR] [-- --tokenizer binning ...]

The dataset goes to a temporary folder under --tmp (default: the system's), deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FILE_BYTES = 100 * 2**20  # LeRobot v3.0 writes data files of ~100 MB
FPS = 30


def _frame_bytes(dims: int) -> int:
    return 2 * 4 * dims + 4 + 4 * 8  # action + state (float32), timestamp (float32), four int64 columns


def _file_table(rng: np.random.Generator, lengths: np.ndarray, first_episode: int, first_frame: int, dims: int):
    """One data file: episodes `first_episode...` of `lengths` frames, smooth random walks in float32."""
    n = int(lengths.sum())
    episode = np.repeat(np.arange(first_episode, first_episode + len(lengths)), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frame = np.arange(n) - np.repeat(starts, lengths)
    steps = rng.normal(0.0, 0.01, size=(n, dims)).astype(np.float32)
    steps[starts] = rng.normal(0.0, 1.0, size=(len(lengths), dims))  # each episode starts somewhere new
    action = np.cumsum(steps, axis=0, dtype=np.float32)
    state = action + rng.normal(0.0, 0.001, size=action.shape).astype(np.float32)

    def vectors(x: np.ndarray) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dims)

    return pa.table(
        {
            "action": vectors(action),
            "observation.state": vectors(state),
            "timestamp": pa.array((frame / FPS).astype(np.float32)),
            "frame_index": pa.array(frame, pa.int64()),
            "episode_index": pa.array(episode, pa.int64()),
            "index": pa.array(first_frame + np.arange(n), pa.int64()),
            "task_index": pa.array(np.zeros(n, np.int64)),
        }
    ), action


def write_dataset(root: Path, frames: int, dims: int, episode_length: int, seed: int = 0) -> None:
    """A LeRobot v3.0 dataset of `frames` frames × `dims` dims in episodes of `episode_length` frames."""
    rng = np.random.default_rng(seed)
    lengths = np.full(frames // episode_length, episode_length)
    lengths[-1] += frames - lengths.sum()
    per_file = max(1, FILE_BYTES // (_frame_bytes(dims) * episode_length))  # whole episodes per file
    moments = np.zeros((3, dims))  # count, sum, sum of squares (float64)
    low, high = np.full(dims, np.inf), np.full(dims, -np.inf)
    (root / "data" / "chunk-000").mkdir(parents=True)
    (root / "meta").mkdir()
    first_frame = 0
    for number, first in enumerate(range(0, len(lengths), per_file)):
        table, action = _file_table(rng, lengths[first : first + per_file], first, first_frame, dims)
        pq.write_table(table, root / "data" / "chunk-000" / f"file-{number:03d}.parquet")
        first_frame += len(action)
        moments += [
            np.full(dims, len(action)),
            action.sum(0, dtype=np.float64),
            (action.astype(np.float64) ** 2).sum(0),
        ]
        low, high = np.minimum(low, action.min(0)), np.maximum(high, action.max(0))
    mean = moments[1] / moments[0]
    std = np.sqrt(np.maximum(moments[2] / moments[0] - mean**2, 0.0))
    vector = {"dtype": "float32", "shape": [dims], "names": None}
    info = {
        "codebase_version": "v3.0",
        "fps": FPS,
        "total_episodes": len(lengths),
        "total_frames": frames,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "features": {"action": vector, "observation.state": vector}
        | {k: {"dtype": "int64", "shape": [1], "names": None} for k in ("frame_index", "episode_index", "index")},
    }
    stats = {"min": low, "max": high, "mean": mean, "std": std, "count": [frames]}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    (root / "meta" / "stats.json").write_text(
        json.dumps({"action": {k: np.asarray(v).tolist() for k, v in stats.items()}})
    )


READ_ACTIONS = """
import sys, numpy as np, pyarrow.parquet as pq
from pathlib import Path
files = sorted(Path(sys.argv[1]).glob("data/**/*.parquet"))
parts = [pq.read_table(f, columns=["action"]).column("action").combine_chunks().flatten().to_numpy() for f in files]
print(np.concatenate(parts).nbytes)
"""


def measure(command: list[str], log: Path) -> tuple[float, float]:
    """Run `command` in a child process; (its peak RSS in GB, wall seconds). `os.wait4` gives this child's own
    resource usage (`getrusage(RUSAGE_CHILDREN)` would be the maximum over every child so far)."""
    start = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({child.returncode}):\n{log.read_text()[-2000:]}")
    return usage.ru_maxrss / 2**20, wall  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--episode-length", type=int, default=500)
    parser.add_argument("--horizon", type=int, default=15)
    parser.add_argument("--tmp", default=None, help="folder for the synthetic dataset (default: the system's)")
    parser.add_argument("--keep", default=None, help="write the dataset here and keep it (reused when present)")
    parser.add_argument("train_args", nargs="*", help="extra `actok train` flags, after --")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="actok_scale_", dir=args.tmp))
    root = Path(args.keep) if args.keep else work / "dataset"
    try:
        if not (root / "meta" / "info.json").is_file():
            start = time.perf_counter()
            write_dataset(root, args.frames, args.dims, args.episode_length)
            print(f"wrote {args.frames:,} frames × {args.dims} dims to {root} in {time.perf_counter() - start:.0f} s")
        files = sorted(root.glob("data/**/*.parquet"))
        print(f"{len(files)} data files, {sum(f.stat().st_size for f in files) / 2**20:.0f} MB")
        base_gb, base_s = measure([sys.executable, "-c", READ_ACTIONS, str(root)], work / "read.log")
        train = [sys.executable, "-m", "actok", "train", "--root", str(root), "--output-dir", str(work / "tok")]
        train += ["--action-horizon", str(args.horizon), "--encoded-dims", f"0:{args.dims}", *args.train_args]
        gb, seconds = measure(train, work / "train.log")
        print((work / "train.log").read_text()[-1500:])
        action_gb = args.frames * args.dims * 4 / 2**30
        print("\n| case | peak RSS | wall | vs read actions |\n|---|---|---|---|")
        print(f"| read actions ({action_gb:.2f} GB of float32) | {base_gb:.2f} GB | {base_s:.1f} s | 1× |")
        print(
            f"| actok train {' '.join(args.train_args)} | {gb:.2f} GB | {seconds:.1f} s | {gb / base_gb:.1f}× RSS, {seconds / base_s:.1f}× time |"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
