"""Streaming chunk building: the same chunks, statistics and tokenizer files as the in-memory implementation it
replaced (fingerprints in tests/data/chunks_golden.json), a seeded `max_chunks` cap, sketched statistics within
their stated bound, and Ray results identical to local ones."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, dataset_root, run_cli

from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.data import stats as stats_module
from actok.errors import ActokError, ActokWarning
from actok.tokenizers import create_tokenizer

GOLDEN = json.loads((Path(__file__).parent / "data" / "chunks_golden.json").read_text())["cases"]


def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return f"{array.dtype}{list(array.shape)}:" + hashlib.sha256(array.tobytes()).hexdigest()[:24]


def data_key(root: Path) -> str:
    """Which copy of a dataset the fingerprints were taken on: its data files' names and sizes."""
    files = sorted((root / "data").glob("**/*.parquet"))
    listing = [[f.relative_to(root).as_posix(), f.stat().st_size] for f in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def fingerprint(chunks, keys) -> dict:
    episodes = [chunks.train_episodes, chunks.holdout_episodes, chunks.skipped_episodes]
    config = chunks.config_dict()
    return {
        "train_raw": digest(chunks.train_raw),
        "holdout_raw": digest(chunks.holdout_raw),
        "train": digest(chunks.train),
        "holdout": digest(chunks.holdout),
        "pipeline": chunks.pipeline_dict(),
        "config": {k: config[k] for k in keys},
        "episodes": hashlib.sha256(json.dumps(episodes).encode()).hexdigest()[:24],
        "num_frames": chunks.num_frames,
        "notes": chunks.notes,
    }


def build(case: dict, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        return build_chunks(LeRobotDatasetReader(dataset_root(case["dataset"])), ChunkConfig(**case["config"]), **kw)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_same_chunks_stats_and_pipeline_as_the_in_memory_implementation(name):
    case = GOLDEN[name]
    assert data_key(dataset_root(case["dataset"])) == case["data_files"], "the fingerprints are of another copy"
    chunks = build(case)
    assert fingerprint(chunks, case["expected"]["config"]) == case["expected"]


def test_same_fast_tokenizer_file(tmp_path):
    case = GOLDEN["pusht-default"]
    folder = create_tokenizer("fast").fit(build(case).train).save(tmp_path / "fast")
    assert hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()[:24] == case["fast_tokenizer_json"]


# ------------------------------------------------------------------ max_chunks
def test_max_chunks_is_a_seeded_uniform_subset_of_each_split(readers):
    config = dict(action_horizon=10, sample_fraction=0.5, holdout_fraction=0.2, seed=7)
    whole = build_chunks(readers["pusht"], ChunkConfig(**config))
    capped = build_chunks(readers["pusht"], ChunkConfig(max_chunks=300, **config))
    for split, (full, part) in enumerate(
        [(whole.train_raw, capped.train_raw), (whole.holdout_raw, capped.holdout_raw)]
    ):
        keep = np.sort(np.random.default_rng(7 + split).choice(len(full), size=300, replace=False))
        assert np.array_equal(part, full[keep])
    assert capped.train_episodes == whole.train_episodes
    assert f"max_chunks 300: kept 300 of the {len(whole.train_raw)} sampled training chunks" in capped.notes
    big = build_chunks(readers["pusht"], ChunkConfig(max_chunks=10**9, **config))
    assert np.array_equal(big.train_raw, whole.train_raw) and np.array_equal(big.holdout, whole.holdout)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "10"])
def test_max_chunks_must_be_a_positive_integer(value):
    with pytest.raises(ActokError, match=f"max_chunks must be an integer >= 1, got {value!r}"):
        ChunkConfig(max_chunks=value).validate()


# ------------------------------------------------------------------ statistics beyond the exact budget
def test_frame_stats_are_exact_in_any_order():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 100, 1)]
    names = ("min", "max", "mean", "std", "q01", "q99")
    stats = stats_module.FrameStats(3, names, exact=True)
    other = stats_module.FrameStats(3, names, exact=True)
    stats.add(parts[2], key=2)
    other.add(parts[0], key=0)
    other.add(parts[1], key=1)
    result = stats.merge(other).result()
    expected = stats_module.compute_stats(np.concatenate(parts), names)
    assert all(np.array_equal(result[n], expected[n]) for n in names)


