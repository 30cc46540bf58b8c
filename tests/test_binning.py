import numpy as np

from actok import BinningTokenizer, create_tokenizer


def test_uniform_bins_match_the_formula_and_bound(pusht_chunks):
    tok = BinningTokenizer(n_bins=64).fit(pusht_chunks.train)
    x = pusht_chunks.holdout
    bins = np.array(tok.encode(x)).reshape(x.shape)
    np.testing.assert_array_equal(bins, np.clip(np.floor((x + 1) / 2 * 64), 0, 63))
    assert np.abs(tok.decode(tok.encode(x)) - x).max() <= 1 / 64 + 1e-12


def test_quantile_bins_hold_equal_mass(g1_chunks):
    tok = create_tokenizer("quantile-binning", n_bins=16).fit(g1_chunks.train)
    bins = np.array(tok.encode(g1_chunks.train)).reshape(-1, 26)
    for d in range(14):  # the continuous arm joints
        share = np.bincount(bins[:, d], minlength=16) / len(bins)
        np.testing.assert_allclose(share, 1 / 16, atol=0.01)
    # decoded values are each bin's median, so they lie inside the bin
    decoded = tok.decode(tok.encode(g1_chunks.train[:50]))
    assert (np.array(tok.encode(decoded)) == np.array(tok.encode(g1_chunks.train[:50]))).all()


def test_uniform_binning_decodes_any_shape_without_fitting():
    out, valid = BinningTokenizer(n_bins=4).decode([[0, 3, 1, 2, 3, 0]], horizon=2, action_dim=3, return_valid=True)
    np.testing.assert_allclose(out, [[[-0.75, 0.75, -0.25], [0.25, 0.75, -0.75]]])
    assert valid.all()
