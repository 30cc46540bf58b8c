"""`actok train` / `actok bench` as a user runs them, including every bad input of the foundation issue."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import G1_ARM_DIMS, assert_one_line_error, dataset_root, run_cli

from actok import ActionCodec, available_tokenizers, load_tokenizer
from actok.cli import main
from actok.tokenizers import tokenizer_extra


@pytest.fixture
def pusht():
    return dataset_root("pusht")


def test_train_fast_writes_hub_folder_and_metadata(pusht, tmp_path, capsys):
    out = tmp_path / "tok"
    code, stdout, _ = run_cli(
        [
            "train",
            "--root",
            pusht,
            "--repo_id",
            "lerobot/pusht",
            "--action_horizon",
            "10",
            "--output_dir",
            out,
        ],
        capsys,
    )
    assert code == 0
    for line in [
        "Dataset loaded: 206 episodes, 25650 frames",
        "Before normalization - overall stats:",
        "Applied quantile normalization [q01, q99] → [-1, 1]",
        "Average compression ratio:",
        "P99 token length:",
    ]:
        assert line in stdout
    files = {p.name for p in out.iterdir()}
    assert {
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "processing_action_tokenizer.py",
        "metadata.json",
        "pipeline.json",
    } <= files
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["tokenizer"] == "fast" and meta["encoded_dims"] == "0:2" and meta["action_horizon"] == 10
    assert set(meta["compression_stats"]) >= {
        "compression_ratio",
        "mean_token_length",
        "p99_token_length",
        "min_token_length",
        "max_token_length",
    }
    assert meta["normalization"]["mode"] == "QUANTILES" and len(meta["normalization"]["stats"]["q01"]) == 2
    assert len(meta["dataset_info"]["holdout_episodes"]) == 21


@pytest.mark.slow
def test_codec_round_trips_raw_actions_with_delta(tmp_path, capsys, readers):
    out = tmp_path / "g1"
    code, _, _ = run_cli(
        [
            "train",
            "--root",
            dataset_root("unitree_g1_pickbottle"),
            "--action-horizon=30",
            "--encoded-dims=0:26",
            f"--delta-dims={G1_ARM_DIMS}",
            "--use-delta-transform",
            "true",
            "--output-dir",
            out,
        ],
        capsys,
    )
    assert code == 0
    codec = ActionCodec.load(out)
    ep = readers["unitree_g1_pickbottle"].episodes("observation.state")[5]
    actions = np.stack([ep.action[i : i + 30] for i in range(0, 200, 20)])
    state = ep.state[0:200:20]
    decoded, valid = codec.decode(codec.encode(actions, state=state), state=state, return_valid=True)
    assert valid.all() and decoded.shape == actions.shape
    assert np.sqrt(np.mean((decoded - actions) ** 2)) < 0.05  # radians / [0, 1] hand units


@pytest.mark.slow
def test_bench_default_runs_on_bundled_dataset_with_every_core_tokenizer(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_cli(["bench"], capsys)
    assert code == 0
    files = sorted(
        (tmp_path / "outputs" / "action_tokenizer_benchmark").glob("*_pusht_*_action_tokenizer_results.json")
    )
    # Default: every tokenizer that needs no optional extra (the learned ones are asked for by name or "all").
    assert len(files) == len([n for n in available_tokenizers() if not tokenizer_extra(n)])
    result = json.loads(files[0].read_text())
    seed_metrics = [
        "reconstruction_mae",
        "reconstruction_mse",
        "reconstruction_rmse",
        "reconstruction_max_abs_error",
        "per_dimension_mae",
        "compression_ratio",
        "mean_token_length",
        "std_token_length",
        "min_token_length",
        "max_token_length",
        "p50_token_length",
        "p99_token_length",
        "mean_encode_time_sec",
        "mean_decode_time_sec",
        "num_chunks_evaluated",
        "total_chunks_available",
    ]
    assert set(seed_metrics) <= set(result["metrics"])
    assert result["metrics"]["evaluated_split"] == "holdout"
    assert {"raw_reconstruction_rmse", "reconstruction_p95_abs_error", "jerk_ratio"} <= set(result["metrics"])
    assert result["config"]["tokenizer"] in available_tokenizers()
    assert "tokenizer" in stdout and "fast" in stdout and "binning" in stdout


def test_bench_saved_tokenizer_and_mismatch_refused(pusht, tmp_path, capsys):
    tok = tmp_path / "tok"
    assert run_cli(["train", "--root", pusht, "--action-horizon", "8", "--output-dir", tok], capsys)[0] == 0
    results = tmp_path / "res"
    code, _, _ = run_cli(["bench", "--root", pusht, "--action-tokenizer-path", tok, "--output-dir", results], capsys)
    assert code == 0
    result = json.loads(next(results.glob("*.json")).read_text())
    assert result["config"]["action_horizon"] == 8  # adopted from the saved pipeline
    assert "clipped_coefficient_fraction" in result["metrics"] and "invalid_decode_fraction" in result["metrics"]
    code, _, err = run_cli(
        [
            "bench",
            "--root",
            pusht,
            "--action-tokenizer-path",
            tok,
            "--action-horizon",
            "10",
            "--output-dir",
            results,
        ],
        capsys,
    )
    assert_one_line_error(code, err, "action_horizon: tokenizer has 8, requested 10")
    # --force scores anyway when the chunk shape still fits the tokenizer (here: another normalization) ...
    mismatch = ["bench", "--root", pusht, "--action-tokenizer-path", tok, "--normalization-mode", "MIN_MAX"]
    code, _, err = run_cli(mismatch, capsys)
    assert_one_line_error(code, err, "normalization_mode: tokenizer has QUANTILES, requested MIN_MAX")
    assert run_cli([*mismatch, "--force", "--output-dir", results], capsys)[0] == 0
    assert len(list(results.glob("*.json"))) == 2
    # ... and a chunk shape the tokenizer cannot take is still refused, by the tokenizer, in one line.
    wrong_shape = ["bench", "--root", pusht, "--action-tokenizer-path", tok, "--action-horizon", "10", "--force"]
    code, _, err = run_cli([*wrong_shape, "--output-dir", results], capsys)
    assert_one_line_error(code, err, "fitted on chunks of shape [H=8, D=2]")


def test_results_never_overwrite_each_other(tmp_path):
    from actok.bench import write_result

    a = write_result(tmp_path, "x_action_tokenizer_results.json", {"a": 1})
    b = write_result(tmp_path, "x_action_tokenizer_results.json", {"a": 2})
    assert a != b and json.loads(a.read_text()) == {"a": 1}


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["train", "--normalization-mode", "ZSCORE"],
            "valid modes: IDENTITY, MEAN_STD, MIN_MAX, QUANTILES, QUANTILE10",
        ),
        (["train", "--tokenizer", "nope"], "valid tokenizers: binning, fast"),
        (["bench", "--tokenizer", "binning,nope"], "valid tokenizers: binning, fast"),
        (["train", "--encoded-dims", "0:9"], "out of range for action dim 2"),
        (["train", "--encoded-dims", "zero:two"], "malformed encoded_dims"),
        (["train", "--action-horizon", "5000"], "longer than every episode"),
        (["train", "--sample-fraction", "0"], "sample_fraction must be in (0, 1]"),
        (["train", "--tokenizer", "fast", "--vocab-size", "8"], "use vocab_size >="),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(pusht, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, _, err = run_cli([*args, "--root", pusht, "--output-dir", out], capsys)
    assert_one_line_error(code, err, message)
    assert not out.exists()


def test_delta_without_state_column(tmp_path, capsys):
    code, _, err = run_cli(
        [
            "train",
            "--root",
            dataset_root("robosuite_panda"),
            "--delta-dims",
            "0,1",
            "--output-dir",
            tmp_path / "o",
        ],
        capsys,
    )
    assert_one_line_error(
        code, err, "available columns: action, timestamp, frame_index, episode_index, index, task_index"
    )


def test_missing_root_and_not_a_dataset(tmp_path, capsys):
    code, _, err = run_cli(["train", "--root", tmp_path / "missing"], capsys)
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run_cli(["bench", "--root", tmp_path], capsys)
    assert_one_line_error(code, err, "expected the file")


def test_existing_output_needs_overwrite(pusht, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = run_cli(["train", "--root", pusht, "--tokenizer", "binning", "--output-dir", out], capsys)
    assert_one_line_error(code, err, "pass --overwrite")
    assert (out / "mine.txt").read_text() == "keep me"
    # --overwrite replaces only a folder actok wrote: this one holds the user's file, so it is refused too
    code, _, err = run_cli(
        ["train", "--root", pusht, "--tokenizer", "binning", "--output-dir", out, "--overwrite"], capsys
    )
    assert_one_line_error(code, err, "not written by actok")
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "mine.txt").unlink()
    code, _, _ = run_cli(["train", "--root", pusht, "--tokenizer", "binning", "--output-dir", out], capsys)
    assert code == 0 and load_tokenizer(out).name == "binning"


def test_flag_spellings_and_booleans(pusht, tmp_path, capsys):
    a = tmp_path / "a"
    b = tmp_path / "b"
    assert (
        run_cli(
            [
                "train",
                f"--root={pusht}",
                "--tokenizer=binning",
                "--action_horizon=6",
                "--holdout_fraction",
                "0",
                f"--output_dir={a}",
                "--overwrite=false",
            ],
            capsys,
        )[0]
        == 0
    )
    assert (
        run_cli(
            [
                "train",
                "--root",
                pusht,
                "--tokenizer",
                "binning",
                "--action-horizon",
                "6",
                "--holdout-fraction=0",
                "--output-dir",
                b,
                "--overwrite",
            ],
            capsys,
        )[0]
        == 0
    )
    assert json.loads((a / "pipeline.json").read_text()) == json.loads((b / "pipeline.json").read_text())
    code, _, err = run_cli(["train", "--root", pusht, "--overwrite=maybe"], capsys)
    assert_one_line_error(code, err, "expected true or false")


@pytest.mark.slow
def test_console_script_and_module_entry_point(pusht, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "actok", "train", "--root", str(pusht), "--tokenizer", "nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_bench_sweep_over_grids_and_datasets(tmp_path, capsys):
    roots = [str(dataset_root("pusht")), str(dataset_root("robosuite_panda"))]
    out = tmp_path / "sweep"
    args = ["bench", "--root", roots[0], "--root", roots[1], "--output-dir", str(out)]
    args += ["--sweep", "fast:scale=2,5", "--sweep", "bspline:n_control_points=4,6;degree=2,3"]
    assert main(args) == 0
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(results) == 2 * (2 + 4)
    cells = {
        (r["config"]["repo_id"], r["config"]["tokenizer"], json.dumps(r["config"]["tokenizer_params"], sort_keys=True))
        for r in results
    }
    assert len(cells) == 12  # every (dataset, tokenizer, parameters) once
    scales = sorted(r["config"]["tokenizer_params"]["scale"] for r in results if r["config"]["tokenizer"] == "fast")
    assert scales == [2.0, 2.0, 5.0, 5.0]
    printed = capsys.readouterr().out
    assert "fast-scale2" in printed and "bspline-degree2-n_control_points4" in printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "fast"], "expected NAME:KEY=V1,V2"),
        (["--sweep", "fast:nope=1,2"], "'nope=1,2' is not KEY=V1,V2 with KEY one of scale, vocab_size"),
        (["--sweep", "nosuch:scale=1"], "unknown tokenizer 'nosuch'"),
        (["--root", "a", "--root", "b", "--repo-id", "x"], "2 --root but 1 --repo-id"),
    ],
)
def test_bench_bad_sweeps_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["bench", *args, "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bench_sweep_skips_a_cell_that_cannot_be_fitted(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["bench", "--root", str(dataset_root("pusht")), "--sweep", "fast:scale=5,100000", "--output-dir", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "warning: skipped pusht fast-scale100000: vocab_size 1024 is smaller than" in captured.err
    assert "1 cell(s) skipped" in captured.out
    assert [json.loads(p.read_text())["config"]["tokenizer_params"]["scale"] for p in out.glob("*.json")] == [5.0]
