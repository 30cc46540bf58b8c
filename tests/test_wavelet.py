"""Wavelet tokenizer specifics; the shared contract is in test_conformance.py."""

from __future__ import annotations

import numpy as np
import pytest

from actok import create_tokenizer, load_tokenizer
from actok.errors import ActokError


@pytest.mark.parametrize(("wavelet", "level"), [("haar", 3), ("db2", 2), ("db4", 1), ("sym4", 2)])
def test_transform_is_invertible(wavelet, level, g1_chunks):
    tok = create_tokenizer("wavelet", wavelet=wavelet, level=level)
    x = g1_chunks.holdout[:20]
    coeff = tok.transform(x)
    assert coeff.shape == (20, tok.transform.n_coefficients(30) * x.shape[2])
    np.testing.assert_allclose(tok.transform.inverse(coeff, 30, x.shape[2]), x, atol=1e-12)


def test_error_shrinks_with_scale_and_folder_is_actok(pusht_chunks, tmp_path):
    x = pusht_chunks.holdout
    errors = []
    for scale in (5, 20, 80):
        tok = create_tokenizer("wavelet", scale=scale).fit(pusht_chunks.train)
        errors.append(np.sqrt(np.mean((tok.decode(tok.encode(x)) - x) ** 2)))
    assert errors[0] > errors[1] > errors[2]
    tok.save(tmp_path / "w")
    assert not (tmp_path / "w" / "processor_config.json").exists()  # not a Hub FAST processor (DCT only)
    assert load_tokenizer(tmp_path / "w").encode(x) == tok.encode(x)


def test_bad_parameters():
    with pytest.raises(ActokError, match=r"wavelet parameter wavelet must be one of .* got 'db99'"):
        create_tokenizer("wavelet", wavelet="db99")
    with pytest.raises(ActokError, match=r"wavelet parameter level must be an integer in \[1, 16\], got 0"):
        create_tokenizer("wavelet", level=0)
