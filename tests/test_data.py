"""Dataset reading and the chunk pipeline, checked against plain per-frame implementations of the spec."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import dataset_root

from actok.data import ChunkConfig, LeRobotDatasetReader, Normalizer, build_chunks, parse_encoded_dims
from actok.data.chunks import dims_to_spec, parse_delta_dims
from actok.data.lerobot import aggregate_stats, resolve_dataset_root
from actok.data.pipeline import split_episodes
from actok.errors import ActokError, ActokWarning


def lerobot_style_chunks(reader, horizon, sample_fraction, encoded, delta, state_key="observation.state"):
    """The reference loop, deliberately plain: frame by frame, chunk by chunk (REFERENCES §1)."""
    out = []
    for position, ep in enumerate(reader.episodes(state_key if delta else None)):
        actions = [np.array(a) for a in ep.action]
        states = [np.array(s) for s in ep.state] if delta else None
        chunks = []
        for i in range(len(actions) - horizon + 1):
            chunk = np.array(actions[i : i + horizon])
            for t in range(horizon):
                for d in delta:
                    chunk[t, d] = actions[i + t][d] - states[i][d]
            chunks.append(chunk)
        if not chunks:
            continue
        chunks = np.array(chunks)
        if sample_fraction < 1.0:
            n = max(1, int(len(chunks) * sample_fraction))
            rng = np.random.RandomState(hash(position) % (2**31))  # LeRobot's loop variable
            chunks = chunks[rng.choice(len(chunks), size=n, replace=False)]
        out.append(chunks)
    return np.concatenate(out)[:, :, encoded]


@pytest.mark.parametrize("name", ["pusht", "unitree_g1_pickbottle", "reachy2_apple_storage", "robosuite_panda"])
def test_reads_every_shared_dataset(readers, name):
    reader = readers[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        episodes = reader.episodes()
    info_dims = reader.info["features"]["action"]["shape"][0]
    assert all(ep.action.shape[1] == info_dims for ep in episodes)
    assert [ep.index for ep in episodes] == sorted(ep.index for ep in episodes)
    for ep in episodes:
        assert np.array_equal(ep.frame_index, np.arange(len(ep)))


def test_episode_counts_match_the_files(readers):
    assert len(readers["pusht"].episodes()) == 206
    assert sum(len(e) for e in readers["unitree_g1_pickbottle"].episodes()) == 35965


def test_info_json_disagreeing_with_files_warns_and_trusts_files():
    reader = LeRobotDatasetReader(dataset_root("reachy2_apple_storage"))
    with pytest.warns(ActokWarning, match="total_frames=14983 but the data files hold 899"):
        episodes = reader.episodes()
    assert sum(len(e) for e in episodes) == 899


@pytest.mark.parametrize("horizon,fraction,delta", [(10, 0.2, []), (30, 1.0, list(range(14))), (5, 0.1, [0, 3])])
def test_chunks_match_plain_lerobot_loop(readers, horizon, fraction, delta):
    reader = readers["unitree_g1_pickbottle"]
    encoded = parse_encoded_dims("0:6,7:23", 26)
    expected = lerobot_style_chunks(reader, horizon, fraction, encoded, delta)
    config = ChunkConfig(
        action_horizon=horizon,
        encoded_dims="0:6,7:23",
        delta_dims=",".join(map(str, delta)) or None,
        sample_fraction=fraction,
        holdout_fraction=0,
        normalization_mode="IDENTITY",
    )
    chunks = build_chunks(reader, config)
    assert chunks.train_raw.dtype == expected.dtype
    np.testing.assert_array_equal(chunks.train_raw, expected)


def test_normalization_formulas_are_exact():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 3)).astype(np.float32)
    stats = {
        "mean": np.array([0.1, -0.2, 0.0]),
        "std": np.array([1.0, 2.0, 0.0]),
        "min": np.array([-2.0, -1.0, 0.5]),
        "max": np.array([2.0, 1.0, 0.5]),
        "q01": np.array([-1.5, -0.5, -1.0]),
        "q99": np.array([1.5, 0.5, 1.0]),
        "q10": np.array([-1.0, -0.3, -0.2]),
        "q90": np.array([1.0, 0.3, 0.2]),
    }
    eps = 1e-8
    expected = {
        "IDENTITY": x,
        "MEAN_STD": (x - stats["mean"]) / np.maximum(stats["std"], eps),
        "MIN_MAX": 2.0 * (x - stats["min"]) / np.maximum(stats["max"] - stats["min"], eps) - 1.0,
        "QUANTILES": 2.0
        * (np.clip(x, stats["q01"], stats["q99"]) - stats["q01"])
        / np.maximum(stats["q99"] - stats["q01"], eps)
        - 1.0,
        "QUANTILE10": 2.0
        * (np.clip(x, stats["q10"], stats["q90"]) - stats["q10"])
        / np.maximum(stats["q90"] - stats["q10"], eps)
        - 1.0,
    }
    for mode, want in expected.items():
        norm = Normalizer(mode, stats)
        got = norm.normalize(x)
        np.testing.assert_array_equal(got, want)
        if mode in ("MEAN_STD", "MIN_MAX"):
            inside = np.ones(3, bool) if mode == "MIN_MAX" else np.array([True, True, False])
            np.testing.assert_allclose(norm.unnormalize(got)[..., inside], x[..., inside], atol=1e-6)


def test_unknown_normalization_mode_lists_valid_ones():
    with pytest.raises(ActokError, match="valid modes: IDENTITY, MEAN_STD, MIN_MAX, QUANTILES, QUANTILE10"):
        Normalizer("ZSCORE")


def test_delta_stats_come_from_delta_chunks(g1_chunks):
    """Improvement (a): delta dims are normalized with the stats of the delta-transformed training chunks."""
    stats = g1_chunks.normalizer.stats
    raw = g1_chunks.train_raw.reshape(-1, 26)
    np.testing.assert_allclose(stats["q01"][:14], np.quantile(raw[:, :14], 0.01, axis=0))
    np.testing.assert_allclose(stats["q99"][:14], np.quantile(raw[:, :14], 0.99, axis=0))
    assert abs(g1_chunks.train[..., :14]).max() <= 1.0
    assert "delta-transformed" in g1_chunks.stats_source["q01"]


def test_missing_quantiles_are_computed_and_reported(readers):
    chunks = build_chunks(readers["reachy2_apple_storage"], ChunkConfig(holdout_fraction=0))
    frames = np.concatenate([e.action for e in readers["reachy2_apple_storage"].episodes()])
    np.testing.assert_allclose(chunks.normalizer.stats["q99"], np.quantile(frames, 0.99, axis=0))
    assert any("no action q01" in note for note in chunks.notes)


def test_dataset_stats_are_used_when_present(readers, pusht_chunks):
    stats = json.loads((dataset_root("pusht") / "meta" / "stats.json").read_text())["action"]
    np.testing.assert_array_equal(pusht_chunks.normalizer.stats["q01"], stats["q01"])
    assert pusht_chunks.stats_source["q99"] == "meta/stats.json"


def test_episode_stats_aggregation_is_count_weighted(readers):
    stats, source = readers["unitree_g1_pickbottle"].stats(("action",))
    frames = np.concatenate([e.action for e in readers["unitree_g1_pickbottle"].episodes()]).astype(np.float64)
    assert "aggregated over 100 episodes" in source
    np.testing.assert_allclose(stats["action"]["mean"], frames.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], frames.std(0), atol=1e-5)
    np.testing.assert_allclose(stats["action"]["min"], frames.min(0))
    assert stats["action"]["count"][0] == len(frames)


def test_aggregate_stats_two_episodes():
    a, b = np.array([[0.0], [2.0]]), np.array([[4.0], [4.0], [7.0]])
    per = [
        {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
        for x in (a, b)
    ]
    both = np.concatenate([a, b])
    agg = aggregate_stats(per)
    np.testing.assert_allclose(agg["mean"], both.mean(0))
    np.testing.assert_allclose(agg["std"], both.std(0))


def test_holdout_split_is_episode_level_and_seeded(readers):
    config = ChunkConfig(holdout_fraction=0.1, seed=3)
    a = build_chunks(readers["pusht"], config)
    b = build_chunks(readers["pusht"], ChunkConfig(holdout_fraction=0.1, seed=3))
    assert a.holdout_episodes == b.holdout_episodes
    assert not set(a.holdout_episodes) & set(a.train_episodes)
    assert len(a.holdout_episodes) == round(0.1 * 206)
    assert split_episodes([1, 2, 3], 0.0, 0) == ([1, 2, 3], [])


def test_holdout_zero_reproduces_training_set(readers):
    chunks = build_chunks(readers["pusht"], ChunkConfig(holdout_fraction=0))
    assert chunks.holdout.shape[0] == 0 and len(chunks.train_episodes) == 206


def test_max_episodes_keeps_the_first_episodes(readers):
    chunks = build_chunks(readers["pusht"], ChunkConfig(max_episodes=7, holdout_fraction=0))
    assert chunks.train_episodes == list(range(7))


def test_short_episodes_are_skipped_and_reported(readers):
    chunks = build_chunks(readers["pusht"], ChunkConfig(action_horizon=100))
    lengths = {e.index: len(e) for e in readers["pusht"].episodes()}
    assert chunks.skipped_episodes == [i for i, n in lengths.items() if n < 100]


@pytest.mark.parametrize(
    "spec,message",
    [
        ("0:3", "out of range for action dim 2"),
        ("0-2", "malformed encoded_dims"),
        ("1:1", r"'1:1' is empty, reversed or negative: need 0 <= start < end <= the action dim"),
        ("5:2", r"'5:2' is empty, reversed or negative"),
        ("-1:3", r"'-1:3' is empty, reversed or negative"),
        ("0:a", r"malformed encoded_dims '0:a'.*0 <= start < end <= the action dim"),
        ("a:b", "malformed"),
        ("", "is empty: pass comma-separated start:end ranges"),
        (" ", "is empty"),
    ],
)
def test_bad_encoded_dims(spec, message):
    with pytest.raises(ActokError, match=message):
        parse_encoded_dims(spec, 2)


def test_encoded_dims_round_trip():
    dims = parse_encoded_dims("0:6,7:14", 20)
    assert len(dims) == 13 and dims_to_spec(dims) == "0:6,7:14"
    assert parse_encoded_dims("0:6,7:23", 2, clip=True) == [0, 1]
    assert parse_delta_dims("0, 1,5", 6) == [0, 1, 5]
    with pytest.raises(ActokError, match="out of range"):
        parse_delta_dims("7", 6)


def test_horizon_longer_than_every_episode(readers):
    with pytest.raises(ActokError, match="longer than every episode"):
        build_chunks(readers["reachy2_apple_storage"], ChunkConfig(action_horizon=1000))


def test_delta_without_state_lists_columns(readers):
    with pytest.raises(ActokError, match=r"available columns: action, timestamp"):
        build_chunks(readers["robosuite_panda"], ChunkConfig(delta_dims="0,1"))


def test_nan_action_names_episode_and_frame(copy_dataset):
    root = copy_dataset("robosuite_panda")
    path = next((root / "data").glob("**/*.parquet"))
    table = pq.read_table(path)
    action = np.stack(table.column("action").to_numpy(zero_copy_only=False)).astype(np.float32)
    episodes = table.column("episode_index").to_numpy()
    row = int(np.flatnonzero(episodes == 2)[5])
    action[row, 3] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(action.reshape(-1)), 7)
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", column), path)
    with pytest.raises(ActokError, match="episode 2, frame 5, dim 3"):
        build_chunks(LeRobotDatasetReader(root), ChunkConfig())


def test_dataset_without_frame_index(copy_dataset):
    root = copy_dataset("pusht")
    path = next((root / "data").glob("**/*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["frame_index"]), path)
    reader = LeRobotDatasetReader(root)
    original = LeRobotDatasetReader(dataset_root("pusht"))
    for a, b in zip(reader.episodes(), original.episodes(), strict=True):
        np.testing.assert_array_equal(a.action, b.action)


def test_v20_layout_with_single_stats_file(copy_dataset):
    root = copy_dataset("unitree_g1_pickbottle")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v2.0"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    frames = np.concatenate([e.action for e in LeRobotDatasetReader(root).episodes()]).astype(float)
    stats = {
        "action": {
            "min": frames.min(0).tolist(),
            "max": frames.max(0).tolist(),
            "mean": frames.mean(0).tolist(),
            "std": frames.std(0).tolist(),
        }
    }
    (root / "meta" / "stats.json").write_text(json.dumps(stats))
    (root / "meta" / "episodes_stats.jsonl").unlink()
    chunks = build_chunks(LeRobotDatasetReader(root), ChunkConfig(normalization_mode="MIN_MAX", encoded_dims="0:26"))
    assert chunks.stats_source["min"] == "meta/stats.json"
    assert chunks.train.min() >= -1.0 and chunks.train.max() <= 1.0


def test_unsupported_codebase_version(copy_dataset):
    root = copy_dataset("robosuite_panda")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ActokError, match=r"unsupported codebase_version 'v1\.6'.*supported: v2\.0, v2\.1, v3\.0"):
        LeRobotDatasetReader(root)


def test_root_errors(tmp_path):
    with pytest.raises(ActokError, match="does not exist"):
        resolve_dataset_root(None, tmp_path / "nope")
    (tmp_path / "file.parquet").write_bytes(b"x")
    for call in (lambda p: resolve_dataset_root(None, p), LeRobotDatasetReader):
        with pytest.raises(ActokError, match=r"file\.parquet is a file, not a dataset folder"):
            call(tmp_path / "file.parquet")
    with pytest.raises(ActokError, match=r"expected the file .*meta/info.json"):
        resolve_dataset_root(None, tmp_path)


def test_repo_id_found_in_hf_lerobot_home(tmp_path, monkeypatch):
    target = tmp_path / "lerobot" / "lerobot" / "pusht"
    target.parent.mkdir(parents=True)
    target.symlink_to(dataset_root("pusht"))
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot"))
    assert resolve_dataset_root("lerobot/pusht") == target


def test_missing_repo_names_paths_tried_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ActokError) as err:
        resolve_dataset_root("someone/not-here")
    message = str(err.value)
    assert str(tmp_path / "home" / "someone/not-here") in message
    assert "\n" not in message


def test_missing_repo_without_huggingface_hub_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(
        ActokError, match=r"huggingface_hub is not installed .* pass --root DIR, or pip install 'actok\[hub\]'"
    ):
        resolve_dataset_root("someone/not-here")


def test_state_narrower_than_action_with_encoded_subset(copy_dataset, readers):
    """Only the delta columns of the state are read: a 14-D arm state works with a 26-D action."""
    root = copy_dataset("unitree_g1_pickbottle")
    for path in (root / "data").glob("**/*.parquet"):
        table = pq.read_table(path)
        state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))[:, :14].astype(np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(state.reshape(-1)), 14)
        pq.write_table(
            table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column), path
        )
    config = dict(encoded_dims="0:6,7:23", delta_dims="0,1,2,8", holdout_fraction=0, normalization_mode="IDENTITY")
    narrow = build_chunks(LeRobotDatasetReader(root), ChunkConfig(**config))
    full = build_chunks(readers["unitree_g1_pickbottle"], ChunkConfig(**config))
    np.testing.assert_array_equal(narrow.train_raw, full.train_raw)


def test_the_action_column_can_serve_as_the_state(readers):
    """`--state-key action`: chunks relative to the first action of the chunk (the column is read once)."""
    from actok.data import ChunkConfig, build_chunks

    chunks = build_chunks(
        readers["pusht"], ChunkConfig(action_horizon=5, delta_dims="0", state_key="action", holdout_fraction=0)
    )
    np.testing.assert_array_equal(chunks.train_raw[:, 0, 0], 0.0)
