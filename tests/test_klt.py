"""Our rate-distortion tokenizer (`klt`); the shared contract is in test_conformance.py."""

from __future__ import annotations

import numpy as np
import pytest

from actok import create_tokenizer
from actok.errors import ActokError
from actok.tokenizers.klt import BASE


def test_basis_is_orthonormal_and_ordered(pusht_chunks):
    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    np.testing.assert_allclose(tok.basis.T @ tok.basis, np.eye(20), atol=1e-10)
    coeff = (pusht_chunks.train.reshape(len(pusht_chunks.train), -1) - tok.mean) @ tok.basis
    assert np.all(np.diff(coeff.var(axis=0)) <= 1e-12)  # decreasing variance: trailing zeros come last


def test_rounding_error_bound(pusht_chunks):
    # deadzone 0.5 is plain rounding: every coefficient is off by at most half a step, and the transform is
    # orthonormal, so the chunk RMSE is at most 0.5 / scale.
    tok = create_tokenizer("klt", scale=10.0, deadzone=0.5).fit(pusht_chunks.train)
    x = pusht_chunks.train[:300]
    assert np.sqrt(np.mean((tok.dequantize(tok.quantize(x)) - x) ** 2)) <= 0.05 + 1e-12


def test_end_of_block_and_strict_validity(pusht_chunks):
    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    x = pusht_chunks.holdout[:50]
    eob = chr(BASE + tok.high - tok.low + 1)
    strings = tok._strings(tok.quantize(x))
    assert all(s.endswith(eob) and s.count(eob) == 1 and len(s) <= 21 for s in strings)
    assert np.mean([len(s) for s in strings]) < 20  # trailing zeros are not spelled out
    ids = tok.encode(x)
    eob_id = tok.bpe.token_to_id(eob)
    # An end-of-block in the middle (a model's early stop followed by more tokens) is invalid.
    broken = [[eob_id, *ids[0]]]
    _, valid = tok.decode(broken, return_valid=True)
    assert not valid[0]
    out, valid = tok.decode(broken, return_valid=True, on_invalid="relaxed")
    assert not valid[0] and np.isfinite(out).all()


def test_deadzone_trades_error_for_tokens(pusht_chunks):
    x = pusht_chunks.holdout
    rows = []
    for dz in (0.5, 0.8):
        tok = create_tokenizer("klt", scale=10.0, deadzone=dz).fit(pusht_chunks.train)
        ids = tok.encode(x)
        rows.append((np.sqrt(np.mean((tok.decode(ids) - x) ** 2)), np.mean([len(s) for s in ids])))
    assert rows[1][0] > rows[0][0] and rows[1][1] < rows[0][1]


def test_fewer_tokens_than_fast_at_equal_error(pusht_chunks):
    x = pusht_chunks.holdout

    def point(name, scale):
        tok = create_tokenizer(name, scale=scale).fit(pusht_chunks.train)
        ids = tok.encode(x)
        return np.sqrt(np.mean((tok.decode(ids) - x) ** 2)), np.mean([len(s) for s in ids])

    fast_rmse, fast_tokens = point("fast", 10.0)
    klt_rmse, klt_tokens = point("klt", 11.0)
    assert klt_rmse <= fast_rmse * 1.05 and klt_tokens <= 0.8 * fast_tokens


def test_bad_parameters_and_too_small_vocab(pusht_chunks):
    with pytest.raises(ActokError, match=r"klt parameter deadzone must be a finite number in \[0\.5, 1\.5\), got 0\.2"):
        create_tokenizer("klt", deadzone=0.2)
    with pytest.raises(ActokError, match="vocab_size 8 is smaller than the coefficient range"):
        create_tokenizer("klt", vocab_size=8).fit(pusht_chunks.train)


def test_shrinkage_endpoints(pusht_chunks):
    from actok.tokenizers.klt import separable_basis, shrunk_klt_basis

    x = pusht_chunks.train.reshape(len(pusht_chunks.train), -1)
    centered = x - x.mean(axis=0)
    prior = separable_basis(centered, 10, 2)
    np.testing.assert_allclose(prior.T @ prior, np.eye(20), atol=1e-10)
    full = shrunk_klt_basis(centered, 10, 2, 1.0)
    # shrinkage 1: the basis diagonalizes the prior's variances, i.e. spans the same directions as the prior
    np.testing.assert_allclose(np.abs(full.T @ prior).max(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ActokError, match=r"shrinkage must be a finite number in \[0, 1\] or 'auto', got 2"):
        create_tokenizer("klt", shrinkage=2)


def test_decode_refuses_a_shape_other_than_the_fitted_one(pusht_chunks):
    """klt's basis (like a learned network) is tied to the fitted [H, D]; binning decodes any shape."""
    from actok import create_tokenizer
    from actok.errors import ActokError

    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    ids = tok.encode(pusht_chunks.holdout[:3])
    with pytest.raises(ActokError, match=r"klt decodes chunks of shape \[H=10, D=2\] only, got \[H=11, D=2\]"):
        tok.decode(ids, horizon=11)
    binning = create_tokenizer("binning").fit(pusht_chunks.train)
    assert binning.decode([[0] * 22], horizon=11).shape == (1, 11, 2)