def test_sketched_quantiles_are_within_the_stated_rank_error():
    """Two million values in parts, merged as Ray would (after a pickle round trip): each quantile's rank is
    within `sketch_rank_error()` of the requested one; min/max exact, mean/std equal up to rounding."""
    import pickle

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.standard_t(3, size=(1_000_000, 2)), rng.exponential(size=(1_000_000, 2))])
    names = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
    partials = []
    for part in np.array_split(values, 7):
        partial = stats_module.FrameStats(2, names, exact=False)
        partial.add(part)
        partials.append(pickle.loads(pickle.dumps(partial)))
    total = partials[0]
    for partial in partials[1:]:
        total.merge(partial)
    result, exact = total.result(), stats_module.compute_stats(values, names)
    bound = stats_module.sketch_rank_error()
    assert 0 < bound < 2e-4
    for name, level in stats_module.QUANTILE_LEVELS.items():
        below, at_or_below = (values < result[name]).mean(0), (values <= result[name]).mean(0)
        assert (below <= level + bound).all() and (at_or_below >= level - bound).all(), name
        assert not np.array_equal(result[name], exact[name]), "the sketch was not exercised"
    for name in ("min", "max", "count"):
        assert np.array_equal(result[name], exact[name])
    np.testing.assert_allclose(result["mean"], exact["mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result["std"], exact["std"], rtol=1e-12)


def test_build_chunks_sketches_missing_quantiles_beyond_the_budget(readers, monkeypatch):
    """reachy2's stats.json has no quantiles: with no room for exact statistics, q01/q99 come from the sketch
    (here it still holds every frame, so the values are the data's own), and the source says so."""
    config = ChunkConfig(action_horizon=10, sample_fraction=0.5)
    exact = build_chunks(readers["reachy2_apple_storage"], config)
    monkeypatch.setattr(stats_module, "EXACT_STATS_BYTES", 0)
    sketched = build_chunks(readers["reachy2_apple_storage"], config)
    assert np.array_equal(sketched.train_raw, exact.train_raw)
    assert "KLL sketch, rank error <= 1.5e-04" in sketched.stats_source["q01"]
    assert any("KLL sketch" in note for note in sketched.notes)
    frames = np.concatenate(
        [e.action for e in readers["reachy2_apple_storage"].episodes() if e.index in exact.train_episodes]
    )
    bound = stats_module.sketch_rank_error()
    for name, level in (("q01", 0.01), ("q99", 0.99)):
        q = sketched.normalizer.stats[name]
        assert ((frames < q).mean(0) <= level + bound).all() and ((frames <= q).mean(0) >= level - bound).all()


# ------------------------------------------------------------------ Ray
@pytest.mark.slow
def test_ray_engine_gives_the_local_chunks_and_statistics(readers, copy_dataset):
    """A local 2-CPU Ray instance: Ray Data reads the columns, episodes are chunked in tasks, statistics merged;
    a bad value found by a task is the same one-line error as locally."""
    pytest.importorskip("ray", reason="the dev extra installs ray")
    from test_data_trust import action_value

    from actok.executor import ray_session

    broken = copy_dataset("robosuite_panda")
    action_value(float("nan"))(broken)

    g1 = ",".join(str(d) for d in range(14))
    cases = [
        ("reachy2_apple_storage", dict(action_horizon=10, sample_fraction=0.5)),  # q01/q99 from the frames
        ("unitree_g1_pickbottle", dict(action_horizon=30, delta_dims=g1, sample_fraction=0.2, max_chunks=300)),
        ("pusht", dict(action_horizon=8, max_episodes=40, normalization_mode="MEAN_STD", holdout_fraction=0.2)),
    ]
    with ray_session(num_cpus=2), warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        for name, config in cases:
            local = build_chunks(readers[name], ChunkConfig(**config))
            remote = build_chunks(readers[name], ChunkConfig(**config), engine="ray")
            for field in ("train_raw", "holdout_raw", "train", "holdout"):
                assert np.array_equal(getattr(local, field), getattr(remote, field)), (name, field)
            assert remote.pipeline_dict() == local.pipeline_dict()
            assert (remote.train_episodes, remote.skipped_episodes) == (local.train_episodes, local.skipped_episodes)
        with pytest.raises(ActokError, match=r"^non-finite action value \(nan\) in episode 2, frame 5, dim 3$"):
            build_chunks(LeRobotDatasetReader(broken), ChunkConfig(action_horizon=10), engine="ray")


def test_fast_fit_in_blocks_gives_the_same_tokenizer_file(tmp_path, monkeypatch):
    """FAST makes its BPE training strings block by block (bounded memory on a million chunks): same file."""
    import actok.tokenizers.coefficients as coefficients

    monkeypatch.setattr(coefficients, "FIT_BLOCK", 1000)
    case = GOLDEN["pusht-default"]
    folder = create_tokenizer("fast").fit(build(case).train).save(tmp_path / "fast")
    assert hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()[:24] == case["fast_tokenizer_json"]


# ------------------------------------------------------------------ command line
def test_train_max_chunks_caps_the_fitted_chunks(tmp_path, capsys):
    out = tmp_path / "tok"
    args = [
        "train",
        "--root",
        dataset_root("pusht"),
        "--tokenizer",
        "binning",
        "--max-chunks",
        500,
        "--output-dir",
        out,
    ]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["num_training_chunks"] == 500 and metadata["max_chunks"] == 500
    assert "on 500 action chunks" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--engine", "spark"], "unknown engine 'spark'; choose one of: local, ray"),
        (["train", "--ray-address", "auto"], "--ray-address only applies with --engine ray"),
        (["train", "--max-chunks", "0"], "max_chunks must be an integer >= 1, got 0"),
        (
            ["check", "--action-tokenizer-path", ".", "--engine", "ray", "--ray-address", "no way"],
            "invalid Ray address",
        ),
    ],
)
def test_engine_and_cap_flags_refuse_bad_values_on_one_line(args, message, capsys, tmp_path):
    root = dataset_root("pusht")
    code, _, err = run_cli(
        [*args, "--root", root, *(["--output-dir", tmp_path / "t"] if args[0] == "train" else [])], capsys
    )
    assert_one_line_error(code, err, message)


