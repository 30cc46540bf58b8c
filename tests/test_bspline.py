"""B-spline (BEAST) tokenizer specifics; the shared contract is in test_conformance.py."""

from __future__ import annotations

import numpy as np
import pytest

from actok import create_tokenizer
from actok.errors import ActokError
from actok.tokenizers.bspline import clamped_uniform_basis


def test_basis_is_a_partition_of_unity_and_clamped():
    phi = clamped_uniform_basis(30, 8, 4)
    assert phi.shape == (30, 8)
    np.testing.assert_allclose(phi.sum(axis=1), 1.0, atol=1e-12)
    assert phi[0, 0] == pytest.approx(1.0) and phi[-1, -1] == pytest.approx(1.0)  # passes through end points


def test_linear_spline_with_one_point_per_step_is_exact_up_to_quantization(pusht_chunks):
    tok = create_tokenizer("bspline", n_control_points=10, degree=1, n_bins=256).fit(pusht_chunks.train)
    x = pusht_chunks.holdout
    step = (tok.high - tok.low).max() / 255
    err = np.abs(tok.decode(tok.encode(x)) - x)
    inside = ((x >= tok.low[None]) & (x <= tok.high[None])).all(axis=(1, 2))  # held-out chunks inside the bounds
    assert err[inside].max() <= step / 2 + 1e-4  # + the ridge term's shrinkage (lambda 1e-5)


def test_pin_first_keeps_the_start(pusht_chunks):
    x = pusht_chunks.holdout
    free = create_tokenizer("bspline").fit(pusht_chunks.train)
    pinned = create_tokenizer("bspline", pin_first=True).fit(pusht_chunks.train)
    start_free = np.abs(free.decode(free.encode(x))[:, 0] - x[:, 0]).max()
    start_pinned = np.abs(pinned.decode(pinned.encode(x))[:, 0] - x[:, 0]).max()
    assert start_pinned < start_free
    assert start_pinned <= (pinned.high[0] - pinned.low[0]).max() / 255 / 2 + 1e-9


def test_fixed_length_and_bad_parameters(pusht_chunks):
    tok = create_tokenizer("bspline", n_control_points=4).fit(pusht_chunks.train)
    assert {len(s) for s in tok.encode(pusht_chunks.holdout)} == {4 * 2}
    with pytest.raises(ActokError, match="n_control_points >= degree \\+ 1"):
        create_tokenizer("bspline", n_control_points=3, degree=3)
