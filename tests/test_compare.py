"""A tokenizer against FAST at equal held-out RMSE (actok.bench.compare, behind docs/zoo.md's klt claims)."""

from __future__ import annotations

import numpy as np

from actok.bench.compare import RMSE_TOLERANCE, Case, compare_case


def test_klt_against_fast_on_pusht(pusht_chunks):
    row = compare_case(Case("pusht_h10", pusht_chunks.train, pusht_chunks.holdout))
    fast, klt = row["fast"], row["klt"]
    assert abs(klt["rmse"] / fast["rmse"] - 1) <= RMSE_TOLERANCE  # equal error...
    assert klt["tokens"] < 0.8 * fast["tokens"] and row["token_reduction"] > 0.2  # ...fewer tokens
    assert klt["random_sequences_valid_fraction"] == 1.0 == klt["random_sequences_in_training_range_fraction"]
    assert fast["random_sequences_valid_fraction"] < 0.1
    assert np.all(np.diff(klt["prefix_rmse"]) < 0) and klt["prefix_rmse"][-1] == klt["rmse"]
    assert klt["noise_5pct_rmse_increase"] < fast["noise_5pct_rmse_increase"]
    assert 0 <= klt["klt_bound_gap_tokens"] < fast["klt_bound_gap_tokens"]
    assert klt["encode_us_per_chunk"] > 0 and klt["fitted_transform"] == ["klt", 0.0]
