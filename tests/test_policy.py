"""actok policy: the shared model's heads and training loop, the data windows, the contenders, the scores, the
command line, and (slow) the --quick-test run end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import actok
from actok.errors import ActokError, ActokWarning

torch = pytest.importorskip("torch")

from actok.casestudy.model import ConditionedGPT, ModelConfig, token_batch, train_model  # noqa: E402
from actok.data import LeRobotDatasetReader  # noqa: E402
from actok.policy.benchmark import build_specs  # noqa: E402
from actok.policy.data import load_policy_data  # noqa: E402
from actok.policy.evaluate import closed_loop, mean_ci95, paired_difference_ci95, wilson_ci95  # noqa: E402
from actok.policy.main import main  # noqa: E402
from actok.policy.policies import Policy, PolicySpec, TrainSettings, train_policy  # noqa: E402
from actok.policy.report import policy_section  # noqa: E402

PUSHT_STATE = Path(actok.__file__).parent / "example_data" / "pusht_state"
TINY = TrainSettings(num_epochs=1, batch_size=64, n_embd=16, n_head=2, n_layer=1, validation_chunks=64)


@pytest.fixture(scope="module")
def data():
    return load_policy_data(LeRobotDatasetReader(PUSHT_STATE), 8, 2, 0.25, 0, [4], max_episodes=8)


# ------------------------------------------------------------------ model
def test_parallel_head_predicts_each_token_without_seeing_the_others():
    torch.manual_seed(0)
    model = ConditionedGPT(ModelConfig(vocab_size=9, block_size=2 + 5 + 1, n_condition=2, condition_dim=3)).eval()
    cond = torch.randn(4, 2, 3)
    logits = model.parallel_logits(cond, 5)
    assert logits.shape == (4, 5, 9)
    assert [len(x) for x in model.generate_parallel(cond, 5)] == [5] * 4
    # The inputs are placeholders, so the logits do not depend on any target token.
    targets = torch.randint(0, 8, (4, 5))
    loss = model.parallel_loss(cond, targets)
    assert torch.isclose(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, 9), targets.reshape(-1)))


def test_regression_head_only_when_configured():
    cond = torch.randn(3, 2, 4)
    model = ConditionedGPT(ModelConfig(vocab_size=1, block_size=2, n_condition=2, condition_dim=4, regression_dim=6))
    assert model.regress(cond).shape == (3, 6)
    with pytest.raises(ValueError, match="no regression head"):
        ConditionedGPT(ModelConfig(vocab_size=5, block_size=4)).regress(torch.randn(1, 4, 2))


def test_token_batch_pads_inputs_with_eos_and_targets_with_ignore():
    inputs, targets = token_batch([[1, 2, 3], [4]], eos=9)
    assert inputs.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert targets.tolist() == [[1, 2, 3, 9], [4, 9, -100, -100]]


def test_train_model_learns_and_logs_every_epoch():
    torch.manual_seed(0)
    x = torch.randn(128, 1, 2)
    y = x[:, 0] @ torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    model = ConditionedGPT(ModelConfig(1, 1, n_condition=1, condition_dim=2, regression_dim=2, n_embd=16))
    log = train_model(
        model, lambda i: model.regression_loss(x[i], y[i]), 128, num_epochs=12, batch_size=32,
        learning_rate=1e-2, weight_decay=0.0, warmup_steps=5, seed=0, progress=False,
        on_epoch=lambda e: {"val_loss": float(e)},
    )  # fmt: skip
    assert log.steps == 12 * 4
    assert [h["epoch"] for h in log.history] == list(range(1, 13))
    assert [h["val_loss"] for h in log.history] == [float(e) for e in range(1, 13)]
    assert log.history[-1]["train_loss"] < 0.5 * log.history[0]["train_loss"]


# ------------------------------------------------------------------ data
def test_windows_stay_inside_their_episode(data):
    reader = LeRobotDatasetReader(PUSHT_STATE)
    episodes = reader.episodes(state_key="observation.state")[:8]
    first, second = episodes[0], episodes[1]
    n = len(first)
    assert data.chunks.shape == (sum(len(e) for e in episodes), 8, 2)
    np.testing.assert_allclose(data.chunks[0], first.action[:8])
    # Past the end of an episode the last action is held, never the next episode's.
    np.testing.assert_allclose(data.chunks[n - 1], np.repeat(first.action[-1:], 8, axis=0))
    np.testing.assert_allclose(data.chunks[n], second.action[:8])
    # The observation window repeats the first frame before the episode starts; the angle becomes sin, cos.
    np.testing.assert_allclose(data.conditions[n, 0], data.conditions[n, 1])
    assert data.conditions.shape[2] == 6
    np.testing.assert_allclose(
        data.conditions[n, 1, 4:], [np.sin(second.state[0, 4]), np.cos(second.state[0, 4])], rtol=1e-5
    )
    np.testing.assert_allclose(data.previous_action[n], second.action[0])
    np.testing.assert_allclose(data.previous_action[n + 1], second.action[0])


def test_split_is_by_episode_and_normalization_from_training(data):
    assert not set(data.episode[data.train]) & set(data.episode[data.holdout])
    assert (data.n_train_episodes, data.n_holdout_episodes) == (6, 2)
    plain = data.conditions[data.train][..., :4]
    assert plain.min() == pytest.approx(-1.0) and plain.max() == pytest.approx(1.0)


def test_a_dataset_without_state_conditions_on_the_previous_actions(tmp_path):
    root = tmp_path / "nostate"
    shutil.copytree(PUSHT_STATE, root)
    for file in (root / "data").glob("**/*.parquet"):
        table = pq.read_table(file)
        pq.write_table(table.drop(["observation.state"]), file)
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["observation.state"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    d = load_policy_data(LeRobotDatasetReader(root), 4, 2, 0.25, 0, max_episodes=4)
    assert d.condition_source == "previous actions" and d.conditions.shape[1:] == (4, 2)
    np.testing.assert_allclose(d.conditions[5], d.action_normalizer.normalize(d.chunks[1]), rtol=1e-5)


# ------------------------------------------------------------------ contenders
def test_build_specs_adds_continuous_and_noop_once_and_expands_heads_and_sweeps(tmp_path):
    specs = build_specs("binning,continuous", ["bspline:n_control_points=4,6"], ["autoregressive", "parallel"])
    assert [s.label for s in specs] == [
        "continuous", "noop", "binning", "binning/parallel", "bspline-n_control_points4",
        "bspline-n_control_points4/parallel", "bspline-n_control_points6", "bspline-n_control_points6/parallel",
    ]  # fmt: skip
    assert specs[4].params == {"n_control_points": 4} and specs[5].head == "parallel"
    folder = tmp_path / "my_tok"
    folder.mkdir()
    assert build_specs(str(folder), [], ["autoregressive"])[2].path == str(folder)


@pytest.mark.parametrize(
    ("tokenizers", "heads", "message"),
    [
        ("nope", ["autoregressive"], "'nope' is neither a registered tokenizer nor a tokenizer folder"),
        ("binning", ["sideways"], "unknown head sideways; choose from: autoregressive, parallel"),
        ("binning,binning", ["autoregressive"], "the same policy is requested twice"),
        (" , ", ["autoregressive"], "--tokenizers is empty; give tokenizer names or folders"),
    ],
)
def test_build_specs_errors(tokenizers, heads, message):
    with pytest.raises(ActokError, match=message):
        build_specs(tokenizers, [], heads)


def test_parallel_head_refuses_a_variable_length_tokenizer(data):
    spec = PolicySpec("fast/parallel", tokenizer="fast", head="parallel")
    with pytest.raises(ActokError, match="parallel head needs a fixed-length tokenizer; fast/parallel gives"):
        train_policy(spec, data, TINY, 0, "cpu", "relaxed", progress=False)


@pytest.mark.parametrize("head", ["autoregressive", "parallel"])
def test_a_token_policy_trains_and_predicts_raw_chunks(data, head):
    spec = PolicySpec("binning", tokenizer="binning", params={"n_bins": 16}, head=head)
    policy, log, _ = train_policy(spec, data, TINY, 0, "cpu", "relaxed", progress=False)
    assert len(log.history) == 1 and "val_loss" in log.history[0]
    chunk, valid, n_tokens = policy.predict(data.conditions[:5], data.previous_action[:5])
    assert chunk.shape == (5, 8, 2) and valid.shape == (5,)
    assert (n_tokens <= 16).all()
    assert chunk.min() >= 0 and chunk.max() <= 600  # raw pixels, not normalized values


def test_hold_decode_policy_keeps_the_agent_in_place_on_invalid_tokens(data):
    spec = PolicySpec("binning", tokenizer="binning", params={"n_bins": 16})
    policy, _, _ = train_policy(spec, data, TINY, 0, "cpu", "hold", progress=False)
    policy.model.generate = lambda cond, max_tokens: [[0]] * len(cond)  # too short: never a valid encoding
    hold = np.array([[10.0, 20.0], [30.0, 40.0]])
    chunk, valid, _ = policy.predict(data.conditions[:2], hold)
    assert not valid.any()
    np.testing.assert_array_equal(chunk, np.repeat(hold[:, None], 8, axis=1))


def test_noop_holds_and_continuous_regresses(data):
    noop = Policy(PolicySpec("noop", kind="noop"), 8, 2, data.action_normalizer, "relaxed")
    chunk, valid, _ = noop.predict(data.conditions[:3], data.previous_action[:3])
    np.testing.assert_array_equal(chunk, np.repeat(data.previous_action[:3, None], 8, axis=1))
    assert valid.all()
    policy, log, _ = train_policy(PolicySpec("continuous", kind="continuous"), data, TINY, 0, "cpu", "relaxed", False)
    assert policy.predict(data.conditions[:3], data.previous_action[:3])[0].shape == (3, 8, 2)
    assert log.history[0]["val_loss"] > 0


# ------------------------------------------------------------------ scores
def test_confidence_intervals():
    lo, hi = wilson_ci95(0, 50)
    assert lo == 0.0 and hi == pytest.approx(0.0713, abs=1e-4)
    assert wilson_ci95(10, 20) == pytest.approx([0.2993, 0.7007], abs=1e-4)
    assert mean_ci95(np.array([0.2, 0.4, 0.6])) == pytest.approx(
        [0.4 - 1.959964 * 0.2 / np.sqrt(3), 0.4 + 1.959964 * 0.2 / np.sqrt(3)]
    )
    assert mean_ci95(np.array([0.0, 0.0, 0.1]))[0] == 0.0  # clipped to coverage's range


def test_paired_difference_is_over_the_same_episodes():
    mean, (lo, hi) = paired_difference_ci95(np.array([0.5, 0.6, 0.7]), np.array([0.1, 0.3, 0.2]))
    assert mean == pytest.approx(0.4) and lo == pytest.approx(0.4 - 1.959964 * 0.1 / np.sqrt(3)) and hi > mean
    assert paired_difference_ci95(np.array([0.1, 0.2]), np.array([0.3, 0.5]))[0] == pytest.approx(-0.25)


def test_closed_loop_noop_is_seeded_and_scored(data):
    pytest.importorskip("gym_pusht")
    noop = Policy(PolicySpec("noop", kind="noop"), 8, 2, data.action_normalizer, "relaxed")
    a = closed_loop(noop, data, "pusht", [3, 4], n_action_steps=4, max_steps=12, progress=False)
    b = closed_loop(noop, data, "pusht", [3, 4], n_action_steps=4, max_steps=12, progress=False)
    assert a["episode_coverage"] == b["episode_coverage"] and a["episodes"] == 2
    assert a["mean_steps"] == 12 and a["invalid_per_episode"] == 0
    assert 0 <= a["coverage_ci95"][0] <= a["coverage_mean"] <= a["coverage_ci95"][1] <= 1
    assert set(a) >= {
        "coverage_mean",
        "coverage_ci95",
        "success_rate",
        "success_ci95",
        "step_ms",
        "invalid_per_episode",
    }


# ------------------------------------------------------------------ command line and report
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "mujoco"], "unknown env 'mujoco'; choose from: auto, none, pusht"),
        (["--decode-policy", "guess"], "unknown decode policy 'guess'; choose from: relaxed, zeros, hold"),
        (["--seeds", "0,x"], "--seeds must be comma-separated integers such as 0,1,2, got '0,x'"),
        (["--seeds", "0,1,0"], "--seeds lists seed 0 more than once ('0,1,0'): each seed trains once"),
        (["--tokenizers", ""], "--tokenizers is empty; give tokenizer names or folders"),
        (["--n-action-steps", "20"], "--n-action-steps 20 exceeds --action-horizon 16"),
        (["--engine", "spark"], "unknown engine 'spark'; choose one of: local, ray"),
        (["--skip-training"], "--skip-training needs an existing"),
        (["--root", " "], "--root is empty; give a folder path"),
        (["--first-seed", "-5"], "--first-seed must be >= 0 (the simulator's seeds are non-negative), got -5"),
        (["--env", "none", "--n-obs", "100000"], "--n-obs 100000 must not exceed the longest episode of"),
        (["--env", "none", "--action-horizon", "100000"], "--action-horizon 100000 and --n-obs 2 must not exceed"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main([*argv, "--output-dir", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_closed_loop_needs_the_simulator_state(tmp_path, capsys):
    pusht = Path(actok.__file__).parent / "example_data" / "pusht"
    assert main(["--root", str(pusht), "--env", "pusht", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--env pusht needs a dataset whose observation.state is the simulator's 5-D state" in err
    assert "pusht has [2]" in err


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    (tmp_path / "results.json").write_text("[]")
    assert main(["--output-dir", str(tmp_path), "--quick-test"]) == 2
    assert "results.json already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == "[]"


def _record(label, kind, coverage, tokens):
    return {
        "policy": label, "kind": kind, "head": None, "tokenizer": None, "tokenizer_params": {}, "seed": 0,
        "mean_tokens": tokens, "train_time_sec": 1.0, "learning_curve": [{"epoch": 1, "step": 1, "train_loss": 1.0, "val_loss": 1.2}],
        "open_loop": {"rmse": 5.0, "p95_abs_error": 9.0, "max_abs_error": 20.0, "invalid_decode_fraction": 0.0,
                      "token_accuracy": None, "reconstruction_rmse": None, "inference_ms_per_chunk": 1.0},
        "closed_loop": {"episode_coverage": coverage, "coverage_mean": float(np.mean(coverage)), "invalid_per_episode": 0.0, "step_ms": 0.1},
        "config": {"repo_id": "pusht_state", "train": {"num_epochs": 3}, "quick_test": True},
    }  # fmt: skip


def test_report_section_and_pooled_seeds():
    records = [_record("binning", "tokens", [1.0, 0.5], 32.0), _record("noop", "noop", [0.1, 0.0], 0.0)]
    records.append({**_record("binning", "tokens", [0.0, 0.5], 32.0), "seed": 1})
    records.append(_record("continuous", "continuous", [0.3, 0.2], 0.0))
    section = policy_section(records)
    assert "| binning | 2 | 32.0 | 0.50 [" in section.markdown  # 4 episodes pooled: mean 0.5
    # Paired with continuous only where the episodes match (noop: same seed, 2 episodes; binning: 4 vs 2).
    assert "| noop | 1 | 0.0 |" in section.markdown and "-0.20 [-0.20, -0.20]*" in section.markdown
    assert "QUICK TEST" in section.markdown
    assert set(section.figures) == {
        "report_files/policy_coverage_vs_tokens.png", "report_files/policy_open_loop_error.png",
        "report_files/policy_learning_curves.png",
    }  # fmt: skip
    assert all(png.startswith(b"\x89PNG") for png in section.figures.values())
    assert section.html.count("<img") == 3


@pytest.mark.slow
def test_quick_test_writes_every_output(tmp_path, capsys):
    pytest.importorskip("gym_pusht")
    out = tmp_path / "policy"
    assert main(["--quick-test", "--output-dir", str(out), "--no-progress", "--tokenizers", "binning,fast"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("the numbers only check that the pipeline runs") == 2
    records = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in records] == ["continuous", "noop", "binning", "fast"]
    for r in records:
        assert set(r) >= {
            "policy",
            "tokenizer_params",
            "seed",
            "open_loop",
            "closed_loop",
            "train_time_sec",
            "mean_tokens",
        }
        assert set(r["closed_loop"]) >= {
            "episodes",
            "coverage_mean",
            "coverage_ci95",
            "success_rate",
            "success_ci95",
            "step_ms",
            "invalid_per_episode",
        }
    for name in ("coverage_vs_tokens.png", "open_loop_error.png", "learning_curves.png"):
        assert (out / name).stat().st_size > 1000
    assert main(["--skip-training", "--output-dir", str(out)]) == 0


def _without_timings(value):
    """A record (or list of them) without its wall-clock fields (`*_ms`, `*_ms_per_chunk`, `*_sec`)."""
    if isinstance(value, dict):
        timing = ("_ms", "_ms_per_chunk", "_sec")
        return {k: _without_timings(v) for k, v in value.items() if not k.endswith(timing)}
    return [_without_timings(v) for v in value] if isinstance(value, list) else value


@pytest.mark.slow
def test_quick_test_on_ray_gives_the_local_records(tmp_path, monkeypatch):
    pytest.importorskip("gym_pusht")
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # Ray workers run one thread per task: the same arithmetic here
    argv = ["--quick-test", "--no-progress", "--tokenizers", "binning"]
    assert main([*argv, "--output-dir", str(tmp_path / "local")]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # reused by the run: a 2-CPU instance
    try:
        assert main([*argv, "--engine", "ray", "--output-dir", str(tmp_path / "ray")]) == 0
    finally:
        ray.shutdown()
    local, remote = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
    assert [r["policy"] for r in local] == ["continuous", "noop", "binning"]
    assert _without_timings(remote) == _without_timings(local)  # in the cells' order, whatever finished first


def test_actok_report_renders_a_policy_run_and_warns_on_a_broken_results_file(tmp_path):
    from actok.bench.report import write_report

    records = [_record("binning", "tokens", [1.0, 0.5], 32.0), _record("continuous", "continuous", [0.3, 0.2], 0.0)]
    (tmp_path / "results.json").write_text(json.dumps(records))
    md, page = write_report(tmp_path)
    assert "## Policy benchmark" in md.read_text() and "<h2>Policy benchmark</h2>" in page.read_text()
    assert (tmp_path / "report_files" / "policy_coverage_vs_tokens.png").read_bytes().startswith(b"\x89PNG")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"policy": ')
    with (
        pytest.warns(ActokWarning, match="results.json: not readable JSON"),
        pytest.raises(ActokError, match="no bench"),
    ):
        write_report(broken)


def test_an_empty_output_dir_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--output-dir", "", "--quick-test"]) == 2
    assert "--output-dir is empty; give a folder path" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_bad_flag_is_named_before_existing_results(tmp_path, capsys):
    (tmp_path / "results.json").write_text("[]")
    assert main(["--output-dir", str(tmp_path), "--seeds", "x"]) == 2
    assert "--seeds must be comma-separated integers" in capsys.readouterr().err


def test_a_user_file_named_like_a_figure_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "learning_curves.png").write_text("mine")
    assert main(["--output-dir", str(tmp_path), "--quick-test", "--no-progress"]) == 2
    assert "learning_curves.png already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "learning_curves.png").read_text() == "mine"


def test_a_saved_tokenizer_folder_is_used_when_its_horizon_matches(data, tmp_path):
    from actok.cli import main as actok_main
    from actok.policy.policies import fitted_tokenizer

    for horizon in (8, 10):
        argv = ["train", "--root", str(PUSHT_STATE), "--tokenizer", "binning", "--action-horizon", str(horizon)]
        assert actok_main([*argv, "--output-dir", str(tmp_path / f"h{horizon}")]) == 0
    tokenizer, _ = fitted_tokenizer(PolicySpec("h8", path=str(tmp_path / "h8")), data)
    assert tokenizer.decode(tokenizer.encode(data.action_normalizer.normalize(data.chunks[:3]))).shape == (3, 8, 2)
    with pytest.raises(ActokError, match="trained on chunks of 10 actions but the policy benchmark uses"):
        fitted_tokenizer(PolicySpec("h10", path=str(tmp_path / "h10")), data)


def test_a_saved_tokenizer_folder_that_does_not_fit_stops_the_run_before_training(tmp_path, capsys):
    from actok.cli import main as actok_main

    argv = ["train", "--root", str(PUSHT_STATE), "--tokenizer", "binning", "--action-horizon", "10"]
    assert actok_main([*argv, "--output-dir", str(tmp_path / "h10")]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["--tokenizers", str(tmp_path / "h10"), "--env", "none", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "was trained on chunks of 10 actions but the policy benchmark uses --action-horizon 16" in err
    assert "\n" not in err and not (out / "results.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [("garbage", "not readable JSON"), ("{}", "not a list of actok policy records"), ('[{"policy": 1}]', "not a list")],
)
def test_a_broken_results_file_is_a_one_line_error_for_skip_training_and_report(tmp_path, capsys, content, message):
    from actok.cli import main as actok_main

    (tmp_path / "results.json").write_text(content)
    assert main(["--skip-training", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"results.json: {message}" in err and "\n" not in err
    assert actok_main(["report", str(tmp_path)]) == 2
    assert f"results.json: {message}" in capsys.readouterr().err
