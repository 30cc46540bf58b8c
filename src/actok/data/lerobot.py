"""Read LeRobot datasets (layouts v3.0, v2.1, v2.0) straight from parquet, without the `lerobot` package.

Only the columns a caller needs are read. Where `meta/info.json` disagrees with the files on disk (totals,
feature shapes), the files win and an `ActokWarning` says so.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from actok.errors import ActokError, ActokWarning

SUPPORTED_CODEBASE_VERSIONS = ("v2.0", "v2.1", "v3.0")
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
_EPISODE_FILE_RE = re.compile(r"episode_(\d+)\.parquet$")


@dataclass(frozen=True)
class Episode:
    """One episode's time series. `frame_index` is the frame number within the episode, `[T]`."""

    index: int
    action: np.ndarray  # [T, A]
    state: np.ndarray | None  # [T, S], None when not requested
    frame_index: np.ndarray  # [T] int64

    def __len__(self) -> int:
        return len(self.action)


def default_cache_roots(repo_id: str) -> list[Path]:
    """Local folders searched for `repo_id` when no `root` is given, in order."""
    roots = []
    if os.environ.get("HF_LEROBOT_HOME"):
        roots.append(Path(os.environ["HF_LEROBOT_HOME"]).expanduser() / repo_id)
    roots.append(Path("~/.cache/huggingface/lerobot").expanduser() / repo_id)
    return list(dict.fromkeys(roots))


