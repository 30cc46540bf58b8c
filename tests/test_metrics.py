"""Benchmark metrics computed by hand on tiny inputs."""

from __future__ import annotations

import numpy as np
import pytest

from actok.bench.metrics import corrupt_tokens, token_statistics


def test_token_statistics_by_hand():
    # tokens 0,0,1,1 -> entropy 1 bit; pairs (0,0) (0,1) (1,1): H(pair) = log2 3, H(prev) of [0,0,1] = 0.918
    stats = token_statistics([[0, 0, 1, 1]], vocab_size=4)
    assert stats["token_entropy_bits"] == pytest.approx(1.0)
    assert stats["entropy_coded_bits_per_chunk"] == pytest.approx(4.0)
    h_prev = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))
    assert stats["conditional_entropy_bits"] == pytest.approx(np.log2(3) - h_prev)
    assert stats["vocab_utilization"] == 0.5 and stats["unused_token_count"] == 2
    assert stats["least_used_tokens"] == [[0, 2], [1, 2]]


def test_deterministic_sequence_has_zero_conditional_entropy():
    stats = token_statistics([[3, 1, 2], [3, 1, 2]], vocab_size=8)
    assert stats["conditional_entropy_bits"] == pytest.approx(0.0)
    assert stats["token_entropy_bits"] == pytest.approx(np.log2(3))


def test_corrupt_tokens_rate_and_range():
    ids = [[0] * 1000 for _ in range(20)]
    noisy = corrupt_tokens(ids, 0.05, vocab_size=256, seed=1)
    flat = np.array(noisy)
    changed = np.mean(flat != 0)
    assert 0.04 < changed < 0.06 and flat.min() >= 0 and flat.max() < 256
    assert corrupt_tokens(ids, 0.05, 256, seed=1) == noisy  # seeded
