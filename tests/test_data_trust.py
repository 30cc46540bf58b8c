"""The user's own data: every broken dataset is refused with one ActokError naming the file and the problem,
and nothing is silently wrong (interleaved episodes, unusable statistics, sampling that depends on index gaps)."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import dataset_root

from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.data.chunks import sample_chunk_starts
from actok.errors import ActokError, ActokWarning

V21_FILES = 3  # episodes copied from the v2.1 dataset: enough to break one file and keep the others


@pytest.fixture
def panda(copy_dataset):
    """A v3.0 dataset (5 episodes, one data file) to break."""
    return copy_dataset("robosuite_panda")


def copy_small_v21(tmp_path):
    """The v2.1 dataset cut to its first episodes (one parquet file each), to break."""
    src, dst = dataset_root("unitree_g1_pickbottle"), tmp_path / "g1"
    shutil.copytree(src / "meta", dst / "meta")
    (dst / "data" / "chunk-000").mkdir(parents=True)
    for i in range(V21_FILES):
        name = f"chunk-000/episode_{i:06d}.parquet"
        shutil.copy(src / "data" / name, dst / "data" / name)
    return dst


def load(root, **config):
    """Everything a run reads: info, data files, episodes, stats (QUANTILES needs them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)  # the cut v2.1 copy disagrees with its info.json totals
        return build_chunks(LeRobotDatasetReader(root), ChunkConfig(holdout_fraction=0, **config))


def data_file(root):
    return sorted((root / "data").glob("**/*.parquet"))[0]


def rewrite(path, edit):
    """Replace a parquet file by `edit(table)`."""
    pq.write_table(edit(pq.read_table(path)), path)


def with_column(name, values):
    def edit(table):
        return table.set_column(table.schema.get_field_index(name), name, values)

    return edit


def action_rows(root):
    return pq.read_table(data_file(root)).column("action").to_pylist()


def edit_json(path, edit):
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def set_stat(name, values):
    def edit(stats):
        stats["action"][name] = values

    return edit


