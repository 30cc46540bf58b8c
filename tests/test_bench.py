"""`actok.bench.run`: the harness `actok bench` is, as a Python user calls it (cells, executors, result files)."""

from __future__ import annotations

import json
import pickle
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from actok import bench, create_tokenizer
from actok.bench import benchmark_tokenizer
from actok.bench.report import load_results
from actok.bench.sweep import json_value, parse_tokenizers, split_values
from actok.cli import main
from actok.data import ChunkConfig
from actok.errors import ActokError

BUNDLED = Path(str(resources.files("actok") / "example_data" / "pusht"))
SETTINGS = bench.BenchSettings(ChunkConfig(action_horizon=10, sample_fraction=0.2), max_chunks=100)


def _without_times(result: bench.BenchResult) -> dict:
    data = result.to_json()
    data["metrics"] = {k: v for k, v in data["metrics"].items() if not k.endswith("time_sec")}
    data["config"] = {k: v for k, v in data["config"].items() if k != "output_dir"}
    return data


@pytest.mark.slow
def test_run_writes_the_files_the_report_reads(tmp_path):
    out = tmp_path / "results"
    run = bench.run([BUNDLED], ["binning", bench.TokenizerSpec("fast", {"scale": 5.0}, "fast5")], SETTINGS, out)
    assert [r.tokenizer for r in run.results] == ["binning", "fast"] and run.skipped == []
    files = sorted(out.glob("*.json"))
    assert [f.name.split("_", 2)[2] for f in files] == [
        "pusht_binning_action_tokenizer_results.json",
        "pusht_fast5_action_tokenizer_results.json",
    ]
    data = json.loads(files[1].read_text())
    assert data["schema_version"] == bench.SCHEMA_VERSION and data["config"]["output_dir"] == str(out)
    assert data["config"]["tokenizer_params"]["scale"] == 5.0 and data["metrics"]["num_chunks_evaluated"] == 100
    assert {r.path for r in load_results(out)} == set(files) == {r.path for r in run.results}


def test_python_and_cli_results_are_the_same(tmp_path, capsys):
    args = ["bench", "--root", BUNDLED, "--tokenizer", "binning,bspline", "--max-chunks-for-reconstruction", "100"]
    assert main([str(a) for a in [*args, "--output-dir", tmp_path / "cli"]]) == 0
    cli = sorted(load_results(tmp_path / "cli"), key=lambda r: r.tokenizer)
    config = ChunkConfig(encoded_dims="0:6", clip_encoded_dims=True, sample_fraction=0.2)  # bench's defaults
    python = bench.run([BUNDLED], ["binning", "bspline"], bench.BenchSettings(config, 100), tmp_path / "py").results
    assert [_without_times(r) for r in cli] == [_without_times(r) for r in python]


def test_cells_and_outcomes_are_picklable():
    """What a Ray worker receives and sends back."""
    cells = bench.plan([BUNDLED], ["binning", "quantile-binning"], SETTINGS)
    assert pickle.loads(pickle.dumps(cells)) == cells
    outcome = bench.run_cell(cells[0])
    assert _without_times(pickle.loads(pickle.dumps(outcome)).result) == _without_times(outcome.result)


@pytest.mark.slow  # starts Ray (~15 s); test_executor covers the engine in the fast set
def test_ray_engine_gives_the_local_metrics(tmp_path, capsys):
    """`actok bench --engine ray` on a local 2-CPU Ray instance: the same result files as local, timings apart."""
    pytest.importorskip("ray", reason="the dev extra installs ray")
    from actok.executor import ray_session

    args = ["bench", "--root", str(BUNDLED), "--tokenizer", "binning,bspline", "--max-chunks-for-reconstruction", "50"]
    assert main([*args, "--output-dir", str(tmp_path / "local")]) == 0
    with ray_session(num_cpus=2):
        assert main([*args, "--engine", "ray", "--output-dir", str(tmp_path / "ray")]) == 0
    local, remote = (sorted(load_results(tmp_path / d), key=lambda r: r.tokenizer) for d in ("local", "ray"))
    assert [r.tokenizer for r in remote] == ["binning", "bspline"]
    assert [_without_times(r) for r in remote] == [_without_times(r) for r in local]


