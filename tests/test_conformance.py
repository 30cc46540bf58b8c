"""The contract every registered tokenizer must meet (one suite, parametrized over the registry)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from actok import available_tokenizers, create_tokenizer, load_tokenizer
from actok.errors import ActokError, ActokWarning
from actok.tokenizers import tokenizer_extra
from actok.tokenizers.base import InvalidTokensError

# Round-trip RMSE bound on held-out pusht chunks (normalized units), per tokenizer with its default parameters
# (learned tokenizers: a short training run, FIT_PARAMS, to keep the suite fast).
RMSE_BOUND = {
    "binning": 1 / 256,
    "fast": 0.05,
    "quantile-binning": 0.005,
    "bspline": 0.015,
    "wavelet": 0.05,
    "klt": 0.05,
    "vqvae": 0.2,
    "rvq": 0.15,
    "fsq": 0.2,
}
FIT_PARAMS = {name: {"max_epochs": 25, "progress": False} for name in ("vqvae", "rvq", "fsq")}
# Matrix products (float32 for the learned tokenizers, float64 for klt's basis) may round differently with the
# batch size.
DECODE_ATOL = {**{name: 1e-5 for name in FIT_PARAMS}, "klt": 1e-12}


@pytest.fixture(scope="module", params=available_tokenizers())
def fitted(request, pusht_chunks):
    name = request.param
    if name not in RMSE_BOUND:
        pytest.fail(f"tokenizer {name!r} has no RMSE bound in the conformance suite: add one")
    if tokenizer_extra(name):
        pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)  # a short training run stops at max_epochs
        return name, create_tokenizer(name, **FIT_PARAMS.get(name, {})).fit(pusht_chunks.train)


def test_round_trip_error_bound(fitted, pusht_chunks):
    name, tok = fitted
    x = pusht_chunks.holdout
    decoded, valid = tok.decode(tok.encode(x), return_valid=True)
    assert valid.all()
    assert np.sqrt(np.mean((decoded - x) ** 2)) <= RMSE_BOUND[name]


def test_shapes_dtypes_and_vocab(fitted, pusht_chunks):
    _, tok = fitted
    x = pusht_chunks.holdout[:17]
    ids = tok.encode(x)
    assert isinstance(ids, list) and len(ids) == 17 and all(isinstance(s, list) for s in ids)
    assert all(isinstance(t, int) and 0 <= t < tok.vocab_size for s in ids for t in s)
    out = tok.decode(ids)
    assert out.shape == x.shape and out.dtype == np.float64
    out, valid = tok.decode(ids, return_valid=True)
    assert valid.shape == (17,) and valid.dtype == bool


def test_save_load_gives_identical_ids(fitted, pusht_chunks, tmp_path):
    _, tok = fitted
    tok.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok) and loaded.get_params() == tok.get_params()
    x = pusht_chunks.holdout
    assert loaded.encode(x) == tok.encode(x)
    np.testing.assert_array_equal(loaded.decode(tok.encode(x)), tok.decode(tok.encode(x)))


def test_batch_encode_equals_one_by_one(fitted, pusht_chunks):
    name, tok = fitted
    x = pusht_chunks.holdout[:40]
    batch = tok.encode(x)
    assert batch == [tok.encode(x[i : i + 1])[0] for i in range(len(x))]
    single = np.concatenate([tok.decode([s]) for s in batch])
    np.testing.assert_allclose(tok.decode(batch), single, rtol=0, atol=DECODE_ATOL.get(name, 0.0))


def test_malformed_ids_do_not_raise(fitted, pusht_chunks):
    _, tok = fitted
    good = tok.encode(pusht_chunks.holdout[:1])[0]
    malformed = [[], [-1], [tok.vocab_size + 5] * 3, good[:-1], [*good, good[0]], [10**12], good]
    for policy in ("zeros", "relaxed"):
        out, valid = tok.decode(malformed, return_valid=True, on_invalid=policy)
        assert out.shape == (len(malformed), *pusht_chunks.holdout.shape[1:])
        assert np.isfinite(out).all()
        assert not valid[:6].any() and valid[6]
    zeros = tok.decode(malformed, on_invalid="zeros")
    assert not zeros[:6].any()
    with pytest.raises(InvalidTokensError):
        tok.decode(malformed, on_invalid="raise")
    with pytest.raises(ActokError, match="valid: zeros, relaxed, raise"):
        tok.decode(malformed, on_invalid="ignore")


def test_wrong_shape_is_refused(fitted, pusht_chunks):
    _, tok = fitted
    with pytest.raises(ActokError, match=r"fitted on chunks of shape \[H=10, D=2\]"):
        tok.encode(np.zeros((1, 5, 2)))
    with pytest.raises(ActokError, match=r"\[N, H, D\]"):
        tok.encode(np.zeros((10, 2)))


def test_empty_batches(fitted, pusht_chunks):
    _, tok = fitted
    empty = pusht_chunks.holdout[:0]
    assert tok.encode(empty) == []
    out, valid = tok.decode([], return_valid=True)
    assert out.shape == (0, *pusht_chunks.holdout.shape[1:]) and valid.shape == (0,)