# ------------------------------------------------------------------ PipelineSpec
def test_pipeline_spec_round_trips_applies_and_names_its_differences(pusht_chunks, g1_chunks):
    from actok.data.spec import PipelineSpec

    spec = g1_chunks.spec
    assert spec.delta_positions == list(range(14))
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again.to_dict() == spec.to_dict()
    assert np.array_equal(pusht_chunks.spec.apply(pusht_chunks.train_raw), pusht_chunks.train)
    raw = g1_chunks.train_raw[:5]
    state = np.random.default_rng(0).normal(size=(5, 26))
    absolute = raw.astype(np.float64).copy()
    absolute[:, :, :14] += state[:, None, :14]
    assert np.allclose(spec.apply(absolute, state), g1_chunks.train[:5])
    assert np.allclose(spec.restore(spec.apply(absolute, state), state), np.clip(absolute, *_clip_bounds(spec, state)))
    assert pusht_chunks.spec.mismatches(spec) == [
        "action_horizon: tokenizer has 10, requested 30",
        "encoded_dims: tokenizer has '0:2', requested '0:26'",
        f"delta_dims: tokenizer has None, requested {','.join(map(str, range(14)))!r}",
    ]
    old = {k: v for k, v in pusht_chunks.pipeline_dict().items() if k not in ("state_key", "stats_source")}
    assert PipelineSpec.from_dict(old).state_key == "observation.state"  # files of older actok load


def _clip_bounds(spec, state):
    """The raw values QUANTILES clips to, per chunk `[N, 1, D]`: q01/q99 shifted back by the delta offset."""
    offset = spec.state_offset(state, len(state))[:, None, :]
    return spec.normalizer.stats["q01"] + offset, spec.normalizer.stats["q99"] + offset