# ------------------------------------------------------------------ breakages, each refused on one line
def truncate(root):
    path = data_file(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(root):
    data_file(root).write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def info(text):
    def edit(root):
        (root / "meta" / "info.json").write_text(text)

    return edit


def info_field(key, value):
    def edit(root):
        edit_json(root / "meta" / "info.json", lambda i: i.update({key: value}))

    return edit


def action_column(make, type=None):
    def edit(root):
        rows = action_rows(root)
        rewrite(data_file(root), with_column("action", pa.array(make(rows), type)))

    return edit


def empty_file(root):
    rewrite(data_file(root), lambda table: table.slice(0, 0))


def stats_json(edit):
    def apply(root):
        edit_json(root / "meta" / "stats.json", edit)

    return apply


def stats_text(text):
    def apply(root):
        (root / "meta" / "stats.json").write_text(text)

    return apply


def v21_stats_line(number, edit):
    """Replace line `number` (1-based) of episodes_stats.jsonl by `edit(record)` (a dict, or raw text)."""

    def apply(root):
        path = root / "meta" / "episodes_stats.jsonl"
        lines = path.read_text().splitlines()
        record = json.loads(lines[number - 1])
        new = edit(record)
        lines[number - 1] = new if isinstance(new, str) else json.dumps(new)
        path.write_text("\n".join(lines) + "\n")

    return apply


def episode_stats(name, values):
    def edit(record):
        record["stats"]["action"][name] = values
        return record

    return edit


def episode_stats_of_width(width):
    def edit(record):
        record["stats"]["action"] = {k: [0.0] * width for k in ("min", "max", "mean", "std")} | {"count": [5]}
        return record

    return edit


def drop_episode_stat(name):
    def edit(record):
        del record["stats"]["action"][name]
        return record

    return edit


def v3_episode_stats_null(root):
    """A v3.0 dataset without stats.json, whose per-episode stats columns hold a null."""
    (root / "meta" / "stats.json").unlink()
    path = next((root / "meta" / "episodes").glob("**/*.parquet"))
    column = pq.read_table(path).column("stats/action/mean").to_pylist()
    column[1] = None
    rewrite(path, with_column("stats/action/mean", pa.array(column)))


def merge_episode_into(target, source):
    """v3.0: relabel episode `source`'s rows as episode `target` (two episodes under one index)."""

    def edit(root):
        table = pq.read_table(data_file(root))
        ep = table.column("episode_index").to_numpy().copy()
        ep[ep == source] = target
        rewrite(data_file(root), with_column("episode_index", pa.array(ep)))

    return edit


def v21_index_in_two_files(root):
    """v2.1: a second file (another episode's name) whose rows carry episode_index 1."""
    shutil.copy(
        root / "data/chunk-000/episode_000001.parquet", root / f"data/chunk-000/episode_{V21_FILES:06d}.parquet"
    )


def index_column(values):
    def edit(root):
        n = pq.read_table(data_file(root)).num_rows
        rewrite(data_file(root), with_column("episode_index", pa.array(values(n))))

    return edit


def action_value(value):
    """One action value of episode 2, frame 5, dim 3 set to `value`."""

    def edit(root):
        table = pq.read_table(data_file(root))
        rows = table.column("action").to_pylist()
        row = int(np.flatnonzero(table.column("episode_index").to_numpy() == 2)[5])
        rows[row][3] = value
        rewrite(data_file(root), with_column("action", pa.array(rows, pa.list_(pa.float32(), 7))))

    return edit


BREAKAGES = {
    # parquet that pyarrow cannot read
    "truncated parquet": ("panda", truncate, r"file-000\.parquet is not a readable parquet file, truncated or corr"),
    "garbage parquet": ("panda", garbage, r"file-000\.parquet is not a readable parquet file"),
    "v2.1 truncated parquet": ("v21", truncate, r"episode_000000\.parquet is not a readable parquet file"),
    # meta/info.json
    "info.json a list": ("panda", info("[]"), r"info\.json must hold a JSON object, but it holds a list"),
    "info.json a string": ("panda", info('"x"'), r"info\.json must hold a JSON object, but it holds a str"),
    "info.json empty object": ("panda", info("{}"), r"no codebase_version in .*info\.json; supported: v2\.0"),
    "info.json invalid": ("panda", info('{"codebase_version": "v3.0",'), r"info\.json is not valid JSON"),
    "info.json features a list": ("panda", info_field("features", []), r"info\.json: features must be an object"),
    "info.json bad shape": (
        "panda",
        info_field("features", {"action": {"shape": "seven"}}),
        r"features\.action\.shape must be a list of non-negative integers, got 'seven'",
    ),
    "info.json bad total": ("panda", info_field("total_frames", "many"), r"total_frames must be a non-negative int"),
    "info.json bad fps": ("panda", info_field("fps", float("nan")), r"fps must be a positive number, got nan"),
    # the action column
    "action strings": (
        "panda",
        action_column(lambda rows: [str(r) for r in rows]),
        r"column 'action' in .*file-000\.parquet holds string values; expected one list of numbers per frame",
    ),
    "action lists of strings": (
        "panda",
        action_column(lambda rows: [[str(v) for v in r] for r in rows]),
        r"column 'action' .* holds list<\w+: string> values",
    ),
    "action nested lists": (
        "panda",
        action_column(lambda rows: [[[v] for v in r] for r in rows]),
        r"column 'action' .* holds list<\w+: list<\w+: double>> values",
    ),
    "action null rows": (
        "panda",
        action_column(lambda rows: [None if i in (3, 9) else r for i, r in enumerate(rows)]),
        r"column 'action' in .*file-000\.parquet has 2 null rows",
    ),
    "action null values": (
        "panda",
        action_column(lambda rows: [[None, *r[1:]] if i == 3 else r for i, r in enumerate(rows)]),
        r"column 'action' .* has 1 null values inside its rows",
    ),
    "action ragged rows": (
        "panda",
        action_column(lambda rows: [r[:3] if i == 3 else r for i, r in enumerate(rows)]),
        r"column 'action' .* has rows of different lengths \[3, 7\]",
    ),
    "action empty rows": (
        "panda",
        action_column(lambda rows: [[] for _ in rows], pa.list_(pa.float32())),
        r"column 'action' .* has empty rows",
    ),
    "action nan": ("panda", action_value(math.nan), r"non-finite action value \(nan\) in episode 2, frame 5, dim 3"),
    "action inf": ("panda", action_value(math.inf), r"non-finite action value \(inf\) in episode 2, frame 5, dim 3"),
    # data files without rows or with unusable indices
    "data file with 0 rows": ("panda", empty_file, r"file-000\.parquet has 0 rows"),
    "v2.1 file with 0 rows": ("v21", empty_file, r"episode_000000\.parquet has 0 rows"),
    "episode_index float": (
        "panda",
        index_column(lambda n: np.zeros(n)),
        r"column 'episode_index' .* has type double; expected integers",
    ),
    "episode_index null": (
        "panda",
        index_column(lambda n: [None] + [0] * (n - 1)),
        r"column 'episode_index' .* has 1 null rows",
    ),
    # one index, two episodes: never interleaved
    "v3 two episodes under one index": (
        "panda",
        merge_episode_into(0, 1),
        r"episode 0 has frame_index 0 more than once in .*file-000\.parquet: rows of two episodes",
    ),
    "v2.1 one index in two files": (
        "v21",
        v21_index_in_two_files,
        r"episode 1 has rows in two data files, .*episode_000001\.parquet and .*episode_000003\.parquet",
    ),
    # meta/stats.json
    "stats nan": ("panda", stats_json(set_stat("q01", [math.nan] * 7)), r"stats\.json: action\.q01 has a non-finite"),
    "stats inf": (
        "panda",
        stats_json(set_stat("q99", [1.0] * 6 + [math.inf])),
        r"stats\.json: action\.q99 has a non-finite value \(inf\) at dim 6",
    ),
    "stats q01 > q99": (
        "panda",
        stats_json(set_stat("q01", [1e9] * 7)),
        r"stats\.json: action\.q01 > action\.q99 at dim 0",
    ),
    "stats min > max": (
        "panda",
        stats_json(set_stat("min", [1e9] * 7)),
        r"stats\.json: action\.min > action\.max at dim 0",
    ),
    "stats negative std": ("panda", stats_json(set_stat("std", [-1.0] * 7)), r"action\.std has a negative value"),
    "stats one wrong length": (
        "panda",
        stats_json(set_stat("q01", [0.0] * 3)),
        r"stats\.json: the action statistics have different lengths",
    ),
    "stats all wrong length": (
        "panda",
        stats_json(lambda s: s.update(action={k: [0.0, 1.0] for k in ("q01", "q99")})),
        r"action q01 in meta/stats\.json has 2 values but the action has 7 dims",
    ),
    "stats null": ("panda", stats_json(set_stat("q99", None)), r"stats\.json: action\.q99 is null"),
    "stats strings": ("panda", stats_json(set_stat("q99", "high")), r"action\.q99 is not a list of numbers: high"),
    "stats entry not an object": (
        "panda",
        stats_json(lambda s: s.update(action=[1, 2])),
        r"stats\.json: action must be an object of statistics, got list",
    ),
    "stats.json invalid": ("panda", stats_text("{"), r"stats\.json is not valid JSON"),
    "stats.json a list": ("panda", stats_text("[]"), r"stats\.json must hold a JSON object, but it holds a list"),
    # per-episode statistics
    "episodes_stats bad line": (
        "v21",
        v21_stats_line(2, lambda record: "{not json"),
        r"episodes_stats\.jsonl line 2 is not valid JSON",
    ),
    "episodes_stats line not an object": (
        "v21",
        v21_stats_line(2, lambda record: "[]"),
        r"episodes_stats\.jsonl line 2 must be a JSON object with a 'stats' object",
    ),
    "episodes_stats nan": (
        "v21",
        v21_stats_line(3, episode_stats("std", [math.nan] * 26)),
        r"episodes_stats\.jsonl line 3: action\.std has a non-finite value \(nan\) at dim 0",
    ),
    "episodes_stats min > max": (
        "v21",
        v21_stats_line(1, episode_stats("min", [1e9] * 26)),
        r"line 1: action\.min > action\.max",
    ),
    "episodes_stats missing count": (
        "v21",
        v21_stats_line(4, drop_episode_stat("count")),
        r"line 4: action lacks count, needed to combine per-episode stats",
    ),
    "episodes_stats wrong length": (
        "v21",
        v21_stats_line(5, episode_stats_of_width(3)),
        r"line 5: action statistics have 3 values but earlier episodes have 26",
    ),
    "episodes_stats repeated episode": (
        "v21",
        v21_stats_line(6, lambda r: {**r, "episode_index": 0}),
        r"line 6 repeats the stats of episode 0 \(first on line 1\)",
    ),
    "v3 episode stats null": (
        "reachy",
        v3_episode_stats_null,
        r"episodes/chunk-000/file-000\.parquet row 1: action\.mean is null",
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_broken_dataset_is_refused_on_one_line(case, copy_dataset, tmp_path):
    name, breakage, message = BREAKAGES[case]
    copies = {"panda": "robosuite_panda", "reachy": "reachy2_apple_storage"}
    root = copy_dataset(copies[name]) if name in copies else copy_small_v21(tmp_path)
    breakage(root)
    with pytest.raises(ActokError, match=message) as err:
        load(root)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["robosuite_panda", "reachy2_apple_storage", "v21"])
def test_unbroken_copies_load(name, copy_dataset, tmp_path):
    """The copies load before they are broken: the errors above are about the breakages."""
    root = copy_small_v21(tmp_path) if name == "v21" else copy_dataset(name)
    assert load(root).train.shape[0] > 0


# ------------------------------------------------------------------ behaviours that are right, not errors
def test_episode_sampling_is_seeded_by_position_not_index(panda):
    """LeRobot seeds episode k of its loop with k; with index gaps that is not the episode index."""
    original = load(dataset_root("robosuite_panda"), sample_fraction=0.2, normalization_mode="IDENTITY")
    table = pq.read_table(data_file(panda))
    gapped = table.column("episode_index").to_numpy() * 3 + 10  # indices 10, 13, 16, 19, 22
    rewrite(data_file(panda), with_column("episode_index", pa.array(gapped)))
    chunks = load(panda, sample_fraction=0.2, normalization_mode="IDENTITY")
    assert chunks.train_episodes == [10, 13, 16, 19, 22]
    np.testing.assert_array_equal(chunks.train_raw, original.train_raw)
    lengths = [len(e) - 10 + 1 for e in LeRobotDatasetReader(panda).episodes()]
    by_index = [sample_chunk_starts(n, 0.2, i) for n, i in zip(lengths, [10, 13, 16, 19, 22], strict=True)]
    by_position = [sample_chunk_starts(n, 0.2, p) for p, n in enumerate(lengths)]
    assert any(not np.array_equal(a, b) for a, b in zip(by_index, by_position, strict=True))


def test_holdout_does_not_change_an_episodes_chunks(readers):
    """Seeds come from the dataset's episode order, so a training episode's chunks do not depend on the split."""
    config = dict(sample_fraction=0.2, normalization_mode="IDENTITY", max_episodes=20)
    split = build_chunks(readers["pusht"], ChunkConfig(holdout_fraction=0.3, **config))
    whole = build_chunks(readers["pusht"], ChunkConfig(holdout_fraction=0, **config))
    starts = np.cumsum([0] + [max(1, int((len(e) - 9) * 0.2)) for e in readers["pusht"].episodes()[:20]])
    kept = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in split.train_episodes])
    np.testing.assert_array_equal(split.train_raw, whole.train_raw[kept])


