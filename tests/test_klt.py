"""Our rate-distortion tokenizer (`klt`); the shared contract is in test_conformance.py."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from actok import create_tokenizer
from actok.errors import ActokError
from actok.tokenizers.klt import BASE


def test_basis_is_orthonormal_and_ordered(pusht_chunks):
    tok = create_tokenizer("klt", transform="klt").fit(pusht_chunks.train)
    k = tok.basis.shape[1]
    assert tok.basis.shape[0] == 20 and 1 <= k <= 20
    np.testing.assert_allclose(tok.basis.T @ tok.basis, np.eye(k), atol=1e-10)
    coeff = (pusht_chunks.train.reshape(len(pusht_chunks.train), -1) - tok.mean) @ tok.basis
    assert np.all(np.diff(coeff.var(axis=0)) <= 1e-12)  # decreasing variance: trailing zeros come last


def test_rounding_error_bound(pusht_chunks):
    # deadzone 0.5 is plain rounding: every coefficient is off by at most half a step, and the transform is
    # orthonormal, so the chunk RMSE is at most 0.5 / scale.
    tok = create_tokenizer("klt", scale=10.0, deadzone=0.5).fit(pusht_chunks.train)
    x = pusht_chunks.train[:300]
    assert np.sqrt(np.mean((tok.dequantize(tok.quantize(x)) - x) ** 2)) <= 0.05 + 1e-12


def test_implicit_end_of_block(pusht_chunks):
    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    strings = tok._strings(tok.quantize(pusht_chunks.holdout[:50]))
    zero = chr(BASE + tok.half_width)
    assert all(len(s) <= 40 and not s.endswith(zero) for s in strings)  # trailing zeros are not spelled out
    assert np.mean([len(s) for s in strings]) < 20


def test_carry_layout_spells_large_values_with_few_symbols():
    from actok.tokenizers.klt import carry_layout, read_symbols, spell

    rng = np.random.default_rng(0)
    q = np.round(rng.laplace(size=(500, 200)) * np.r_[300.0, np.full(199, 3.0)]).astype(np.int64)  # one large leader
    half, carries = carry_layout(q)
    assert 2 * half + 1 + 2 * carries < (2 * np.abs(q).max() + 1) / 5  # far fewer symbols than values
    strings = spell(q, half, carries)
    symbols = np.array([ord(c) - BASE for c in "".join(strings)], dtype=np.int64)
    rows = np.repeat(np.arange(len(q)), [len(s) for s in strings])
    back = read_symbols(symbols, rows, len(q), 200, half, carries)
    np.testing.assert_array_equal(back, q[:, : back.shape[1]])
    assert not q[:, back.shape[1] :].any()
    # any symbol string parses: carries add up, a final carry is ignored, values past m are dropped
    modulus = 2 * half + 1
    plus_one, minus_one = modulus + carries, modulus + carries - 1  # carries +1 and -1
    stream = np.array([plus_one, plus_one, half + 1, minus_one, half, plus_one, half - 1, half, plus_one])
    got = read_symbols(stream, np.zeros(len(stream), dtype=np.int64), 1, 3, half, carries)
    np.testing.assert_array_equal(got, [[2 * modulus + 1, -modulus, modulus - 1]])


def test_every_in_vocabulary_sequence_decodes_within_the_training_range(pusht_chunks):
    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    rng = np.random.default_rng(0)
    ids = [rng.integers(0, tok.vocab_size, rng.integers(0, 40)).tolist() for _ in range(300)]
    out, valid = tok.decode(ids, return_valid=True)
    assert valid.all() and np.isfinite(out).all()
    low, high = pusht_chunks.train.min(axis=(0, 1)), pusht_chunks.train.max(axis=(0, 1))
    assert (out >= low).all() and (out <= high).all()
    # Only ids outside the vocabulary are invalid; "relaxed" skips them.
    good = tok.encode(pusht_chunks.holdout[:1])[0]
    out, valid = tok.decode([[*good, tok.vocab_size]], return_valid=True, on_invalid="relaxed")
    assert not valid[0]
    np.testing.assert_array_equal(out, tok.decode([good]))


def test_prefixes_decode_coarser_chunks(pusht_chunks):
    tok = create_tokenizer("klt", transform="klt").fit(pusht_chunks.train)
    x = pusht_chunks.holdout
    ids = tok.encode(x)
    errors = []
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        prefixes = [s[: int(np.ceil(fraction * len(s)))] for s in ids]
        errors.append(np.sqrt(np.mean((tok.decode(prefixes) - x) ** 2)))
    assert np.all(np.diff(errors) < 0), errors


def test_token_noise_hurts_less_than_fast(pusht_chunks):
    from actok.bench.metrics import corrupt_tokens

    x = pusht_chunks.holdout

    def increase(name):
        tok = create_tokenizer(name).fit(pusht_chunks.train)
        ids = tok.encode(x)
        clean = np.sqrt(np.mean((tok.decode(ids) - x) ** 2))
        return np.sqrt(np.mean((tok.decode(corrupt_tokens(ids, 0.05, tok.vocab_size)) - x) ** 2)) - clean

    assert increase("klt") < increase("fast")


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
    with pytest.raises(ActokError, match=r"vocab_size 8 is smaller than the \d+ coefficient symbols \+ 1"):
        create_tokenizer("klt", vocab_size=8).fit(pusht_chunks.train)


def test_transforms_and_shrinkage_endpoints(pusht_chunks):
    from actok.tokenizers.klt import candidate_bases, dct_basis, separable_basis

    x = pusht_chunks.train.reshape(len(pusht_chunks.train), -1)
    centered = x - x.mean(axis=0)
    prior = separable_basis(centered, 10, 2)
    np.testing.assert_allclose(prior.T @ prior, np.eye(20), atol=1e-10)
    full, separable, dct = candidate_bases(centered, 10, 2, [("klt", 0.99), ("separable", 1.0), ("dct", 1.0)])
    # "separable" is the prior itself; shrinkage close to 1 spans the same directions
    np.testing.assert_allclose(np.abs(separable.T @ prior).max(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(full.T @ prior).max(axis=1), 1.0, atol=1e-2)
    # "dct" is FAST's transform, coefficients in FAST's (frequency-major) order
    from scipy.fft import dct as scipy_dct

    np.testing.assert_allclose(
        centered @ dct, scipy_dct(centered.reshape(-1, 10, 2), axis=1, norm="ortho").reshape(len(x), -1), atol=1e-12
    )
    np.testing.assert_array_equal(dct, dct_basis(10, 2))
    with pytest.raises(ActokError, match=r"shrinkage must be a finite number in \[0, 1\], got 2"):
        create_tokenizer("klt", shrinkage=2)
    with pytest.raises(ActokError, match=r"transform must be 'auto' or 'klt' or 'separable' or 'dct', got 'pca'"):
        create_tokenizer("klt", transform="pca")


def test_auto_transform_follows_the_amount_of_data(pusht_chunks, readers):
    """Cross-validation keeps the full KLT where chunks are plenty (pusht: 185 episodes, 20 coefficients) and falls
    back to the DCT where they are few and unlike the held-out episode (reachy2: 2 training episodes, 570
    coefficients), where a learned basis costs more tokens and more error."""
    from actok.data import ChunkConfig, build_chunks

    assert create_tokenizer("klt").fit(pusht_chunks.train).fitted_transform == ("klt", 0.0)
    reachy = build_chunks(readers["reachy2_apple_storage"], ChunkConfig(action_horizon=30, sample_fraction=1.0))
    tok = create_tokenizer("klt").fit(reachy.train)
    assert tok.fitted_transform == ("dct", 1.0)
    learned = create_tokenizer("klt", transform="separable").fit(reachy.train)

    def tokens_and_rmse(t):
        ids = t.encode(reachy.holdout)
        return np.mean([len(s) for s in ids]), np.sqrt(np.mean((t.decode(ids) - reachy.holdout) ** 2))

    (auto_tokens, auto_rmse), (learned_tokens, learned_rmse) = tokens_and_rmse(tok), tokens_and_rmse(learned)
    assert auto_tokens < learned_tokens and auto_rmse < learned_rmse


def test_cross_validation_folds_cover_the_recording():
    from actok.tokenizers.klt import cv_folds

    folds = cv_folds(1000, horizon=10)  # 24 blocks of ~42 chunks, 8 per fold
    assert sorted(np.concatenate(folds).tolist()) == list(range(1000))
    assert all(f.min() < 100 and f.max() > 900 for f in folds)  # each fold spans the recording
    assert [len(f) for f in cv_folds(100, horizon=30)] == [34, 33, 33]  # at least 3 blocks


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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "transform"), [("pusht", "auto"), ("g1", "auto"), ("g1", "separable"), ("pusht", "dct")]
)
def test_autoprocessor_loads_saved_folder_offline(dataset, transform, pusht_chunks, g1_chunks, tmp_path, monkeypatch):
    """`save` writes a Hugging Face processor folder: its own processing_klt.py (no actok import), loaded offline
    with identical ids and decodes, also for sequences that are not encodings; for the dense basis (G1's
    H·D = 780: the float32 encode, decode in groups of rows) and the separable transforms' factors."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chunks = {"pusht": pusht_chunks, "g1": g1_chunks}[dataset]
    tok = create_tokenizer("klt", transform=transform).fit(chunks.train)
    assert (tok.separable is None) == (transform == "auto")
    folder = tok.save(tmp_path / "klt")
    imports = [
        n
        for n in ast.walk(ast.parse((folder / "processing_klt.py").read_text()))
        if isinstance(n, ast.ImportFrom | ast.Import)
    ]
    assert not [n for n in imports if "actok" in ast.dump(n)]
    processor = transformers.AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
    x = chunks.holdout
    ids = tok.encode(x)
    assert processor(x) == ids
    assert processor(x[0]) == ids[:1]  # one [H, D] chunk
    bad = x[:2].copy()
    bad[1, 0, 0] = np.nan
    for wrong, match in ((bad, "contain NaN or inf"), (x[:, :-1], "encodes chunks"), (x[0, 0], "encodes chunks")):
        with pytest.raises(ValueError, match=match):  # as actok refuses them
            processor(wrong)
    if tok.separable is None:  # coefficients exactly on quantization edges: the same side in both
        rng = np.random.default_rng(0)
        steps = rng.choice([-1, 1], (300, 6)) * (rng.integers(0, 4, (300, 6)) + tok.deadzone)
        edges = (tok.mean + steps / tok.scale @ tok.basis[:, :6].T).reshape(300, tok.horizon, tok.action_dim)
        assert processor(edges) == tok.encode(edges)
    np.testing.assert_array_equal(processor.decode(ids), tok.decode(ids))
    rng = np.random.default_rng(0)
    noisy = [rng.integers(0, tok.vocab_size + 3, rng.integers(0, 30)).tolist() for _ in range(200)]
    for policy in ("zeros", "relaxed"):
        out, valid = processor.decode(noisy, on_invalid=policy, return_valid=True)
        expected, expected_valid = tok.decode(noisy, on_invalid=policy, return_valid=True)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(valid, expected_valid)


