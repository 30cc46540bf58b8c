"""The rate-distortion bounds the report draws (actok.bench.bounds)."""

from __future__ import annotations

import numpy as np

from actok.bench import bounds
from actok.bench.bounds import bound_gaps, bound_variances, gaussian_rate_bits, klt_coefficient_variances
from actok.bench.metrics import dct_coefficient_variances


def test_gaussian_rate_closed_form():
    # m equal components of variance v at distortion r^2 < v each: m/2 log2(v / r^2) bits; at or above the
    # components' RMS, no bits.
    bits = gaussian_rate_bits(np.full(8, 0.25), np.array([0.05, 0.1, 0.5, 1.0]))
    np.testing.assert_allclose(bits, [4 * np.log2(0.25 / 0.0025), 4 * np.log2(0.25 / 0.01), 0.0, 0.0], atol=1e-9)
    # water-filling: a component below the water level costs nothing and keeps its own distortion
    bits = gaussian_rate_bits(np.array([1.0, 1e-6]), np.sqrt((0.01 + 1e-6) / 2))
    np.testing.assert_allclose(bits, [0.5 * np.log2(1.0 / 0.01)], rtol=1e-9)


def test_klt_bound_is_below_the_dct_bound(pusht_chunks):
    x = pusht_chunks.train
    klt, dct = klt_coefficient_variances(x), dct_coefficient_variances(x)
    assert klt.shape == (20,) and np.all(np.diff(klt) <= 1e-12)
    np.testing.assert_allclose(klt.sum(), dct.sum(), rtol=1e-9)  # same total variance, other basis
    rmse = np.geomspace(0.001, 0.2, 12)
    assert np.all(gaussian_rate_bits(klt, rmse) <= gaussian_rate_bits(dct, rmse) + 1e-9)
    assert gaussian_rate_bits(klt, 0.01)[0] < gaussian_rate_bits(dct, 0.01)[0] - 1  # the dims are correlated


def test_bound_gaps_in_bits_and_tokens(pusht_chunks):
    variances = bound_variances(pusht_chunks.train)
    assert variances["klt"].shape == variances["dct"].shape == (20,)
    gaps = bound_gaps(variances, rmse=0.02, bits_per_chunk=40.0, vocab_size=1024)
    assert gaps["klt_bound_bits"] < gaps["dct_bound_bits"]
    assert gaps["klt_bound_gap_bits"] == 40.0 - gaps["klt_bound_bits"]
    np.testing.assert_allclose(gaps["klt_bound_gap_tokens"], gaps["klt_bound_gap_bits"] / 10)


def test_klt_variances_accumulated_block_by_block_are_the_covariance_eigenvalues(pusht_chunks, monkeypatch):
    x = pusht_chunks.train.astype(np.float32)  # blocks are copied as float64
    flat = x.reshape(len(x), -1).astype(np.float64)
    direct = np.linalg.eigvalsh(np.cov(flat, rowvar=False, bias=True))[::-1]
    monkeypatch.setattr(bounds, "COVARIANCE_BLOCK", 7)  # many blocks, the last one partial
    assert len(x) % 7
    np.testing.assert_allclose(klt_coefficient_variances(x), np.maximum(direct, 0), rtol=1e-9, atol=1e-12)