def test_outcomes_are_handed_on_in_plan_order_whatever_order_cells_finish(tmp_path, monkeypatch):
    """Ray finishes cells in any order: each file is written as its cell finishes, the outcomes come in plan order."""
    from actok.bench import harness

    def last_first(fn, items, **_):
        yield from reversed([(i, fn(item)) for i, item in enumerate(items)])

    monkeypatch.setattr(harness, "run_grid", last_first)
    seen = []
    run = bench.run([BUNDLED], ["binning", "quantile-binning", "bspline"], SETTINGS, tmp_path, on_outcome=seen.append)
    assert [o.cell.tokenizer.label for o in seen] == ["binning", "quantile-binning", "bspline"]
    assert [r.tokenizer for r in run.results] == ["binning", "quantile-binning", "bspline"]
    assert len(list(tmp_path.glob("*.json"))) == 3


@pytest.mark.parametrize(
    ("device", "resources"),
    [
        (None, {"num_cpus": 1}),
        ("cpu", {"num_cpus": 1}),
        ("auto", {"num_cpus": 1}),
        ("cuda:1", {"num_cpus": 1, "num_gpus": 1}),
    ],
)
def test_a_cell_asks_ray_for_a_gpu_when_its_device_names_cuda(device, resources):
    params = {} if device is None else {"device": device}
    cell = bench.Cell(bench.DatasetSpec.bundled(), bench.TokenizerSpec("vqvae", params), SETTINGS)
    assert cell.resources() == resources


def test_engine_flags_are_checked_before_any_work(tmp_path, capsys):
    code = main(["bench", "--engine", "spark", "--output-dir", str(tmp_path / "out")])
    assert code == 2 and "unknown engine 'spark'; choose one of: local, ray" in capsys.readouterr().err
    assert main(["bench", "--ray-address", "auto", "--output-dir", str(tmp_path / "out")]) == 2
    assert "--ray-address only applies with --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_cell_that_cannot_be_fitted_is_skipped_unless_it_is_the_only_one(tmp_path):
    fine = bench.TokenizerSpec("fast", {"scale": 5.0}, "fast5")
    coarse = bench.TokenizerSpec("fast", {"scale": 100000.0}, "fast-huge")
    run = bench.run([BUNDLED], [fine, coarse], SETTINGS, tmp_path)
    assert [r.tokenizer_params["scale"] for r in run.results] == [5.0]
    assert len(run.skipped) == 1 and run.skipped[0].startswith("pusht fast-huge: vocab_size 1024 is smaller")
    assert len(list(tmp_path.glob("*.json"))) == 1
    with pytest.raises(ActokError, match="vocab_size 1024 is smaller"):
        bench.run([BUNDLED], [coarse], SETTINGS)
    coarser = bench.TokenizerSpec("fast", {"scale": 200000.0}, "fast-huger")
    with pytest.raises(ActokError, match=r"^every cell was skipped: pusht fast-huge: vocab_size 1024 is smaller"):
        bench.run([BUNDLED], [coarse, coarser], SETTINGS)


@pytest.mark.parametrize(
    ("tokenizers", "settings", "message"),
    [
        ([], SETTINGS, "no tokenizer to benchmark"),
        (["binning", "binning"], SETTINGS, "the same cell is requested twice (binning)"),
        (["binning"], bench.BenchSettings(ChunkConfig(sample_fraction=0.0)), "sample_fraction must be in (0, 1]"),
        (["binning"], bench.BenchSettings(max_chunks=0), "max_chunks_for_reconstruction must be >= 1, got 0"),
    ],
)
def test_plan_refuses_bad_requests_before_any_work(tokenizers, settings, message):
    with pytest.raises(ActokError) as caught:
        bench.plan([BUNDLED], tokenizers, settings)
    assert message in str(caught.value)


def test_plan_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(ActokError, match="expected the file"):
        bench.plan([tmp_path], ["binning"], SETTINGS)