def resolve_dataset_root(repo_id: str | None, root: str | os.PathLike | None = None) -> Path:
    """Find a dataset on disk: `root` if given, else the local cache, else download it from the Hub.

    Downloading needs `huggingface_hub` (the `actok[hub]` extra) and network access; otherwise the error
    names every path that was tried.
    """
    if root is not None:
        path = Path(root).expanduser()
        if not path.exists():
            raise ActokError(f"dataset root {path} does not exist")
        if not (path / "meta" / "info.json").is_file():
            raise ActokError(f"{path} is not a LeRobot dataset: expected the file {path / 'meta' / 'info.json'}")
        return path
    if not repo_id:
        raise ActokError("no dataset given: pass --root DIR (a LeRobot dataset folder) or --repo-id ID")
    tried = default_cache_roots(repo_id)
    for candidate in tried:
        if (candidate / "meta" / "info.json").is_file():
            return candidate
    tried_text = ", ".join(str(p) for p in tried)
    try:
        import huggingface_hub
    except ImportError:
        raise ActokError(
            f"dataset {repo_id!r} not found locally (tried {tried_text}) and huggingface_hub is not installed "
            "to download it: pass --root DIR, or pip install 'actok[hub]'"
        ) from None
    target = tried[0]
    try:
        huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", local_dir=target, allow_patterns=["meta/*", "data/*"]
        )
    except Exception as exc:  # the Hub client raises many types; all mean "could not download"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ActokError(
            f"dataset {repo_id!r} not found locally (tried {tried_text}) and the Hugging Face Hub download "
            f"failed ({type(exc).__name__}: {reason}); pass --root DIR to use a local copy"
        ) from None
    if not (target / "meta" / "info.json").is_file():
        raise ActokError(f"downloaded {repo_id!r} to {target}, but it has no meta/info.json")
    return target


def _list_column_to_numpy(column: pa.ChunkedArray, name: str, path: Path) -> np.ndarray:
    """A fixed-size or variable list column of floats -> `[n, d]` array (a scalar column -> `[n, 1]`)."""
    arr = column.combine_chunks()
    n = len(arr)
    if arr.null_count:
        raise ActokError(f"column {name!r} in {path} has {arr.null_count} null rows")
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
        values = arr.flatten()
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.unique(arr.value_lengths().to_numpy(zero_copy_only=False))
        if len(lengths) > 1:
            raise ActokError(f"column {name!r} in {path} has rows of different lengths {lengths.tolist()}")
        dim = int(lengths[0]) if len(lengths) else 0
        values = arr.flatten()
    else:
        dim = 1
        values = arr
    out = values.to_numpy(zero_copy_only=False)
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float64)
    return out.reshape(n, dim)


class LeRobotDatasetReader:
    """A LeRobot dataset folder, read lazily with pyarrow.

    `reader.episodes(state_key=...)` returns the episodes sorted by episode index, each sorted by frame.
    `reader.stats(keys)` returns `{feature: {stat: array}}` and where they came from.
    """

    def __init__(self, root: str | os.PathLike, repo_id: str | None = None):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise ActokError(f"{self.root} is not a LeRobot dataset: expected the file {info_path}")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise ActokError(f"{info_path} is not valid JSON: {exc}") from None
        self.codebase_version = str(self.info.get("codebase_version", ""))
        if self.codebase_version not in SUPPORTED_CODEBASE_VERSIONS:
            raise ActokError(
                f"unsupported codebase_version {self.codebase_version!r} in {info_path}; "
                f"supported: {', '.join(SUPPORTED_CODEBASE_VERSIONS)}"
            )
        self.repo_id = repo_id or self.root.name
        self.fps = self.info.get("fps")
        self.data_files = sorted((self.root / "data").glob("**/*.parquet"))
        if not self.data_files:
            template = self.info.get("data_path", "data/chunk-000/...parquet")
            raise ActokError(f"{self.root} has no data files: expected parquet files like {template}")
        self.columns = list(pq.read_schema(self.data_files[0]).names)
        self._cache: dict[tuple, list[Episode]] = {}

    def __repr__(self) -> str:
        return f"LeRobotDatasetReader(root={str(self.root)!r}, codebase_version={self.codebase_version!r})"

    # ---------------------------------------------------------------- episodes
    def episodes(self, state_key: str | None = None) -> list[Episode]:
        """All episodes, sorted by episode index; `state` is filled when `state_key` is given."""
        key = (state_key,)
        if key not in self._cache:
            self._cache[key] = self._read_episodes(state_key)
        return self._cache[key]

    def _read_episodes(self, state_key: str | None) -> list[Episode]:
        if "action" not in self.columns:
            raise ActokError(f"{self.data_files[0]} has no 'action' column; columns: {', '.join(self.columns)}")
        if state_key is not None and state_key not in self.columns:
            raise ActokError(
                f"state key {state_key!r} not found in {self.repo_id}; available columns: {', '.join(self.columns)}"
            )
        actions, states, episode_ids, order_keys = [], [], [], []
        has_frame_index = True
        for path in self.data_files:
            names = set(pq.read_schema(path).names)
            wanted = ["action"] + ([state_key] if state_key else [])
            wanted += [c for c in ("episode_index", "frame_index", "index") if c in names]
            missing = [c for c in wanted if c not in names]
            if missing:
                raise ActokError(f"{path} lacks column(s) {', '.join(missing)}; it has {', '.join(sorted(names))}")
            table = pq.read_table(path, columns=wanted)
            n = table.num_rows
            actions.append(_list_column_to_numpy(table.column("action"), "action", path))
            if state_key:
                states.append(_list_column_to_numpy(table.column(state_key), state_key, path))
            if "episode_index" in names:
                episode_ids.append(table.column("episode_index").to_numpy().astype(np.int64))
            else:
                match = _EPISODE_FILE_RE.search(path.name)
                if match is None:
                    raise ActokError(f"{path} has no 'episode_index' column and its name does not give one")
                episode_ids.append(np.full(n, int(match.group(1)), dtype=np.int64))
            # frame_index is optional in real datasets: fall back to the global index, then file order.
            order_col = "frame_index" if "frame_index" in names else ("index" if "index" in names else None)
            has_frame_index &= order_col == "frame_index"
            order_keys.append(
                table.column(order_col).to_numpy().astype(np.int64) if order_col else np.full(n, -1, np.int64)
            )
        widths = {a.shape[1] for a in actions}
        if len(widths) > 1:
            raise ActokError(f"'action' has different widths across data files: {sorted(widths)}")
        action = np.concatenate(actions)
        state = np.concatenate(states) if state_key else None
        ep = np.concatenate(episode_ids)
        key = np.concatenate(order_keys)
        # Stable sort by (episode, frame); rows without a frame key keep their file order.
        order = np.lexsort((key, ep))
        action, ep, key = action[order], ep[order], key[order]
        if state is not None:
            state = state[order]
        boundaries = np.flatnonzero(np.diff(ep)) + 1
        starts = np.concatenate([[0], boundaries])
        stops = np.concatenate([boundaries, [len(ep)]])
        episodes = []
        for start, stop in zip(starts, stops, strict=True):
            frames = key[start:stop] if has_frame_index else np.arange(stop - start)
            episodes.append(
                Episode(
                    index=int(ep[start]),
                    action=action[start:stop],
                    state=None if state is None else state[start:stop],
                    frame_index=frames,
                )
            )
        self._check_info(episodes, action.shape[1], None if state is None else (state_key, state.shape[1]))
        return episodes

    def _check_info(self, episodes: list[Episode], action_dim: int, state: tuple[str, int] | None) -> None:
        problems = []
        total_episodes, total_frames = self.info.get("total_episodes"), self.info.get("total_frames")
        n_frames = sum(len(e) for e in episodes)
        if total_episodes is not None and total_episodes != len(episodes):
            problems.append(f"total_episodes={total_episodes} but the data files hold {len(episodes)}")
        if total_frames is not None and total_frames != n_frames:
            problems.append(f"total_frames={total_frames} but the data files hold {n_frames}")
        features = self.info.get("features", {})
        for name, dim in [("action", action_dim), *([state] if state else [])]:
            shape = features.get(name, {}).get("shape")
            if shape is not None and int(np.prod(shape)) != dim:
                problems.append(f"{name} shape {shape} but the data files hold {dim} values per frame")
        if problems:
            warnings.warn(
                f"meta/info.json of {self.repo_id} disagrees with its files ({'; '.join(problems)}); "
                "using what the files hold",
                ActokWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------- stats
    def stats(self, keys: tuple[str, ...] = ("action",)) -> tuple[dict[str, dict[str, np.ndarray]], str | None]:
        """Dataset statistics for `keys` and their source, or `({}, None)` when the dataset has none.

        Order: `meta/stats.json`; else per-episode stats (`meta/episodes_stats.jsonl` for v2.1, `stats/*`
        columns of `meta/episodes/*.parquet` for v3.0) aggregated with count weights.
        """
        stats_path = self.root / "meta" / "stats.json"
        if stats_path.is_file():
            raw = json.loads(stats_path.read_text())
            return {k: _as_arrays(raw[k]) for k in keys if k in raw}, "meta/stats.json"
        per_episode = self._per_episode_stats(keys)
        if per_episode:
            n = len(next(iter(per_episode.values())))
            source = f"per-episode stats aggregated over {n} episodes (count-weighted)"
            return {k: aggregate_stats(v) for k, v in per_episode.items() if v}, source
        return {}, None

    def _per_episode_stats(self, keys: tuple[str, ...]) -> dict[str, list[dict[str, np.ndarray]]]:
        out: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in keys}
        jsonl = self.root / "meta" / "episodes_stats.jsonl"
        if jsonl.is_file():
            for line in jsonl.read_text().splitlines():
                if line.strip():
                    record = json.loads(line).get("stats", {})
                    for k in keys:
                        if k in record:
                            out[k].append(_as_arrays(record[k]))
            return {k: v for k, v in out.items() if v}
        files = sorted((self.root / "meta" / "episodes").glob("**/*.parquet"))
        for path in files:
            names = pq.read_schema(path).names
            for k in keys:
                cols = [c for c in names if c.startswith(f"stats/{k}/")]
                if not cols:
                    continue
                table = pq.read_table(path, columns=cols).to_pydict()
                for row in range(len(table[cols[0]])):
                    out[k].append({c.rsplit("/", 1)[1]: np.asarray(table[c][row], float) for c in cols})
        return {k: v for k, v in out.items() if v}


def _as_arrays(stats: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in stats.items() if k in STAT_NAMES}


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode min/max/mean/std/count into dataset stats (count-weighted, exact for mean/std).

    Quantiles cannot be combined exactly from per-episode summaries and are left out.
    """
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    means = np.stack([s["mean"] for s in per_episode])
    stds = np.stack([s["std"] for s in per_episode])
    total = counts.sum()
    weights = (counts / total)[:, None]
    mean = (weights * means).sum(0)
    var = (weights * (stds**2 + (means - mean) ** 2)).sum(0)
    return {
        "min": np.stack([s["min"] for s in per_episode]).min(0),
        "max": np.stack([s["max"] for s in per_episode]).max(0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([total]),
    }
