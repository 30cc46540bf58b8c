"""FAST: ids identical to a plain per-chunk implementation of the spec (REFERENCES §3), formats, robustness."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from conftest import dataset_root
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer, Tokenizer
from tokenizers.trainers import BpeTrainer

from actok import FASTTokenizer, load_tokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.errors import ActokError, ActokWarning


class PlainFAST:
    """The reference algorithm written plainly from the spec: one chunk at a time, in the chunk's dtype, no clipping.
    `encode_one` raises where the reference raises (TypeError for a surrogate code point, ValueError from chr beyond
    U+10FFFF); `decode_one` returns None where the reference prints an error and returns zeros."""

    def __init__(self, bpe: Tokenizer, scale: float, min_token: int, horizon: int, action_dim: int):
        self.bpe, self.scale, self.min_token, self.h, self.d = bpe, scale, min_token, horizon, action_dim

    @classmethod
    def fit(cls, chunks, scale=10.0, vocab_size=1024):
        rounded = [np.around(dct(c, axis=0, norm="ortho") * scale).astype(int) for c in chunks]
        lo = min(int(r.min()) for r in rounded)
        hi = max(int(r.max()) for r in rounded)
        strings = ["".join(chr(int(v) - lo) for v in r.flatten()) for r in rounded]
        bpe = ByteLevelBPETokenizer()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=[chr(i) for i in range(hi - lo + 1)],
            max_token_length=10000,
        )
        bpe._tokenizer.train_from_iterator(iter(strings), trainer=trainer)
        return cls(bpe._tokenizer, scale, lo, chunks.shape[1], chunks.shape[2])

    def encode_one(self, chunk):
        rounded = np.around(dct(chunk, axis=0, norm="ortho") * self.scale)
        text = "".join(map(chr, np.maximum(rounded.flatten() - self.min_token, 0).astype(int)))
        return self.bpe.encode(text).ids

    def decode_one(self, ids):
        try:
            text = self.bpe.decode(ids)
            coeff = (np.array([ord(c) for c in text], dtype=np.int64) + self.min_token).reshape(-1, self.d)
        except Exception:  # the reference catches everything here
            return None
        if coeff.shape != (self.h, self.d):
            return None
        return idct(coeff / self.scale, axis=0, norm="ortho")


@pytest.fixture(scope="module")
def pusht_fast(pusht_chunks):
    return FASTTokenizer().fit(pusht_chunks.train)


@pytest.fixture(scope="module")
def pusht_fast_clip(pusht_chunks):
    return FASTTokenizer(clip=True).fit(pusht_chunks.train)


def _dataset_chunks(name, horizon, **kw):
    return build_chunks(LeRobotDatasetReader(dataset_root(name)), ChunkConfig(action_horizon=horizon, **kw))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,horizon,kw,scale,vocab",
    [
        ("pusht", 10, {}, 10.0, 1024),
        ("unitree_g1_pickbottle", 30, {"delta_dims": "0,1,2,3,4,5,6,7,8,9,10,11,12,13"}, 10.0, 1024),
        ("reachy2_apple_storage", 30, {"sample_fraction": 1.0}, 10.0, 2048),
        ("robosuite_panda", 20, {"sample_fraction": 0.5}, 5.0, 512),
    ],
)
def test_ids_identical_to_plain_reference(name, horizon, kw, scale, vocab):
    chunks = _dataset_chunks(name, horizon, **kw)
    ours = FASTTokenizer(scale=scale, vocab_size=vocab).fit(chunks.train)
    plain = PlainFAST.fit(chunks.train, scale=scale, vocab_size=vocab)
    # Same fit: identical BPE model (vocab and merges), identical range.
    assert ours.min_token == plain.min_token
    assert json.loads(ours.bpe.to_str())["model"] == json.loads(plain.bpe.to_str())["model"]
    # Same encode on training and held-out chunks, also far outside the fitted range (1.5x, 3x).
    x = np.concatenate([chunks.train[:300], chunks.holdout[:500], chunks.holdout[:300] * 1.5, chunks.holdout[:300] * 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)  # symbols the vocabulary lacks are dropped, as the reference does
        ours_ids = ours.encode(x)
    assert ours_ids == [plain.encode_one(c) for c in x]
    # Same decode of the reference's ids; invalid exactly where the reference fails.
    decoded, valid = ours.decode(ours_ids, return_valid=True)
    reference = [plain.decode_one(s) for s in ours_ids]
    assert valid.tolist() == [r is not None for r in reference]
    np.testing.assert_array_equal(decoded[valid], np.stack([r for r in reference if r is not None]))


def test_reference_ids_with_a_folder_actok_did_not_fit(pusht_chunks, tmp_path):
    """encode with a tokenizer.json made elsewhere (the plain fit) matches the plain encoder, also beyond the range."""
    plain = PlainFAST.fit(pusht_chunks.train, vocab_size=256)
    folder = tmp_path / "external"
    folder.mkdir()
    plain.bpe.save(str(folder / "tokenizer.json"))
    (folder / "processor_config.json").write_text(
        json.dumps(
            {
                "scale": 10.0,
                "vocab_size": 256,
                "min_token": plain.min_token,
                "time_horizon": 10,
                "action_dim": 2,
            }
        )
    )
    tok = load_tokenizer(folder)
    x = np.concatenate([pusht_chunks.train[:200], pusht_chunks.holdout[:100] * 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        assert tok.encode(x) == [plain.encode_one(c) for c in x]


def test_fit_is_deterministic(pusht_chunks):
    a = FASTTokenizer().fit(pusht_chunks.train)
    b = FASTTokenizer().fit(pusht_chunks.train)
    assert a.bpe.to_str() == b.bpe.to_str()


def test_clip_option_clips_out_of_range_chunks_and_stays_decodable(pusht_chunks):
    tok = FASTTokenizer(clip=True).fit(pusht_chunks.train)
    x = pusht_chunks.holdout[:50] * 5.0  # far outside the training range
    assert tok.count_clipped(x) > 0
    ids = tok.encode(x)
    decoded, valid = tok.decode(ids, return_valid=True)
    assert valid.all()
    # Clipping only moves coefficients to the edge of the range, so the decoded chunk is bounded.
    limit = np.sqrt(10) * max(abs(tok.min_token), abs(tok.max_token)) / tok.scale
    assert np.abs(decoded).max() <= limit + 1e-9


def test_default_encode_drops_what_the_reference_drops_and_warns(pusht_fast, pusht_chunks):
    """pusht's alphabet is 65 code points: bytes of code points beyond it mostly have no symbol in the vocabulary.
    The reference drops them (a shorter sequence that does not decode); so does actok, id for id, with a warning."""
    x = pusht_chunks.holdout[:50] * 5.0
    plain = PlainFAST(pusht_fast.bpe, pusht_fast.scale, pusht_fast.min_token, 10, 2)
    with pytest.warns(ActokWarning, match=r"of 50 chunks have coefficients beyond the fitted range \[-?\d+, \d+\]"):
        ids = pusht_fast.encode(x)
    assert ids == [plain.encode_one(c) for c in x]
    _, valid = pusht_fast.decode(ids, return_valid=True)
    assert valid.tolist() == [plain.decode_one(s) is not None for s in ids] and not valid.all()
    assert pusht_fast.count_clipped(x) == FASTTokenizer(clip=True).fit(pusht_chunks.train).count_clipped(x) > 0


def test_lone_utf8_lead_byte_is_invalid_not_garbage(pusht_chunks):
    # A wide coefficient range (scale 50) puts code points >= 128 in play, i.e. 2-byte UTF-8 symbols.
    tok = FASTTokenizer(scale=50.0, vocab_size=2048).fit(pusht_chunks.train)
    assert tok.max_token - tok.min_token >= 128
    lone = [i for i in range(tok.bpe.get_vocab_size()) if "\ufffd" in tok.bpe.decode([i])]
    assert lone, "expected some token that is an incomplete UTF-8 sequence on its own"
    good = tok.encode(pusht_chunks.holdout[:1])[0]
    out, valid = tok.decode([[*good[:-1], lone[0]]], return_valid=True)
    assert not valid[0] and not out.any()  # the reference would return actions near +-1000 here


def test_float_and_numpy_ids_decode_like_ints(pusht_fast, pusht_chunks):
    ids = pusht_fast.encode(pusht_chunks.holdout[:3])
    expected = pusht_fast.decode(ids)
    np.testing.assert_array_equal(pusht_fast.decode([[float(t) for t in s] for s in ids]), expected)
    np.testing.assert_array_equal(pusht_fast.decode([np.array(s, dtype=np.int32) for s in ids]), expected)


def test_relaxed_policy_pads_and_truncates(pusht_fast, pusht_chunks):
    ids = pusht_fast.encode(pusht_chunks.holdout[:1])[0]
    full = pusht_fast.decode([ids])
    relaxed, valid = pusht_fast.decode([[*ids, *ids]], on_invalid="relaxed", return_valid=True)
    assert not valid[0]
    np.testing.assert_allclose(relaxed, full)  # the extra symbols are truncated


def test_count_clipped_without_a_fitted_state_is_the_not_fitted_error(pusht_chunks):
    tok = FASTTokenizer()
    tok.horizon, tok.action_dim = 10, 2  # a shape, as a folder with time_horizon would give, but no BPE
    with pytest.raises(ActokError, match="fast tokenizer is not fitted"):
        tok.count_clipped(pusht_chunks.holdout)


def test_vocab_too_small_says_what_would_fit(pusht_chunks):
    with pytest.raises(ActokError, match=r"use vocab_size >= \d+, or scale <= [\d.]+ for this vocab_size"):
        FASTTokenizer(scale=100.0, vocab_size=256).fit(pusht_chunks.train)


def test_not_a_fast_folder_names_missing_file(tmp_path, pusht_fast):
    (tmp_path / "processor_config.json").write_text(json.dumps({"scale": 10, "min_token": 0}))
    with pytest.raises(ActokError, match=r"tokenizer\.json is missing"):
        load_tokenizer(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ActokError, match=r"expected actok_tokenizer\.json .* or processor_config\.json"):
        load_tokenizer(empty)


def test_transformers5_layout_and_universal_style_config(pusht_fast, pusht_chunks, tmp_path):
    """A folder with the BPE in bpe_tokenizer/ and null time_horizon/action_dim (like FAST+)."""
    src = pusht_fast.save(tmp_path / "saved")
    folder = tmp_path / "universal"
    (folder / "bpe_tokenizer").mkdir(parents=True)
    shutil.copy(src / "tokenizer.json", folder / "bpe_tokenizer" / "tokenizer.json")
    config = json.loads((src / "processor_config.json").read_text())
    config.update(time_horizon=None, action_dim=None)
    del config["max_token"]
    (folder / "processor_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(folder)
    assert tok.max_token == pusht_fast.max_token  # recovered from the vocabulary
    ids = pusht_fast.encode(pusht_chunks.holdout)
    with pytest.raises(ActokError, match="pass horizon= and action_dim="):
        tok.decode(ids)
    np.testing.assert_array_equal(tok.decode(ids, horizon=10, action_dim=2), pusht_fast.decode(ids))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=40), min_size=1, max_size=8))
def test_fuzzed_ids_never_raise(pusht_fast, ids):
    for policy in ("zeros", "relaxed"):
        out = pusht_fast.decode(ids, on_invalid=policy)
        assert out.shape == (len(ids), 10, 2) and np.isfinite(out).all()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(min_value=1e-3, max_value=1e6), st.integers(min_value=0, max_value=2**31 - 1))
def test_fuzzed_magnitudes_with_clip_always_encode_to_valid_sequences(pusht_fast_clip, magnitude, seed):
    x = np.random.default_rng(seed).normal(size=(4, 10, 2)) * magnitude
    ids = pusht_fast_clip.encode(x)
    assert all(0 <= t < pusht_fast_clip.vocab_size for s in ids for t in s)
    _, valid = pusht_fast_clip.decode(ids, return_valid=True)
    assert valid.all()


@pytest.mark.slow
def test_autoprocessor_loads_saved_folder_offline(pusht_fast, pusht_chunks, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = pusht_fast.save(tmp_path / "fast")
    processor = transformers.AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
    x = pusht_chunks.holdout
    ids = pusht_fast.encode(x)
    assert processor(x) == ids
    np.testing.assert_array_equal(processor.decode(ids), pusht_fast.decode(ids))
    beyond = (pusht_chunks.holdout[:100] * 3).astype(np.float32)  # byte tokens, dropped symbols, float32 rounding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        beyond_ids = pusht_fast.encode(beyond)
    assert processor(beyond) == beyond_ids
    np.testing.assert_array_equal(processor.decode(beyond_ids), pusht_fast.decode(beyond_ids))
    assert processor.time_horizon == 10 and processor.action_dim == 2
    refit = processor.fit(pusht_chunks.train)
    assert refit(x) == ids