def test_vocab_size_is_the_fitted_bpe_size(pusht_chunks):
    """With few training chunks the BPE stops short of the vocab_size parameter; every id below vocab_size is
    then a token, so random ids in [0, vocab_size) all decode."""
    tok = create_tokenizer("klt", vocab_size=4096).fit(pusht_chunks.train[:300])
    assert tok.vocab_size == tok.bpe.get_vocab_size() < 4096 and tok.get_params()["vocab_size"] == 4096
    rng = np.random.default_rng(0)
    _, valid = tok.decode([rng.integers(0, tok.vocab_size, 12).tolist() for _ in range(100)], return_valid=True)
    assert valid.all()


def test_constant_chunks_fit_without_warnings():
    import warnings

    x = np.full((50, 10, 3), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. log(0) in the cross-validation
        tok = create_tokenizer("klt").fit(x)
    np.testing.assert_array_equal(tok.decode(tok.encode(x)), x)


def _numpy_paths(tok):
    """A copy of `tok` that encodes through the tokenizers library and decodes with numpy (as without numba)."""
    import copy

    slow = copy.copy(tok)
    slow._encode_tables = slow._kernels = None
    return slow


@pytest.mark.slow
@pytest.mark.parametrize("transform", ["auto", "separable", "dct"])
@pytest.mark.parametrize("dataset", ["pusht", "g1"])
def test_compiled_encode_and_decode_give_the_library_and_numpy_results(dataset, transform, pusht_chunks, g1_chunks):
    pytest.importorskip("numba")
    chunks = {"pusht": pusht_chunks, "g1": g1_chunks}[dataset]
    tok = create_tokenizer("klt", transform=transform).fit(chunks.train)
    assert tok._encode_tables is not None and tok._kernels is not None  # the compiled loops are used
    assert (tok.separable is None) == (transform == "auto")
    slow = _numpy_paths(tok)
    ids = tok.encode(chunks.holdout)
    assert ids == slow.encode(chunks.holdout)
    np.testing.assert_allclose(tok.decode(ids), slow.decode(ids), rtol=0, atol=1e-12)
    # any id sequence: unknown ids, cut and overlong sequences, carries without a value after them
    rng = np.random.default_rng(0)
    noise = [rng.integers(-2, tok.vocab_size + 2, rng.integers(0, 3 * max(map(len, ids)))).tolist() for _ in range(300)]
    fast_out, fast_valid = tok.decode(noise, return_valid=True, on_invalid="relaxed")
    slow_out, slow_valid = slow.decode(noise, return_valid=True, on_invalid="relaxed")
    np.testing.assert_array_equal(fast_valid, slow_valid)
    np.testing.assert_allclose(fast_out, slow_out, rtol=0, atol=1e-12)


def test_compiled_spelling_is_the_numpy_one_on_large_and_clipped_values():
    pytest.importorskip("numba")
    from actok.tokenizers import _klt_kernels
    from actok.tokenizers.klt import deadzone_quantize, spell_symbols

    rng = np.random.default_rng(1)
    c = rng.laplace(size=(400, 60)) * np.geomspace(30, 0.01, 60)  # large leaders (carries, clipped), a zero tail
    c[::7] = 0.0  # empty rows
    scale, deadzone, half, carries = 3.0, 0.7, 4, 2
    symbols, offsets = _klt_kernels.spell_rows(c, scale, deadzone, half, carries)
    expected = spell_symbols(deadzone_quantize(c * scale, deadzone), half, carries)
    np.testing.assert_array_equal(offsets, expected[1])
    np.testing.assert_array_equal(symbols, expected[0])


@pytest.mark.parametrize("offset", [1e-9, 0.0])
def test_float32_encode_gives_the_float64_ids_at_quantization_edges(offset, pusht_chunks, monkeypatch):
    """Chunks whose coefficients lie a hair (1e-9 steps) either side of quantization edges: the float32 basis
    product cannot tell the sides apart, the recomputation near edges does (the ids of the float64 product).
    Exactly on an edge (offset 0) the side depends on rounding: the compiled loop and numpy (and the exported
    processor) recompute with the same term-by-term sum, so they still give the same ids."""
    pytest.importorskip("numba")
    from actok.tokenizers import klt

    monkeypatch.setattr(klt, "F32_MIN_SIZE", 0)  # pusht's H·D is below it
    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    rng = np.random.default_rng(0)
    n, size = 200, tok.basis.shape[1]
    steps = rng.choice([-1, 1], (n, size)) * (rng.integers(0, 6, (n, size)) + tok.deadzone)  # edges
    steps += rng.choice([-offset, offset], (n, size))  # on either side
    steps[:, 4:] = 0.0  # a few leading coefficients: the chunks stay near the training range
    chunks = (tok.mean + steps / tok.scale @ tok.basis.T).reshape(n, tok.horizon, tok.action_dim)
    ids = tok.encode(chunks)
    assert ids == _numpy_paths(tok).encode(chunks)
    if offset:
        float64 = klt.deadzone_quantize(tok.coefficients(chunks) * tok.scale, tok.deadzone)
        np.testing.assert_array_equal(tok.quantize(chunks), float64)


def test_encode_works_block_by_block(pusht_chunks, monkeypatch):
    from actok.tokenizers import klt

    tok = create_tokenizer("klt").fit(pusht_chunks.train)
    ids = tok.encode(pusht_chunks.holdout)
    monkeypatch.setattr(klt, "ENCODE_BLOCK", 7)
    assert tok.encode(pusht_chunks.holdout) == ids


def _smooth_chunks(n: int = 400, horizon: int = 20, dims: int = 12, seed: int = 0) -> np.ndarray:
    """Chunks of a few smooth latent curves mixed into `dims` dims, plus small noise: coefficient variances fall
    fast, so the trailing components quantize to zero."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, horizon)
    latent = np.stack([np.sin(2 * np.pi * (f * t[None, :] + rng.random((n, 1)))) for f in (0.5, 1.0, 1.5)], axis=2)
    return latent @ rng.normal(size=(3, dims)) * 0.3 + rng.normal(scale=0.002, size=(n, horizon, dims))


def test_codes_only_the_components_that_hold_the_training_chunks_nonzero_coefficients():
    """The basis keeps the K leading components beyond which (almost) no training chunk has a non-zero quantized
    coefficient: encode computes K coefficients instead of H·D, and the ids and error stay those of the full
    basis."""
    from actok.tokenizers.klt import CODED_QUANTILE, candidate_bases, deadzone_quantize

    x = _smooth_chunks()
    train, held = x[:350], x[350:]
    tok = create_tokenizer("klt", transform="klt").fit(train)
    k, size = tok.basis.shape[1], 20 * 12
    assert k < size // 4
    full = candidate_bases(train.reshape(350, -1) - tok.mean, 20, 12, [("klt", 0.0)])[0]
    np.testing.assert_allclose(np.abs(full[:, :k].T @ tok.basis), np.eye(k), atol=1e-8)  # the leading ones
    q = deadzone_quantize((train.reshape(350, -1) - tok.mean) @ full * tok.scale, tok.deadzone)
    assert np.mean(q[:, k:].any(axis=1)) <= 1 - CODED_QUANTILE  # what the tail would have coded
    rmse = np.sqrt(np.mean((tok.decode(tok.encode(held)) - held) ** 2))
    q_held = deadzone_quantize((held.reshape(50, -1) - tok.mean) @ full * tok.scale, tok.deadzone)
    full_decode = tok.mean + (q_held + np.sign(q_held) * (tok.deadzone - 0.5)) / tok.scale @ full.T
    full_decode = np.clip(full_decode.reshape(held.shape), tok.value_low, tok.value_high)
    full_rmse = np.sqrt(np.mean((full_decode - held) ** 2))
    assert rmse == pytest.approx(full_rmse, rel=1e-3)


@pytest.mark.parametrize("transform", ["separable", "dct"])
def test_separable_transforms_run_as_two_small_products(transform, pusht_chunks):
    """DCT and DCT ⊗ PCA keep their factors: the coefficients are those of the dense basis kron(time, dims)[:,
    order], computed in O(H·D·(H + D)) per chunk; decode inverts them (float32, as the dense decode)."""
    from actok.tokenizers.klt import dct_basis

    tok = create_tokenizer("klt", transform=transform).fit(pusht_chunks.train)
    s = tok.separable
    assert s is not None and s.time.shape == (10, 10) and s.dims.shape == (2, 2)
    np.testing.assert_allclose(np.kron(s.time, s.dims)[:, s.order], tok.basis, atol=1e-12)
    if transform == "dct":
        np.testing.assert_array_equal(s.dims, np.eye(2))
        np.testing.assert_allclose(tok.basis, dct_basis(10, 2)[:, : tok.basis.shape[1]], atol=1e-12)
    x = pusht_chunks.holdout
    centered = x.reshape(len(x), -1) - tok.mean
    np.testing.assert_allclose(tok.coefficients(x), centered @ tok.basis, rtol=0, atol=1e-12)
    ids = tok.encode(x)
    q = tok.quantize(x)
    dense = np.clip(
        (tok.mean + (q + np.sign(q) * (tok.deadzone - 0.5)) / tok.scale @ tok.basis.T).reshape(x.shape),
        tok.value_low,
        tok.value_high,
    )
    np.testing.assert_allclose(tok.decode(ids), dense, rtol=0, atol=1e-5)


def test_saved_separable_factors_and_legacy_square_bases_load(pusht_chunks, tmp_path):
    """A separable tokenizer saves its factors beside the basis and loads to the same ids and decodes; a basis
    file that holds every component (as klt saved before coding K of them) still loads; factors that are not
    those of the basis are refused in one line."""
    from actok import load_tokenizer

    tok = create_tokenizer("klt", transform="separable").fit(pusht_chunks.train)
    folder = tok.save(tmp_path / "sep")
    back = load_tokenizer(folder)
    x = pusht_chunks.holdout
    assert back.separable is not None and back.encode(x) == tok.encode(x)
    np.testing.assert_array_equal(back.decode(tok.encode(x)), tok.decode(tok.encode(x)))
    with np.load(folder / "klt_basis.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(folder / "klt_basis.npz", **{**arrays, "order": arrays["order"][::-1].copy()})
    with pytest.raises(ActokError, match=r"holds separable factors .* that are not those of its basis"):
        load_tokenizer(folder)
    np.savez(folder / "klt_basis.npz", **{k: v for k, v in arrays.items() if k != "dim_basis"})
    with pytest.raises(ActokError, match="holds separable factors"):
        load_tokenizer(folder)
    legacy = create_tokenizer("klt", transform="klt").fit(pusht_chunks.train)
    folder = legacy.save(tmp_path / "legacy")
    completed, _ = np.linalg.qr(np.hstack([legacy.basis, np.random.default_rng(0).normal(size=(20, 20))]))
    completed[:, : legacy.basis.shape[1]] = legacy.basis  # the coded components first, then the rest
    with np.load(folder / "klt_basis.npz") as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(folder / "klt_basis.npz", **{**arrays, "basis": completed[:, :20]})
    old = load_tokenizer(folder)
    assert old.basis.shape == (20, 20)
    assert np.isfinite(old.decode(old.encode(x))).all()


@pytest.mark.parametrize("transform", ["klt", "dct"])
def test_values_far_outside_the_training_range_clip_on_their_own_side(transform, monkeypatch):
    """Chunks far outside the training range (up to 1e300) encode as if each coefficient were clipped into the
    symbol layout on the side it lies on: quantization does not wrap through int64 (which turned +1e19 into the
    most negative value), and the float32 product (F32_MIN_SIZE lowered; values beyond float32's range, where it
    gives inf and NaN) recomputes those coefficients in float64: the numpy path's ids."""
    pytest.importorskip("numba")
    from actok.tokenizers import klt

    monkeypatch.setattr(klt, "F32_MIN_SIZE", 0)
    x = _smooth_chunks(200, 10, 3)
    tok = create_tokenizer("klt", transform=transform).fit(x)
    mean = tok.mean.reshape(10, 3)
    for magnitude in (1e17, 1e19, 1e39, 1e300):
        huge = mean + magnitude * (x[:4] - mean)
        c, q = tok.coefficients(huge), tok.quantize(huge)
        beyond = np.abs(c) * tok.scale >= 1
        assert beyond.any() and (np.sign(q[beyond]) == np.sign(c[beyond])).all()
        assert tok.encode(huge) == _numpy_paths(tok).encode(huge)
        low, high = (tok.decode(tok.encode(mean[None] + sign * magnitude)) for sign in (-1, 1))
        assert low.mean() < high.mean()


def test_empty_batches_go_through_the_numpy_separable_transform():
    tok = _numpy_paths(create_tokenizer("klt", transform="separable").fit(_smooth_chunks(100, 10, 3)))
    assert tok.quantize(np.zeros((0, 10, 3))).shape == (0, tok.basis.shape[1])
    assert tok.count_clipped(np.zeros((0, 10, 3))) == 0


def test_factors_must_be_orthonormal(tmp_path):
    """A time basis column no coded coefficient uses passes the check against the basis, but 1e300 there (inf in
    float32) made every decode NaN, hence invalid: the factors themselves must be orthonormal."""
    from actok import load_tokenizer

    tok = create_tokenizer("klt", transform="separable").fit(_smooth_chunks())
    unused = sorted(set(range(20)) - set((tok.separable.order // 12).tolist()))
    assert unused  # the high frequencies are not coded
    folder = tok.save(tmp_path / "sep")
    with np.load(folder / "klt_basis.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["time_basis"][:, unused[-1]] = 1e300
    np.savez(folder / "klt_basis.npz", **arrays)
    with pytest.raises(ActokError, match=r"holds separable factors .* orthonormal time_basis \(20, 20\)"):
        load_tokenizer(folder)


def test_processor_decodes_malformed_rows_as_actok_does(pusht_chunks, tmp_path, monkeypatch):
    """Rows that are not flat sequences of numbers (a string, None, nested or ragged lists) are invalid, decoded as
    empty, in the exported processor as in actok (it raised on some and decoded nested ids as valid), also one
    holding a Python int beyond int64."""
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = create_tokenizer("klt", transform="dct").fit(pusht_chunks.train[:400])
    processor = transformers.AutoProcessor.from_pretrained(str(tok.save(tmp_path / "k")), trust_remote_code=True)
    good = tok.encode(pusht_chunks.holdout[:2])
    rows = [good[0], "ab", None, [[1, 2], [3]], [good[1]], [*good[1], 2**70], [0.5, 2], np.array(good[0]), []]
    for batch in (rows, [None, *good]):
        for policy in ("zeros", "relaxed"):
            out, valid = processor.decode(batch, on_invalid=policy, return_valid=True)
            expected, expected_valid = tok.decode(batch, on_invalid=policy, return_valid=True)
            np.testing.assert_array_equal(valid, expected_valid)
            np.testing.assert_array_equal(out, expected)


def test_a_scale_no_vocabulary_can_hold_asks_for_a_smaller_scale():
    with pytest.raises(ActokError, match=r"coefficient symbols \+ 1 at scale 1e\+06: use a smaller scale$"):
        create_tokenizer("klt", scale=1e6).fit(_smooth_chunks(50, 10, 3))
