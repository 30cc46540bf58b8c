"""Read LeRobot datasets (layouts v3.0, v2.1, v2.0) straight from parquet, without the `lerobot` package.

Only the columns a caller needs are read. Where `meta/info.json` disagrees with the files on disk (totals,
feature shapes), the files win and an `ActokWarning` says so. Rows are sorted by `frame_index` within each
episode, so files whose frames are out of order read correctly. What cannot be read correctly is refused with one
`ActokError` naming the file and the problem: a file that is not readable parquet, a file with no rows, an action
column that is not numeric or has nulls, an episode index found in two data files or a frame found twice in one
episode (two episodes under one index; interleaving them would make chunks jump between trajectories), and
statistics that are not finite, have the wrong length or the wrong order (`q01 > q99`, `min > max`, `std < 0`).
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


@dataclass(frozen=True)
class EpisodeTable:
    """Where the episodes are, without their data: `[E]` arrays sorted by episode index."""

    index: np.ndarray  # episode indices
    length: np.ndarray  # frames per episode
    file: np.ndarray  # position of the episode's data file in `LeRobotDatasetReader.data_files`

    @property
    def num_frames(self) -> int:
        return int(self.length.sum())


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
        _check_dataset_folder(path)
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


def _check_dataset_folder(path: Path) -> None:
    """Refuse a `root` that is missing, a file, or a folder without `meta/info.json`."""
    if not path.exists():
        raise ActokError(f"dataset root {path} does not exist")
    if not path.is_dir():
        raise ActokError(
            f"dataset root {path} is a file, not a dataset folder: pass the folder that holds meta/ and data/"
        )
    if not (path / "meta" / "info.json").is_file():
        raise ActokError(f"{path} is not a LeRobot dataset: expected the file {path / 'meta' / 'info.json'}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_json_object(path: Path) -> dict:
    """A JSON file that must hold one object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ActokError(f"{path} is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(value, dict):
        raise ActokError(f"{path} must hold a JSON object, but it holds a {type(value).__name__}")
    return value


def _read_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise ActokError(
            f"{path} is not a readable parquet file, truncated or corrupted? ({_first_line(exc)})"
        ) from None


def _read_table(path: Path, columns: list[str]) -> pa.Table:
    """Read `columns` of a parquet file, verifying page checksums where the writer stored them."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise ActokError(
            f"{path} is not a readable parquet file, truncated or corrupted? ({_first_line(exc)})"
        ) from None


def list_column_to_numpy(column: pa.ChunkedArray, name: str, path: Path | str) -> np.ndarray:
    """A fixed-size or variable list column of numbers -> `[n, d]` array (a scalar column -> `[n, 1]`)."""
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
    if not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise ActokError(
            f"column {name!r} in {path} holds {arr.type} values; expected one list of numbers per frame "
            "(e.g. fixed_size_list<float>)"
        )
    if values.null_count:
        raise ActokError(f"column {name!r} in {path} has {values.null_count} null values inside its rows")
    if dim == 0:
        raise ActokError(f"column {name!r} in {path} has empty rows (0 values per frame)")
    out = values.to_numpy(zero_copy_only=False)
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float64)
    return out.reshape(n, dim)


def _index_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    """An integer column without nulls (episode_index, frame_index, index) -> `[n]` int64."""
    arr = table.column(name).combine_chunks()
    if not pa.types.is_integer(arr.type):
        raise ActokError(f"column {name!r} in {path} has type {arr.type}; expected integers")
    if arr.null_count:
        raise ActokError(f"column {name!r} in {path} has {arr.null_count} null rows")
    return arr.to_numpy().astype(np.int64, copy=False)


class LeRobotDatasetReader:
    """A LeRobot dataset folder, read lazily with pyarrow.

    `reader.episodes(state_key=...)` returns the episodes sorted by episode index, each sorted by frame.
    `reader.stats(keys)` returns `{feature: {stat: array}}` and where they came from.
    """

    def __init__(self, root: str | os.PathLike, repo_id: str | None = None):
        self.root = Path(root)
        _check_dataset_folder(self.root)
        info_path = self.root / "meta" / "info.json"
        self.info = _read_json_object(info_path)
        version = self.info.get("codebase_version")
        if version not in SUPPORTED_CODEBASE_VERSIONS:
            found = "no codebase_version" if version is None else f"unsupported codebase_version {version!r}"
            raise ActokError(f"{found} in {info_path}; supported: {', '.join(SUPPORTED_CODEBASE_VERSIONS)}")
        _check_info_fields(self.info, info_path)
        self.codebase_version = version
        self.repo_id = repo_id or self.root.name
        self.fps = self.info.get("fps")
        self.data_files = sorted((self.root / "data").glob("**/*.parquet"))
        if not self.data_files:
            template = self.info.get("data_path", "data/chunk-000/...parquet")
            raise ActokError(f"{self.root} has no data files: expected parquet files like {template}")
        self.columns = list(_read_schema(self.data_files[0]).names)
        self._cache: dict[tuple, list[Episode]] = {}
        self._table: EpisodeTable | None = None
        self._order_col: str | None = None
        self._info_checked: set[tuple] = set()

    def __repr__(self) -> str:
        return f"LeRobotDatasetReader(root={str(self.root)!r}, codebase_version={self.codebase_version!r})"

    # ---------------------------------------------------------------- episodes
    def episode_table(self) -> EpisodeTable:
        """Every episode's index, length and data file, from one pass over the index columns only (cached).

        Refuses an episode found in two data files, a frame key repeated within an episode and an empty data file;
        warns about frame_index gaps and about `meta/info.json` totals that disagree with the files."""
        if self._table is None:
            self._table = self._scan_episodes()
        return self._table

    def _scan_episodes(self) -> EpisodeTable:
        if "action" not in self.columns:
            raise ActokError(f"{self.data_files[0]} has no 'action' column; columns: {', '.join(self.columns)}")
        schemas = [set(_read_schema(path).names) for path in self.data_files]
        # One frame key for every file, so rows compare across files: frame_index, else the global index, else
        # the file order (frame_index is optional in real datasets).
        self._order_col = next((c for c in ("frame_index", "index") if all(c in n for n in schemas)), None)
        parts, gaps = [], []  # per file: (episode indices, lengths); the first frame gap of each file
        file_of: dict[int, Path] = {}  # episode index -> the one data file that holds it
        for number, (path, names) in enumerate(zip(self.data_files, schemas, strict=True)):
            ep, key = self._index_columns(path, names)
            for index in np.unique(ep).tolist():
                other = file_of.setdefault(index, path)
                if other != path:
                    raise ActokError(
                        f"episode {index} has rows in two data files, {other} and {path}: two episodes under one "
                        "episode_index would be interleaved; give each episode its own index"
                    )
            order = np.lexsort((key, ep))
            if self._order_col:
                gap = _check_frame_keys(ep[order], key[order], self._order_col, path)
                gaps += [gap] if gap else []
            indices, lengths = np.unique(ep, return_counts=True)
            parts.append((indices, lengths, np.full(len(indices), number)))
        if gaps:
            _, index, frame, path = min(gaps, key=lambda g: g[1])
            warnings.warn(
                f"frame_index skips frames in {sum(g[0] for g in gaps)} episode(s) (first: episode {index} after "
                f"frame {frame}, in {path}); chunks span the missing frames as if they were consecutive",
                ActokWarning,
                stacklevel=4,
            )
        indices, lengths, files = (np.concatenate(p) for p in zip(*parts, strict=True))
        order = np.argsort(indices, kind="stable")
        return EpisodeTable(index=indices[order], length=lengths[order], file=files[order])

    def _index_columns(self, path: Path, names: set[str]) -> tuple[np.ndarray, np.ndarray]:
        """`(episode index [n], frame key [n])` of one data file's rows, in file order (key -1 without one)."""
        columns = [c for c in ("episode_index", self._order_col) if c in names]
        table = _read_table(path, columns) if columns else None
        n = table.num_rows if table is not None else pq.ParquetFile(path).metadata.num_rows
        if n == 0:
            raise ActokError(f"{path} has 0 rows: remove the empty data file or rewrite it")
        if "episode_index" in names:
            ep = _index_column(table, "episode_index", path)
        else:
            match = _EPISODE_FILE_RE.search(path.name)
            if match is None:
                raise ActokError(f"{path} has no 'episode_index' column and its name does not give one")
            ep = np.full(n, int(match.group(1)), dtype=np.int64)
        key = _index_column(table, self._order_col, path) if self._order_col else np.full(n, -1, np.int64)
        return ep, key

    def frame_key(self) -> str | None:
        """The column that orders frames within an episode in every data file (`frame_index`, else `index`), or
        None (then the file order is the frame order)."""
        self.episode_table()
        return self._order_col

    def column_width(self, name: str) -> tuple[int, np.dtype]:
        """Values per frame of a list column and the dtype actok reads them as, from the first data file."""
        if name not in self.columns:
            raise ActokError(
                f"state key {name!r} not found in {self.repo_id}; available columns: {', '.join(self.columns)}"
            )
        path = self.data_files[0]
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=[name]), None)
        if batch is None:
            raise ActokError(f"{path} has 0 rows: remove the empty data file or rewrite it")
        first = list_column_to_numpy(pa.chunked_array([batch.column(0)]), name, path)
        return first.shape[1], first.dtype

    def read_file(self, number: int, state_key: str | None = None, wanted: set[int] | None = None) -> list[Episode]:
        """The episodes of data file `number` (all, or those in `wanted`), sorted by episode index, each by frame.

        Reads only `action`, the state column when `state_key` is given, and the index columns."""
        self.episode_table()  # the frame key, and the checks of the whole dataset
        path = self.data_files[number]
        names = set(_read_schema(path).names)
        wanted_cols = list(dict.fromkeys(["action", *([state_key] if state_key else [])]))  # --state-key action
        missing = [c for c in wanted_cols if c not in names]
        if missing:
            raise ActokError(f"{path} lacks column(s) {', '.join(missing)}; it has {', '.join(sorted(names))}")
        table = _read_table(path, wanted_cols)
        ep, key = self._index_columns(path, names)
        order = np.lexsort((key, ep))
        if wanted is not None:  # read the columns of the wanted episodes only
            order = order[np.isin(ep[order], np.fromiter(wanted, np.int64, len(wanted)))]
            table = table.take(pa.array(order))
            ep, key, order = ep[order], key[order], np.arange(len(order))
        action = list_column_to_numpy(table.column("action"), "action", path)[order]
        state = list_column_to_numpy(table.column(state_key), state_key, path)[order] if state_key else None
        ep, key = ep[order], key[order]
        bounds = np.flatnonzero(np.diff(ep)) + 1
        return [
            Episode(
                index=int(ep[start]),
                action=action[start:stop],
                state=None if state is None else state[start:stop],
                frame_index=key[start:stop] if self._order_col == "frame_index" else np.arange(stop - start),
            )
            for start, stop in zip([0, *bounds], [*bounds, len(ep)], strict=True)
            if stop > start
        ]

    def episodes(self, state_key: str | None = None) -> list[Episode]:
        """All episodes, sorted by episode index; `state` is filled when `state_key` is given (holds the whole
        dataset in memory: `build_chunks` reads file by file instead)."""
        key = (state_key,)
        if key not in self._cache:
            if state_key is not None:
                self.column_width(state_key)  # the one-line error for a missing state column
            episodes = [e for n in range(len(self.data_files)) for e in self.read_file(n, state_key)]
            episodes.sort(key=lambda e: e.index)
            widths = sorted({e.action.shape[1] for e in episodes})
            if len(widths) > 1:
                raise ActokError(f"'action' has different widths across data files: {widths}")
            state = None if state_key is None else (state_key, episodes[0].state.shape[1])
            self.check_info(episodes[0].action.shape[1], state)
            self._cache[key] = episodes
        return self._cache[key]

    def check_info(self, action_dim: int, state: tuple[str, int] | None) -> None:
        """Warn (`ActokWarning`, once per reader) where `meta/info.json` disagrees with the files: totals, shapes."""
        if (action_dim, state) in self._info_checked:
            return
        self._info_checked.add((action_dim, state))
        problems = []
        total_episodes, total_frames = self.info.get("total_episodes"), self.info.get("total_frames")
        table = self.episode_table()
        if total_episodes is not None and total_episodes != len(table.index):
            problems.append(f"total_episodes={total_episodes} but the data files hold {len(table.index)}")
        if total_frames is not None and total_frames != table.num_frames:
            problems.append(f"total_frames={total_frames} but the data files hold {table.num_frames}")
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
        columns of `meta/episodes/*.parquet` for v3.0) aggregated with count weights. Statistics that are not
        finite, differ in length or are out of order raise `ActokError` naming the file and field.
        """
        stats_path = self.root / "meta" / "stats.json"
        if stats_path.is_file():
            raw = _read_json_object(stats_path)
            return {k: _stat_arrays(raw[k], str(stats_path), k) for k in keys if k in raw}, "meta/stats.json"
        per_episode, origin = self._per_episode_stats(keys)
        if per_episode:
            n = len(next(iter(per_episode.values())))
            source = f"per-episode stats ({origin}) aggregated over {n} episodes (count-weighted)"
            return {k: aggregate_stats(v) for k, v in per_episode.items()}, source
        return {}, None

    def _per_episode_stats(self, keys: tuple[str, ...]) -> tuple[dict[str, list[dict[str, np.ndarray]]], str]:
        """`{feature: [one validated stats dict per episode]}` and the files they came from."""
        out: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in keys}
        jsonl = self.root / "meta" / "episodes_stats.jsonl"
        if jsonl.is_file():
            try:
                lines = jsonl.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ActokError(f"{jsonl} is not readable text ({_first_line(exc)})") from None
            line_of: dict[object, int] = {}  # episode_index -> line, to refuse an episode counted twice
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                where = f"{jsonl} line {number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ActokError(f"{where} is not valid JSON ({_first_line(exc)})") from None
                if not isinstance(record, dict) or not isinstance(record.get("stats"), dict):
                    raise ActokError(f"{where} must be a JSON object with a 'stats' object")
                index = record.get("episode_index")
                if index is not None and line_of.setdefault(index, number) != number:
                    raise ActokError(f"{where} repeats the stats of episode {index} (first on line {line_of[index]})")
                for k in keys:
                    if k in record["stats"]:
                        _append_episode_stats(out[k], record["stats"][k], where, k)
            return {k: v for k, v in out.items() if v}, "meta/episodes_stats.jsonl"
        for path in sorted((self.root / "meta" / "episodes").glob("**/*.parquet")):
            names = _read_schema(path).names
            for k in keys:
                cols = [c for c in names if c.startswith(f"stats/{k}/")]
                if not cols:
                    continue
                table = _read_table(path, cols).to_pydict()
                for row in range(len(table[cols[0]])):
                    raw = {c.rsplit("/", 1)[1]: table[c][row] for c in cols}
                    _append_episode_stats(out[k], raw, f"{path} row {row}", k)
        return {k: v for k, v in out.items() if v}, "stats columns of meta/episodes/*.parquet"


_EPISODE_STATS_NEEDED = ("count", "mean", "std", "min", "max")
_ORDERED_STATS = (("min", "max"), ("q01", "q99"), ("q10", "q90"))


def _check_info_fields(info: dict, path: Path) -> None:
    """The fields of `meta/info.json` the reader uses must have the right types (they may be absent)."""
    for name in ("total_episodes", "total_frames"):
        value = info.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ActokError(f"{path}: {name} must be a non-negative integer, got {value!r}")
    fps = info.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < np.inf):
        raise ActokError(f"{path}: fps must be a positive number, got {fps!r}")
    features = info.get("features", {})
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise ActokError(f"{path}: features must be an object mapping each feature name to an object")
    for name, feature in features.items():
        shape = feature.get("shape")
        if shape is not None and not (
            isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise ActokError(f"{path}: features.{name}.shape must be a list of non-negative integers, got {shape!r}")


def _check_frame_keys(ep: np.ndarray, key: np.ndarray, order_col: str, path: Path) -> tuple[int, int, int, Path] | None:
    """Refuse a frame key repeated within an episode (two episodes' rows under one index) of one data file.

    `ep` and `key` `[n]` are the file's rows sorted by (episode, key). Returns, when `frame_index` skips frames,
    `(episodes with gaps, first such episode, the frame before its first gap, path)` for one warning per dataset."""
    same_episode = ep[1:] == ep[:-1]
    step = key[1:] - key[:-1]
    repeated = np.flatnonzero(same_episode & (step == 0))
    if len(repeated):
        index, frame = int(ep[repeated[0]]), int(key[repeated[0]])
        raise ActokError(
            f"episode {index} has {order_col} {frame} more than once in {path}: rows of two episodes "
            "under one episode_index would be interleaved; give each episode its own index"
        )
    gaps = np.flatnonzero(same_episode & (step > 1))
    if order_col != "frame_index" or not len(gaps):
        return None
    return len(np.unique(ep[gaps])), int(ep[gaps[0]]), int(key[gaps[0]]), path


def _stat_arrays(raw: object, where: str, feature: str) -> dict[str, np.ndarray]:
    """One feature's statistics `{stat: [D] float64}`, validated; `where` (a file, maybe a line) names errors."""
    if not isinstance(raw, dict):
        raise ActokError(f"{where}: {feature} must be an object of statistics, got {type(raw).__name__}")
    out = {}
    for name in STAT_NAMES:
        if name not in raw:
            continue
        field = f"{where}: {feature}.{name}"
        if raw[name] is None:
            raise ActokError(f"{field} is null")
        try:
            values = np.asarray(raw[name], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ActokError(f"{field} is not a list of numbers: {str(raw[name])[:60]}") from None
        if not len(values):
            raise ActokError(f"{field} is empty")
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ActokError(f"{field} has a non-finite value ({values[bad[0]]}) at dim {bad[0]}")
        out[name] = values
    lengths = {name: len(v) for name, v in out.items() if name != "count"}
    if len(set(lengths.values())) > 1:
        raise ActokError(f"{where}: the {feature} statistics have different lengths {lengths}")
    for low, high in _ORDERED_STATS:
        if low in out and high in out:
            wrong = np.flatnonzero(out[low] > out[high])
            if len(wrong):
                d = wrong[0]
                raise ActokError(
                    f"{where}: {feature}.{low} > {feature}.{high} at dim {d} ({out[low][d]} > {out[high][d]})"
                )
    for name in ("std", "count"):
        if name in out and (out[name] < 0).any():
            raise ActokError(f"{where}: {feature}.{name} has a negative value ({out[name].min()})")
    return out


def _append_episode_stats(into: list[dict[str, np.ndarray]], raw: object, where: str, feature: str) -> None:
    """Validate one episode's statistics (what `aggregate_stats` needs, as long as the first episode's)."""
    stats = _stat_arrays(raw, where, feature)
    missing = [n for n in _EPISODE_STATS_NEEDED if n not in stats]
    if missing:
        raise ActokError(f"{where}: {feature} lacks {', '.join(missing)}, needed to combine per-episode stats")
    if into and len(stats["mean"]) != len(into[0]["mean"]):
        raise ActokError(
            f"{where}: {feature} statistics have {len(stats['mean'])} values but earlier episodes have "
            f"{len(into[0]['mean'])}"
        )
    into.append(stats)


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode min/max/mean/std/count into dataset stats (count-weighted, exact for mean/std).

    Quantiles cannot be combined exactly from per-episode summaries and are left out.
    """
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in per_episode])
    total = counts.sum()
    if not total > 0:
        raise ActokError(f"per-episode stats count {total:g} frames in all; cannot combine them")
    means = np.stack([s["mean"] for s in per_episode])
    stds = np.stack([s["std"] for s in per_episode])
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