def test_frames_out_of_order_are_sorted_by_frame_index(panda):
    original = LeRobotDatasetReader(dataset_root("robosuite_panda")).episodes()
    table = pq.read_table(data_file(panda))
    pq.write_table(table.take(np.random.default_rng(0).permutation(table.num_rows)), data_file(panda))
    for a, b in zip(LeRobotDatasetReader(panda).episodes(), original, strict=True):
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.frame_index, np.arange(len(a)))


def test_missing_frames_warn(panda):
    table = pq.read_table(data_file(panda))
    keep = np.flatnonzero(
        ~((table.column("episode_index").to_numpy() == 1) & (table.column("frame_index").to_numpy() == 7))
    )
    pq.write_table(table.take(keep), data_file(panda))
    with pytest.warns(
        ActokWarning, match=r"frame_index skips frames in 1 episode\(s\) \(first: episode 1 after frame 6"
    ):
        LeRobotDatasetReader(panda).episodes()


def test_info_json_without_features_still_reads(panda):
    edit_json(panda / "meta" / "info.json", lambda i: i.pop("features"))
    assert len(LeRobotDatasetReader(panda).episodes()) == 5


# ------------------------------------------------------------------ ChunkConfig validation
@pytest.mark.parametrize(
    "field,value,message",
    [
        ("action_horizon", 0, r"action_horizon must be an integer >= 1, got 0"),
        ("action_horizon", 2.5, r"action_horizon must be an integer >= 1, got 2\.5"),
        ("action_horizon", 10.0, r"action_horizon must be an integer >= 1, got 10\.0"),
        ("action_horizon", True, r"action_horizon must be an integer >= 1, got True"),
        ("action_horizon", math.nan, r"got nan"),
        ("action_horizon", "10", r"got '10'"),
        ("sample_fraction", 0.0, r"sample_fraction must be in \(0, 1\], got 0\.0"),
        ("sample_fraction", 1.5, r"sample_fraction must be in \(0, 1\]"),
        ("sample_fraction", math.nan, r"sample_fraction must be in \(0, 1\], got nan"),
        ("sample_fraction", math.inf, r"got inf"),
        ("sample_fraction", True, r"got True"),
        ("holdout_fraction", 1.0, r"holdout_fraction must be in \[0, 1\), got 1\.0"),
        ("holdout_fraction", -0.1, r"holdout_fraction must be in \[0, 1\)"),
        ("holdout_fraction", math.nan, r"got nan"),
        ("max_episodes", 0, r"max_episodes must be an integer >= 1, got 0"),
        ("max_episodes", 1.5, r"max_episodes must be an integer >= 1, got 1\.5"),
        ("max_episodes", False, r"got False"),
        ("seed", -1, r"seed must be an integer >= 0, got -1"),
        ("seed", 1.5, r"seed must be an integer >= 0, got 1\.5"),
        ("seed", math.inf, r"got inf"),
        ("encoded_dims", "", r"encoded_dims '' is empty: pass comma-separated start:end ranges"),
        ("encoded_dims", "  ", r"encoded_dims '  ' is empty"),
        ("encoded_dims", "0:a", r"malformed encoded_dims '0:a'"),
        ("encoded_dims", "5:2", r"'5:2' is empty, reversed or negative: need 0 <= start < end <= the action dim"),
        ("encoded_dims", "-1:3", r"'-1:3' is empty, reversed or negative"),
        ("encoded_dims", 3, r"encoded_dims must be a string"),
        ("delta_dims", "0,x", r"malformed delta_dims '0,x'"),
        ("delta_dims", "-1", r"delta_dims \[-1\] out of range \(valid: >= 0\)"),
        ("use_delta_transform", "yes", r"use_delta_transform must be true, false or None"),
        ("state_key", "", r"state_key must be a column name"),
        ("normalization_mode", "zscore", r"unknown normalization mode 'zscore'"),
    ],
)
def test_chunk_config_refuses_bad_values(field, value, message):
    with pytest.raises(ActokError, match=message) as err:
        ChunkConfig(**{field: value}).validate()
    assert "\n" not in str(err.value)


def test_chunk_config_accepts_numpy_and_edge_values():
    ChunkConfig(action_horizon=np.int64(5), sample_fraction=1, holdout_fraction=0, max_episodes=1, seed=0).validate()


def test_encoded_dims_out_of_range_names_the_valid_range(readers):
    with pytest.raises(ActokError, match=r"'0:9' is out of range for action dim 2 \(need 0 <= start < end <= 2\)"):
        build_chunks(readers["pusht"], ChunkConfig(encoded_dims="0:9"))
