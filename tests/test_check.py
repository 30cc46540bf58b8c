"""`actok check`: serving data through a saved pipeline against the fit-time profile `actok train` records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import G1_ARM_DIMS, assert_one_line_error, dataset_root, run_cli

import actok
from actok.check import PROFILE_FILE, compare, fit_baseline, load_profile, profile, unclipped_normalize
from actok.cli import main
from actok.codec import ActionCodec
from actok.data.normalize import Normalizer
from actok.tokenizers.binning import BinningTokenizer

PUSHT = Path(actok.__file__).parent / "example_data" / "pusht"


def scaled_copy(src: Path, dst: Path, factor: float, offset: float = 0.0, with_stats: bool = False) -> Path:
    """A copy of a dataset whose actions are scaled by `factor` about their mean and shifted by `offset`; with
    `with_stats`, its stats.json is changed the same way (a dataset that carries its own, consistent stats)."""
    shutil.copytree(src, dst)
    files = sorted((dst / "data").glob("**/*.parquet"))
    tables = [pq.read_table(f) for f in files]
    actions = [np.stack(t.column("action").to_numpy(zero_copy_only=False)) for t in tables]
    center = np.concatenate(actions).mean(axis=0)
    for f, table, action in zip(files, tables, actions, strict=True):
        new = ((action - center) * factor + center + offset).astype(np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(new.ravel()), new.shape[1])
        pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", column), f)
    if with_stats:
        stats_path = dst / "meta" / "stats.json"
        stats = json.loads(stats_path.read_text())
        for key in ("min", "max", "mean", "q01", "q10", "q50", "q90", "q99"):
            stats["action"][key] = ((np.array(stats["action"][key]) - center) * factor + center + offset).tolist()
        stats["action"]["std"] = (np.array(stats["action"]["std"]) * factor).tolist()
        stats_path.write_text(json.dumps(stats))
    return dst


@pytest.fixture(scope="module")
def pusht_tokenizer(tmp_path_factory) -> Path:
    """FAST trained on the bundled Push-T by `actok train` (so with its fit_profile.json)."""
    out = tmp_path_factory.mktemp("check") / "fast_pusht"
    assert main(["train", "--root", str(PUSHT), "--action-horizon", "10", "--output-dir", str(out)]) == 0
    return out


@pytest.fixture
def tokenizer_copy(pusht_tokenizer, tmp_path):
    def _copy(*drop: str) -> Path:
        dst = tmp_path / "tok"
        shutil.copytree(pusht_tokenizer, dst)
        for name in drop:
            (dst / name).unlink()
        return dst

    return _copy


def test_train_records_fit_profile(pusht_tokenizer):
    recorded = load_profile(pusht_tokenizer)
    meta = json.loads((pusht_tokenizer / "metadata.json").read_text())
    assert set(recorded["splits"]) == {"train", "holdout"}
    assert recorded["splits"]["holdout"]["episodes"] == meta["dataset_info"]["holdout_episodes"]
    assert recorded["splits"]["train"]["num_chunks"] == meta["num_training_chunks"]
    base = fit_baseline(recorded)
    assert base["max_token_len"] >= base["token_length"]["max"]
    assert base["max_token_len"] == max(s["max_token_len"] for s in recorded["splits"].values())
    # quantile normalization leaves about 2% of the fit-time values outside [-1, 1] (q01/q99), before clipping
    assert 0.005 < max(base["out_of_range_fraction"]) < 0.05


def test_same_data_passes(pusht_tokenizer, capsys):
    code, out, err = run_cli(["check", "--action-tokenizer-path", pusht_tokenizer, "--root", PUSHT], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("OK: within the thresholds")
    assert any(ln.startswith("mean token length") for ln in lines)
    assert any(ln.startswith("max_token_len to configure: ") for ln in lines)


def test_scaled_actions_drift_names_what_drifted(pusht_tokenizer, tmp_path, capsys):
    served = scaled_copy(PUSHT, tmp_path / "pusht_x3", 3.0)
    code, out, _ = run_cli(["check", "--action-tokenizer-path", pusht_tokenizer, "--root", served], capsys)
    assert code == 1
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("DRIFT: ")
    assert "outside [-1, 1] before clipping" in verdict and "dim 0" in verdict and "rmse" in verdict


def test_serving_data_is_normalized_with_the_saved_stats(pusht_tokenizer, tmp_path, capsys):
    # Another robot's dataset carries its own, consistent stats: normalizing with them would hide the drift.
    served = scaled_copy(PUSHT, tmp_path / "other_robot", 3.0, offset=100.0, with_stats=True)
    code, out, _ = run_cli(["check", "--action-tokenizer-path", pusht_tokenizer, "--root", served], capsys)
    assert code == 1, out
    assert "outside [-1, 1] before clipping" in out.strip().splitlines()[-1]


def test_json_is_one_object(pusht_tokenizer, tmp_path, capsys):
    served = scaled_copy(PUSHT, tmp_path / "pusht_x3", 3.0)
    code, out, _ = run_cli(["check", "--action-tokenizer-path", pusht_tokenizer, "--root", served, "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["verdict"] == "drift" and report["message"].startswith("DRIFT: ")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["out_of_range_fraction"]["drifted"] and checks["rmse"]["drifted"]
    assert checks["invalid_decode_fraction"]["drifted"] is False
    assert {d["dim"] for d in checks["out_of_range_fraction"]["dims"]} == {0, 1}
    assert report["max_token_len"] >= report["serving"]["token_length"]["max"] * 0.9
    assert report["serving"]["num_chunks"] > 1000 and report["fit"]["splits"] == ["train", "holdout"]
    assert report["repo_id"] == "pusht_x3"


def test_without_profile_reports_absolute_numbers(tokenizer_copy, capsys):
    folder = tokenizer_copy(PROFILE_FILE)
    code, out, err = run_cli(["check", "--action-tokenizer-path", folder, "--root", PUSHT], capsys)
    assert code == 0, err
    assert "comparison with fit time is unavailable" in out.strip().splitlines()[-1]
    code, out, _ = run_cli(["check", "--action-tokenizer-path", folder, "--root", PUSHT, "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["comparison_available"] is False and report["fit"] is None
    assert all(c["ratio"] is None for c in report["checks"])


def test_max_chunks_is_a_seeded_subset(pusht_tokenizer, capsys):
    args = ["check", "--action-tokenizer-path", pusht_tokenizer, "--root", PUSHT, "--json", "--max-chunks", 300]
    reports = [json.loads(run_cli([*args, "--seed", seed], capsys)[1]) for seed in (0, 0, 1)]
    assert all(r["serving"]["num_chunks"] == 300 for r in reports)
    assert reports[0]["serving"] == reports[1]["serving"] != reports[2]["serving"]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ["--action-tokenizer-path", "/nonexistent/tok", "--root", PUSHT],
            "tokenizer folder /nonexistent/tok does not exist",
        ),
        (["--root", PUSHT], "--action-tokenizer-path"),
        (["--action-tokenizer-path", "TOK"], "no dataset given"),
        (["--action-tokenizer-path", "TOK", "--root", PUSHT, "--max-chunks", "0"], "max_chunks must be >= 1, got 0"),
        (["--action-tokenizer-path", "TOK", "--root", PUSHT, "--sample-fraction", "0"], "sample_fraction must be in"),
        (["--action-tokenizer-path", "TOK", "--root", PUSHT, "--seed", "-1"], "seed must be an integer >= 0, got -1"),
    ],
)
def test_user_errors_are_one_line(pusht_tokenizer, args, pattern, capsys):
    args = [pusht_tokenizer if a == "TOK" else a for a in args]
    code, _, err = run_cli(["check", *args], capsys)
    assert_one_line_error(code, err, pattern)


def test_folder_without_pipeline_is_one_line(tokenizer_copy, capsys):
    folder = tokenizer_copy("pipeline.json")
    code, _, err = run_cli(["check", "--action-tokenizer-path", folder, "--root", PUSHT], capsys)
    assert_one_line_error(code, err, "has no pipeline.json")


@pytest.mark.parametrize(
    ("content", "pattern"),
    [("{not json", "is not valid JSON"), ('{"splits": {"train": {"rmse": 1}}}', "lacks num_chunks")],
)
def test_broken_profile_is_one_line(tokenizer_copy, content, pattern, capsys):
    folder = tokenizer_copy()
    (folder / PROFILE_FILE).write_text(content)
    code, _, err = run_cli(["check", "--action-tokenizer-path", folder, "--root", PUSHT], capsys)
    assert_one_line_error(code, err, pattern)


def test_profile_of_other_dims_is_one_line(tokenizer_copy, capsys):
    folder = tokenizer_copy()
    recorded = json.loads((folder / PROFILE_FILE).read_text())
    for split in recorded["splits"].values():
        split["encoded_dims"], split["out_of_range_fraction"] = [0], [0.02]
    (folder / PROFILE_FILE).write_text(json.dumps(recorded))
    code, _, err = run_cli(["check", "--action-tokenizer-path", folder, "--root", PUSHT], capsys)
    assert_one_line_error(code, err, "fit_profile.json does not belong to its pipeline.json")


def test_dataset_with_other_action_dim_is_one_line(pusht_tokenizer, capsys):
    code, _, err = run_cli(
        ["check", "--action-tokenizer-path", pusht_tokenizer, "--root", dataset_root("robosuite_panda")], capsys
    )
    assert_one_line_error(code, err, "has 7-D actions but the tokenizer was trained on 2-D actions")


def test_repo_id_is_looked_up_in_the_cache(pusht_tokenizer, tmp_path, monkeypatch, capsys):
    shutil.copytree(PUSHT, tmp_path / "lerobot" / "someone" / "pusht")
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot"))
    code, out, err = run_cli(
        ["check", "--action-tokenizer-path", pusht_tokenizer, "--repo-id", "someone/pusht", "--json"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["repo_id"] == "someone/pusht"


def test_delta_pipeline_on_g1(tmp_path, capsys):
    g1 = dataset_root("unitree_g1_pickbottle")
    out = tmp_path / "g1"
    common = ["--action-horizon", 30, "--encoded-dims", "0:26", "--delta-dims", G1_ARM_DIMS]
    assert main([str(a) for a in ["train", "--root", g1, *common, "--sample-fraction", 0.05, "--output-dir", out]]) == 0
    capsys.readouterr()
    code, stdout, err = run_cli(["check", "--action-tokenizer-path", out, "--root", g1, "--json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["verdict"] == "ok" and report["episodes"] == 100
    # the delta arm dims are served relative to the state, with the stats of the delta chunks: ~2% outside
    assert max(report["serving"]["out_of_range_fraction"][:14]) < 0.05
    # the robosuite dataset has no state column for the delta dims
    code, _, err = run_cli(["check", "--action-tokenizer-path", out, "--root", dataset_root("robosuite_panda")], capsys)
    assert_one_line_error(code, err, "relative to the state column 'observation.state'")


# ---------------------------------------------------------------- library
def test_out_of_range_is_measured_before_clipping():
    normalizer = Normalizer("QUANTILES", {"q01": np.array([0.0, 0.0]), "q99": np.array([1.0, 10.0])})
    raw = np.zeros((4, 5, 2))
    raw[..., 0] = [0.0, 0.5, 1.0, 3.0, -2.0]  # two of five values beyond [q01, q99]; the edges are inside
    raw[..., 1] = 5.0
    assert np.abs(normalizer.normalize(raw)).max() <= 1.0  # what the tokenizer sees hides it
    unclipped = unclipped_normalize(normalizer, raw)
    np.testing.assert_allclose(unclipped[0, :, 0], [-1.0, 0.0, 1.0, 5.0, -5.0])
    tokenizer = BinningTokenizer().fit(normalizer.normalize(raw))
    codec = ActionCodec(
        tokenizer,
        {"action_horizon": 5, "action_dim": 2, "encoded_dims": "0:2", "encoded_dim_list": [0, 1],
         "normalization": normalizer.to_dict()},
    )  # fmt: skip
    measured = profile(codec, raw)
    assert measured["out_of_range_fraction"] == [0.4, 0.0]
    assert measured["clipped_coefficient_fraction"] is None  # binning has no coefficients to clip
    assert measured["rmse"] > 1.0  # the error against the unclipped values counts what the clip lost


def _profile(mean=10.0, p99=20.0, outside=(0.02, 0.02), invalid=0.0, rmse=0.05, clipped=0.0) -> dict:
    return {
        "num_chunks": 100,
        "encoded_dims": [0, 1],
        "token_length": {"mean": mean, "p50": mean, "p99": p99, "p99.9": p99, "max": int(p99)},
        "max_token_len": int(np.ceil(1.1 * p99)),
        "out_of_range_fraction": list(outside),
        "clipped_coefficient_fraction": clipped,
        "invalid_decode_fraction": invalid,
        "rmse": rmse,
        "raw_rmse": rmse,
    }


@pytest.mark.parametrize(
    ("serving", "drifted"),
    [
        (_profile(), []),
        (_profile(mean=12.4, p99=29.0, outside=(0.049, 0.0), rmse=0.099, clipped=0.001), []),
        (_profile(mean=12.6), ["mean_token_length"]),
        (_profile(p99=31.0), ["p99_token_length"]),
        (_profile(outside=(0.02, 0.06)), ["out_of_range_fraction"]),
        (_profile(clipped=0.0011), ["clipped_coefficient_fraction"]),
        (_profile(invalid=0.006), ["invalid_decode_fraction"]),
        (_profile(rmse=0.11), ["rmse"]),
    ],
)
def test_thresholds(serving, drifted):
    fit = fit_baseline({"splits": {"train": _profile(mean=8.0, rmse=0.01), "holdout": _profile()}})
    report = compare(serving, fit)
    assert [c["name"] for c in report["checks"] if c["drifted"]] == drifted
    assert report["verdict"] == ("drift" if drifted else "ok")
    assert report["max_token_len"] == int(np.ceil(1.1 * max(serving["token_length"]["p99.9"], 20)))


def test_absolute_checks_without_profile():
    assert compare(_profile(mean=100.0, rmse=9.0), None)["verdict"] == "ok"
    report = compare(_profile(invalid=0.01), None)
    assert report["verdict"] == "drift" and report["message"] == "DRIFT: invalid decodes 1.00% (limit 0.50%)"
    assert report["max_token_len"] == 22 and report["comparison_available"] is False
