"""The toy case study: data, model (KV-cache decoding), marginal information, CLI and the quick-test outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from actok.casestudy.analysis import marginal_information
from actok.casestudy.data import conditioning_points, sample_splines, train_test_split
from actok.cli import main as cli_main

torch = pytest.importorskip("torch")

from actok.casestudy.model import ConditionedGPT, ModelConfig  # noqa: E402

OUTPUTS = [
    "results.json",
    "marginal_information.json",
    "performance_vs_sampling_rate.png",
    "marginal_information_analysis.png",
    "figure3_replica.png",
]


def test_splines_pass_through_their_points_and_are_seeded():
    cond = conditioning_points(8, seed=3)
    assert cond.shape == (8, 4, 2)
    np.testing.assert_array_equal(cond, conditioning_points(8, seed=3))
    assert np.all(np.diff(cond[:, :, 0], axis=1) > 0.1)  # times increase and stay apart
    splines = sample_splines(cond, 31)
    assert splines.values.shape == (8, 31)
    # t = 0 and t = 1 are sampled exactly; the spline interpolates its conditioning points there.
    np.testing.assert_allclose(splines.values[:, 0], cond[:, 0, 1], atol=1e-6)
    np.testing.assert_allclose(splines.values[:, -1], cond[:, -1, 1], atol=1e-6)
    train, test = train_test_split(100, 0.2, seed=0)
    assert len(test) == 20 and not set(train) & set(test) and len(train) + len(test) == 100


def test_marginal_information_by_hand():
    # differences: [0, 0, 1] and [2] -> values {0: 2, 1: 1, 2: 1} -> entropy 1.5 bits, zero share 0.5
    info = marginal_information([[5, 5, 5, 6], [1, 3]])
    assert info["diff_entropy_bits"] == pytest.approx(1.5)
    assert info["zero_diff_share"] == pytest.approx(0.5)
    assert info["mean_tokens"] == pytest.approx(3.0)


def test_kv_cache_greedy_decoding_matches_full_forward():
    torch.manual_seed(0)
    model = ConditionedGPT(ModelConfig(vocab_size=12, block_size=4 + 9 + 1)).eval()
    cond = torch.randn(3, 4, 2)
    cached = model.generate(cond, max_tokens=9)
    # Reference: re-run the whole prefix for every new token, no cache.
    tokens = torch.empty(3, 0, dtype=torch.long)
    for _ in range(10):
        with torch.no_grad():
            nxt = model(cond, tokens)[:, -1].argmax(-1)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    for row, got in zip(tokens.tolist(), cached, strict=True):
        expected = row[: row.index(model.eos_id)] if model.eos_id in row else row
        assert got == expected[:9]


def test_bad_input_is_one_line(tmp_path, capsys):
    assert cli_main(["casestudy", "--tokenizers", "nope", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown tokenizer nope" in err and "naive" in err
    assert cli_main(["casestudy", "--skip-training", "--results-dir", str(tmp_path / "none")]) == 2
    assert "--skip-training needs an existing" in capsys.readouterr().err
    assert (
        cli_main(["casestudy", "--device", "cuda:7", "--results-dir", str(tmp_path)]) == 2 or torch.cuda.is_available()
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_quick_test_writes_every_output_and_redraws(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli_main(["casestudy", "--quick-test", "--results-dir", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.count("QUICK TEST: 150 splines and 10 epochs only check that the pipeline runs") == 2
    records = json.loads((out / "results.json").read_text())
    assert {(r["tokenizer"], r["sampling_rate"]) for r in records} == {
        (t, h) for t in ("naive", "fast") for h in (25, 100)
    }
    for r in records:
        assert {"mse", "mse_std", "invalid_fraction", "mean_tokens", "train_time_sec"} <= set(r)
        assert np.isfinite(r["mse"]) and 0.0 <= r["invalid_fraction"] <= 1.0
        assert r["optimization_steps"] == records[0]["optimization_steps"]  # same steps at every H and tokenizer
        assert r["num_parameters"] > 0
    naive = {r["sampling_rate"]: r for r in records if r["tokenizer"] == "naive"}
    assert naive[25]["mean_tokens"] == 25 and naive[100]["mean_tokens"] == 100
    for name in [*OUTPUTS, "predictions_H25.png", "predictions_H100.png"]:
        assert (out / name).stat().st_size > 0, name
    # An existing study is never overwritten by accident; --skip-training redraws from results.json alone.
    assert cli_main(["casestudy", "--quick-test", "--results-dir", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    (out / "figure3_replica.png").unlink()
    assert cli_main(["casestudy", "--skip-training", "--results-dir", str(out)]) == 0
    assert (out / "figure3_replica.png").is_file()
    assert json.loads((out / "results.json").read_text()) == records