def test_a_saved_tokenizer_is_scored_in_its_own_normalization(tmp_path, capsys):
    tok = tmp_path / "tok"
    assert main(["train", "--root", str(BUNDLED), "--tokenizer", "binning", "--output-dir", str(tok)]) == 0
    other = ChunkConfig(action_horizon=10, sample_fraction=0.2, normalization_mode="MIN_MAX")
    with pytest.raises(ActokError, match="normalization_mode: tokenizer has QUANTILES, requested MIN_MAX"):
        bench.run([BUNDLED], [bench.TokenizerSpec.saved(tok)], bench.BenchSettings(other))
    (result,) = bench.run([BUNDLED], [bench.TokenizerSpec.saved(tok)], bench.BenchSettings(other, force=True)).results
    # the config says what was used: the saved QUANTILES stats, from the folder's pipeline.json
    assert result.config["normalization_mode"] == "QUANTILES" == result.config["normalization"]["mode"]
    assert result.config["normalization_stats_source"]["q01"] == str(tok / "pipeline.json")
    assert result.config["action_tokenizer_path"] == str(tok)


def test_bench_adopts_the_saved_pipeline(tmp_path, capsys):
    tok = tmp_path / "tok"
    train = ["train", "--root", str(BUNDLED), "--tokenizer", "binning", "--delta-dims", "0,1", "--action-horizon", "6"]
    assert main([*train, "--output-dir", str(tok)]) == 0
    bench_args = ["bench", "--root", str(BUNDLED), "--action-tokenizer-path", str(tok)]
    assert main([*bench_args, "--output-dir", str(tmp_path / "r")]) == 0
    (result,) = load_results(tmp_path / "r")
    assert (result.config["action_horizon"], result.config["delta_dims"], result.config["state_key"]) == (
        6,
        "0,1",
        "observation.state",
    )
    capsys.readouterr()
    assert main([*bench_args, "--delta-dims", "0", "--output-dir", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "delta_dims: tokenizer has '0,1', requested '0'" in err and err.count("\n") == 1


def test_the_sweep_grammar():
    specs = parse_tokenizers("binning", ["fast:scale=2,5;vocab_size=512"], {"vocab_size": 256}, ["n_bins=64"])
    assert [(t.label, dict(t.params)) for t in specs] == [
        ("binning", {"n_bins": 64}),
        ("fast-scale2-vocab_size512", {"vocab_size": 512, "scale": 2}),
        ("fast-scale5-vocab_size512", {"vocab_size": 512, "scale": 5}),
    ]
    assert [t.label for t in parse_tokenizers(None, ["bspline:degree=2,3"])] == ["bspline-degree2", "bspline-degree3"]
    assert split_values("2, 5,[8,5,5] ,(1,2)") == ["2", "5", "[8,5,5]", "(1,2)"]
    assert json_value("cpu") == "cpu" and json_value("[8,5]") == [8, 5]
    with pytest.raises(ActokError, match="is not valid JSON"):
        json_value("[8,5")
    with pytest.raises(ActokError, match="not both"):
        parse_tokenizers("binning", saved="some/folder")


@pytest.mark.slow
def test_a_result_holds_the_prefix_curve_and_the_gaps_to_both_bounds(pusht_chunks):
    """Every result: the DCT and KLT bounds' variances and the gaps to them; a tokenizer whose every id sequence
    decodes also its prefix curve (FAST's cut sequences are invalid: it has none)."""
    results = {}
    for name in ("klt", "fast"):
        tok = create_tokenizer(name).fit(pusht_chunks.train)
        results[name] = benchmark_tokenizer(tok, pusht_chunks, max_chunks=200, timing_repeats=1)
    klt, fast = results["klt"], results["fast"]
    assert klt["prefix_token_fractions"] == [0.25, 0.5, 0.75, 1.0]
    assert np.all(np.diff(klt["prefix_rmse"]) < 0)  # more tokens, a finer chunk
    assert klt["prefix_rmse"][-1] == pytest.approx(klt["reconstruction_rmse"])
    assert "prefix_rmse" not in fast and "prefix_token_fractions" not in fast
    for m in (klt, fast):
        assert len(m["train_klt_coefficient_variances"]) == len(m["train_dct_coefficient_variances"]) == 20
        assert m["klt_bound_bits"] < m["dct_bound_bits"]  # pusht's two dims are correlated
        assert m["klt_bound_gap_bits"] == pytest.approx(m["bits_per_chunk"] - m["klt_bound_bits"])
        assert m["klt_bound_gap_tokens"] == pytest.approx(m["klt_bound_gap_bits"] / np.log2(m["vocab_size"]))
