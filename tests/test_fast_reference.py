"""FAST is the reference processor on every input: chunks far outside the fitted range, spikes, float32 chunks,
code points the reference cannot encode, every id sequence it decodes; folders LeRobot writes; the hub module;
corrupted folder files."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.fft import dct
from test_fast import PlainFAST

from actok import FASTTokenizer, load_tokenizer
from actok.cli import main
from actok.data import ChunkConfig, build_chunks
from actok.errors import ActokError, ActokWarning
from actok.tokenizers import _fast_kernels as kernels
from actok.tokenizers._bytelevel import byte_symbols, token_bytes
from actok.tokenizers.coefficients import train_bpe
from actok.tokenizers.fast import PROCESSOR_MODULE


@pytest.fixture(scope="module")
def g1_fast(g1_chunks):
    return FASTTokenizer().fit(g1_chunks.train)


@pytest.fixture(scope="module")
def wide_fast(pusht_chunks):
    """A fitted range beyond 127, so symbols are 1- and 2-byte UTF-8 and tokens can hold part of a character."""
    tok = FASTTokenizer(scale=50.0, vocab_size=2048).fit(pusht_chunks.train)
    assert tok.max_token - tok.min_token >= 128
    return tok


def plain_of(tok: FASTTokenizer) -> PlainFAST:
    return PlainFAST(tok.bpe, tok.scale, tok.min_token, tok.horizon, tok.action_dim)


def quietly(fn, *args, **kwargs):
    """Call without the warning about dropped symbols (the reference drops them silently; tested elsewhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        return fn(*args, **kwargs)


def reference_decodes(tok: FASTTokenizer, ids: list[int]) -> bool:
    """The reference turns `ids` into a chunk that means something: every id in the vocabulary (it skips others),
    no U+FFFD from broken UTF-8 (it reads a coefficient near 65,533 from it) and exactly H*D symbols."""
    if not all(0 <= t < tok.bpe.get_vocab_size() for t in ids):
        return False
    return "\ufffd" not in tok.bpe.decode(ids) and plain_of(tok).decode_one(ids) is not None


def assert_decodes_as_reference(tok: FASTTokenizer, ids: list[list[int]]) -> np.ndarray:
    decoded, valid = tok.decode(ids, return_valid=True)
    assert valid.tolist() == [reference_decodes(tok, s) for s in ids]
    plain = plain_of(tok)
    for i in np.flatnonzero(valid):
        np.testing.assert_array_equal(decoded[i], plain.decode_one(ids[i]))
    assert not decoded[~valid].any()
    return valid


# ----------------------------------------------------------------------------- encode
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31 - 1),
    factor=st.sampled_from([1.0, 1.5, 3.0]),
    spike=st.floats(-30, 30),
    float32=st.booleans(),
)
def test_encode_and_decode_are_the_reference_beyond_the_fitted_range(g1_fast, g1_chunks, seed, factor, spike, float32):
    """Held-out chunks scaled 1.5x and 3x beyond the training range, with a single spike, float32 or float64:
    the reference's ids, id for id, and its reconstructions of them."""
    rng = np.random.default_rng(seed)
    x = g1_chunks.holdout[rng.choice(len(g1_chunks.holdout), 6)] * factor
    x[np.arange(6), rng.integers(0, 30, 6), rng.integers(0, x.shape[2], 6)] += spike
    x = x.astype(np.float32 if float32 else np.float64)
    ids = quietly(g1_fast.encode, x)
    plain = plain_of(g1_fast)
    assert ids == [plain.encode_one(c) for c in x]
    assert_decodes_as_reference(g1_fast, ids)


def test_beyond_the_range_is_lossless_and_valid_where_the_vocabulary_spells_it(wide_fast, pusht_chunks):
    """Coefficients above max_token are byte tokens, not clipped: where the vocabulary has the byte symbols (here
    2-byte UTF-8 up to the next lead byte), those chunks decode to the rounding error."""
    x = pusht_chunks.holdout * 1.2
    ids = quietly(wide_fast.encode, x)
    decoded, valid = wide_fast.decode(ids, return_valid=True)
    rounded = np.around(wide_fast.transform(x) * wide_fast.scale)
    above = (rounded > wide_fast.max_token).any(axis=1) & (rounded >= wide_fast.min_token).all(axis=1)
    beyond = np.flatnonzero(valid & above)  # (those below min_token are clamped, as the reference clamps them)
    assert len(beyond) >= 10, "expected valid chunks with coefficients above the fitted range"
    step = 0.5 / wide_fast.scale  # the largest rounding error of one coefficient
    assert np.abs(decoded[beyond] - x[beyond]).max() <= step * np.sqrt(10) + 1e-12


@pytest.mark.parametrize("offset", [0xD800, 0xDB00, 0xDFFF, 0x110000, 0x200000])
def test_code_points_the_reference_cannot_encode_are_clipped(g1_fast, offset):
    """A coefficient landing on U+D800-DFFF makes the reference's tokenizer call raise TypeError (openpi #333), one
    beyond U+10FFFF makes chr raise: actok clips that coefficient into the fitted range (as clip=True does),
    counts it in count_clipped, and the sequence decodes."""
    tok, h, d = g1_fast, g1_fast.horizon, g1_fast.action_dim
    x = np.zeros((1, h, d))
    x[0, :, 0] = (offset + tok.min_token) / (tok.scale * math.sqrt(h))  # only the DC coefficient of dim 0
    plain = plain_of(tok)
    with pytest.raises((TypeError, ValueError)):
        plain.encode_one(x[0])
    codes = np.full(h * d, -tok.min_token)
    codes[0] = tok.codec.emit_code[-1]  # the largest code point of the fitted range the vocabulary spells
    assert tok.encode(x) == [tok.bpe.encode("".join(map(chr, codes))).ids]
    assert tok.count_clipped(x) == 1
    decoded, valid = tok.decode(tok.encode(x), return_valid=True)
    assert valid.all() and decoded[0, 0, 0] > 0


def test_the_code_point_just_below_the_surrogates_is_the_reference(g1_fast):
    tok, h, d = g1_fast, g1_fast.horizon, g1_fast.action_dim
    x = np.zeros((1, h, d))
    x[0, :, 0] = (0xD7FF + tok.min_token) / (tok.scale * math.sqrt(h))
    assert quietly(tok.encode, x) == [plain_of(tok).encode_one(x[0])]


def test_float32_chunks_fit_and_encode_as_the_reference(readers):
    """LeRobot hands the reference float32 chunks (IDENTITY mode): scipy's DCT and the rounding run in float32, and
    at scale 0.5 on pusht some coefficients round the other way than in float64. Same array, same ids."""
    chunks = build_chunks(
        readers["pusht"], ChunkConfig(action_horizon=10, sample_fraction=0.2, normalization_mode="IDENTITY")
    )
    train, holdout = chunks.train.astype(np.float32), chunks.holdout.astype(np.float32)
    in64 = np.around(dct(train.astype(np.float64), axis=1, norm="ortho") * 0.5)
    assert (np.around(dct(train, axis=1, norm="ortho") * 0.5) != in64).any(), "the case this test is about"
    ours = FASTTokenizer(scale=0.5, vocab_size=1100).fit(train)
    plain = PlainFAST.fit(train, scale=0.5, vocab_size=1100)
    assert ours.min_token == plain.min_token
    assert json.loads(ours.bpe.to_str())["model"] == json.loads(plain.bpe.to_str())["model"]
    assert quietly(ours.encode, holdout) == [plain.encode_one(c) for c in holdout]
    as64 = holdout.astype(np.float64)
    assert quietly(ours.encode, as64) == [plain.encode_one(c) for c in as64]
    assert quietly(ours.encode, holdout.astype(np.float16)) == [plain.encode_one(c) for c in holdout.astype(np.float16)]


def test_vocab_size_counts_every_id_encode_returns(pusht_chunks):
    """With the coefficient range close to vocab_size, the BPE's alphabet alone holds more ids than vocab_size."""
    tok = FASTTokenizer(scale=30.0, vocab_size=200)
    span = int(np.ptp(np.around(tok.transform(pusht_chunks.train) * 30.0)))
    tok = FASTTokenizer(scale=30.0, vocab_size=span)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)
        tok.fit(pusht_chunks.train)
    assert tok.bpe.get_vocab_size() > span and tok.vocab_size == tok.bpe.get_vocab_size()
    assert max(t for s in tok.encode(pusht_chunks.holdout) for t in s) < tok.vocab_size


def test_a_range_reaching_the_surrogates_cannot_be_fitted(pusht_chunks):
    """The fitted range is at most vocab_size, and vocab_size is capped below U+D800: a fit never spans them."""
    scale = 56000 / float(np.ptp(FASTTokenizer().transform(pusht_chunks.train)))  # a range of ~56,000 > 0xD800
    with pytest.raises(ActokError, match="vocab_size must be"):
        FASTTokenizer(scale=scale, vocab_size=60000)
    with pytest.raises(ActokError, match="vocab_size 32768 is smaller than"):
        FASTTokenizer(scale=scale, vocab_size=2**15).fit(pusht_chunks.train)


# ----------------------------------------------------------------------------- decode
def test_token_bytes_are_what_the_library_decoder_joins(wide_fast):
    """Per-token bytes joined and decoded (lossily where not UTF-8) give the library's text, for every token
    alone and for random sequences: decode reads symbols exactly as the reference's decoder does."""
    vocab = {i: t for t, i in wide_fast.bpe.get_vocab().items()}
    for i, token in vocab.items():
        assert token_bytes(token).decode("utf-8", errors="replace") == wide_fast.bpe.decode([i])
    rng = np.random.default_rng(0)
    for _ in range(300):
        ids = rng.integers(0, len(vocab), rng.integers(1, 12)).tolist()
        joined = b"".join(token_bytes(vocab[i]) for i in ids)
        assert joined.decode("utf-8", errors="replace") == wide_fast.bpe.decode(ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_decode_is_valid_exactly_where_the_reference_decodes(wide_fast, pusht_chunks, seed):
    """Encodings (of chunks in and beyond the range), with tokens replaced, dropped, doubled or cut, and random
    vocabulary ids: valid exactly where the reference gives a meaningful chunk, and then its values."""
    rng = np.random.default_rng(seed)
    x = pusht_chunks.holdout[rng.choice(len(pusht_chunks.holdout), 4)] * rng.choice([1.0, 1.3, 2.0])
    encoded = quietly(wide_fast.encode, x)
    n_vocab = wide_fast.bpe.get_vocab_size()
    ids = list(encoded)
    for s in encoded:
        k = int(rng.integers(0, len(s)))
        ids += [[*s[:k], int(rng.integers(0, n_vocab)), *s[k + 1 :]], s[:k] + s[k + 1 :], s + s, s[:k]]
    ids += [rng.integers(0, n_vocab, rng.integers(0, 30)).tolist() for _ in range(8)]
    ids += [[*encoded[0], n_vocab + 3], [-1, *encoded[0]]]
    assert_decodes_as_reference(wide_fast, ids)


def test_lone_utf8_lead_byte_is_invalid(wide_fast, pusht_chunks):
    vocab, symbols = wide_fast.bpe.get_vocab(), byte_symbols()
    good = wide_fast.encode(pusht_chunks.holdout[:1])[0]
    lead = [vocab[symbols[b]] for b in range(0xC2, 0xE0) if symbols[b] in vocab]
    assert lead, "expected a lead-byte token in a vocabulary with 2-byte symbols"
    out, valid = wide_fast.decode([[*good[:-1], lead[0]], good], return_valid=True)
    assert valid.tolist() == [False, True] and not out[0].any()
    relaxed = wide_fast.decode([[*good[:-1], lead[0]]], on_invalid="relaxed")
    assert np.isfinite(relaxed).all() and np.abs(relaxed).max() < 100  # U+FFFD read as a zero coefficient


def test_utf8_bytes_of_a_surrogate_are_invalid_and_beyond_the_range_is_valid():
    """Bytes ED A0 80 would be U+D800: not UTF-8 (the library decodes them to U+FFFD), so invalid. ED 95 9C is
    U+D55C, far beyond a fitted range of 10 code points: a valid symbol, as the reference reads it."""
    tok = FASTTokenizer()
    tok.bpe = train_bpe(["\ud55c\u0800" + "".join(map(chr, range(10)))] * 4, 300, 10)
    tok.min_token, tok.max_token, tok.horizon, tok.action_dim = 0, 9, 1, 1
    tok._prepare()
    vocab, symbols = tok.bpe.get_vocab(), byte_symbols()
    surrogate = [vocab[symbols[b]] for b in (0xED, 0xA0, 0x80)]
    hangul = [vocab[symbols[b]] for b in (0xED, 0x95, 0x9C)]
    assert "\ufffd" in tok.bpe.decode(surrogate) and tok.bpe.decode(hangul) == "\ud55c"
    out, valid = tok.decode([surrogate, hangul], return_valid=True)
    assert valid.tolist() == [False, True]
    assert out[1, 0, 0] == 0xD55C / tok.scale


def test_relaxed_decoding_pads_and_truncates_with_zero_coefficients(g1_fast, g1_chunks):
    ids = g1_fast.encode(g1_chunks.holdout[:1])[0]
    full = g1_fast.decode([ids])
    out, valid = g1_fast.decode([ids + ids, ids[:-3]], on_invalid="relaxed", return_valid=True)
    assert not valid.any()
    np.testing.assert_array_equal(out[0], full[0])
    assert np.isfinite(out[1]).all()


# ----------------------------------------------------------------------------- folders
def write_lerobot_folder(tok: FASTTokenizer, folder) -> None:
    """The files `lerobot-train-tokenizer` leaves (the reference processor's save_pretrained, plus metadata.json):
    processor_config.json without max_token."""
    folder.mkdir(parents=True)
    tok.bpe.save(str(folder / "tokenizer.json"))
    processor = {
        "action_dim": tok.action_dim,
        "auto_map": {"AutoProcessor": "processing_action_tokenizer.UniversalActionProcessor"},
        "min_token": tok.min_token,
        "processor_class": "UniversalActionProcessor",
        "scale": tok.scale,
        "time_horizon": tok.horizon,
        "vocab_size": tok.vocab_size,
    }
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=2))
    tokenizer_config = {
        "added_tokens_decoder": {},
        "clean_up_tokenization_spaces": False,
        "extra_special_tokens": {},
        "model_max_length": 1000000000000000019884624838656,
        "processor_class": "UniversalActionProcessor",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (folder / "special_tokens_map.json").write_text("{}")
    (folder / PROCESSOR_MODULE).write_text("# the reference processor's module; actok does not read it\n")
    (folder / "metadata.json").write_text(json.dumps({"repo_id": "unitree/g1", "scale": tok.scale}))


def test_lerobot_folder_without_max_token_is_the_reference(g1_fast, g1_chunks, tmp_path):
    write_lerobot_folder(g1_fast, tmp_path / "lerobot")
    tok = load_tokenizer(tmp_path / "lerobot")
    assert tok.max_token == g1_fast.max_token  # the initial alphabet chr(0 .. max - min) is in the vocabulary
    rng = np.random.default_rng(1)
    x = np.concatenate([g1_chunks.holdout[:100], g1_chunks.holdout[100:160] * 1.5, g1_chunks.holdout[160:200] * 3])
    x[np.arange(len(x)), rng.integers(0, 30, len(x)), rng.integers(0, x.shape[2], len(x))] += rng.normal(0, 5, len(x))
    ids = quietly(tok.encode, x)
    assert ids == [plain_of(g1_fast).encode_one(c) for c in x]
    valid = assert_decodes_as_reference(tok, ids)
    assert valid.mean() > 0.5


@pytest.fixture(scope="module")
def hub_module():
    pytest.importorskip("transformers")
    from actok.tokenizers import fast

    path = fast.Path(fast.__file__).with_name("_hub") / PROCESSOR_MODULE
    spec = importlib.util.spec_from_file_location("actok_hub_processor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # importing transformers takes seconds
@pytest.mark.parametrize("clip", [False, True])
def test_hub_processor_gives_actoks_ids_and_reconstructions(hub_module, g1_fast, g1_chunks, clip):
    from transformers import PreTrainedTokenizerFast

    tok = copy.copy(g1_fast)
    tok.clip = clip
    wrapper = PreTrainedTokenizerFast(tokenizer_object=tok.bpe, clean_up_tokenization_spaces=False)
    processor = hub_module.UniversalActionProcessor(
        wrapper, scale=tok.scale, vocab_size=1024, min_token=tok.min_token, max_token=tok.max_token, clip=clip
    )
    h, d = tok.horizon, tok.action_dim
    x = np.concatenate([g1_chunks.holdout[:40], g1_chunks.holdout[40:80] * 3]).astype(np.float32)
    spike = np.zeros((1, h, d))
    spike[0, :, 0] = (0xD900 + tok.min_token) / (tok.scale * math.sqrt(h))
    for chunks in (x, spike):
        ids = quietly(tok.encode, chunks)
        assert processor(chunks) == ids
        ours, valid = tok.decode(ids, return_valid=True)
        theirs, valid_hub = processor.decode(ids, time_horizon=h, action_dim=d, return_valid=True)
        np.testing.assert_array_equal(valid_hub, valid)
        np.testing.assert_array_equal(theirs, ours)
    bad = [ids[0][:-1], [*ids[0], 10**6]]
    for policy in ("zeros", "relaxed"):
        np.testing.assert_array_equal(
            processor.decode(bad, time_horizon=h, action_dim=d, on_invalid=policy),
            tok.decode(bad, on_invalid=policy),
        )
    # A LeRobot processor_config.json has no max_token: the hub module recovers it as actok does.
    assert hub_module.UniversalActionProcessor(wrapper, scale=tok.scale, min_token=tok.min_token).max_token == (
        tok.max_token
    )


def test_clip_is_saved_loaded_and_shown_by_train(tmp_path, capsys, readers):
    out = tmp_path / "tok"
    args = ["train", "--root", readers["pusht"].root, "--action_horizon", "10", "--output_dir", out]
    assert main([str(a) for a in [*args, "--tokenizer-param", "clip=true"]]) == 0
    assert "\nclip: True\n" in capsys.readouterr().out
    assert json.loads((out / "actok_tokenizer.json").read_text())["params"]["clip"] is True
    assert json.loads((out / "processor_config.json").read_text())["clip"] is True
    assert load_tokenizer(out).clip is True


# ------------------------------------------------------------------- corrupted files
@pytest.fixture(scope="module")
def saved_fast(pusht_chunks, tmp_path_factory):
    return FASTTokenizer().fit(pusht_chunks.train).save(tmp_path_factory.mktemp("fast") / "tok")


def _edit_json(name, **changes):
    def edit(folder):
        config = json.loads((folder / name).read_text())
        for key, value in changes.items():
            if value is _DELETE:
                del config[key]
            else:
                config[key] = value
        (folder / name).write_text(json.dumps(config))

    return edit


def _write(name, content: bytes):
    def edit(folder):
        (folder / name).write_bytes(content)

    return edit


def _edit_params(**changes):
    def edit(folder):
        config = json.loads((folder / "actok_tokenizer.json").read_text())
        config["params"].update(changes)
        (folder / "actok_tokenizer.json").write_text(json.dumps(config))

    return edit


_DELETE = object()
PC, TJ, AC = "processor_config.json", "tokenizer.json", "actok_tokenizer.json"
CORRUPTIONS = {
    "pc empty": (_write(PC, b""), PC, "is not valid JSON"),
    "pc truncated": (_write(PC, b'{"scale": 10.0, "min'), PC, "is not valid JSON"),
    "pc binary": (_write(PC, b"\xff\xfe\x00garbage"), PC, "is not a text file (not UTF-8)"),
    "pc list": (_write(PC, b"[1, 2]"), PC, "must hold a JSON object, not a JSON array"),
    "pc scale string": (_edit_json(PC, scale="10"), PC, "scale must be a finite number in (0, 1000000], got '10'"),
    "pc scale negative": (_edit_json(PC, scale=-1.0), PC, "scale must be a finite number in (0, 1000000]"),
    "pc scale nan": (
        _write(PC, b'{"scale": NaN, "min_token": -32}'),
        PC,
        "scale must be a finite number in (0, 1000000]",
    ),
    "pc scale missing": (_edit_json(PC, scale=_DELETE), PC, "lacks the field 'scale'"),
    "pc min_token float": (_edit_json(PC, min_token=1.5), PC, "min_token must be an integer, got 1.5"),
    "pc min_token bool": (_edit_json(PC, min_token=True), PC, "min_token must be an integer, got True"),
    "pc max_token string": (_edit_json(PC, max_token="32"), PC, "max_token must be an integer or null"),
    "pc max_token below": (_edit_json(PC, max_token=-40), PC, "max_token -40 must be in [min_token"),
    "pc horizon zero": (_edit_json(PC, time_horizon=0), PC, "time_horizon must be an integer >= 1 or null"),
    "pc action_dim list": (_edit_json(PC, action_dim=[2]), PC, "action_dim must be an integer >= 1 or null"),
    "pc vocab_size bool": (_edit_json(PC, vocab_size=True), PC, "vocab_size must be an integer >= 1 or null"),
    "pc clip string": (_edit_json(PC, clip="yes"), PC, "clip must be True or False, got 'yes'"),
    "tj empty": (_write(TJ, b""), TJ, "is not a readable BPE tokenizer file"),
    "tj truncated": (lambda f: (f / TJ).write_text((f / TJ).read_text()[:500]), TJ, "is not a readable BPE tokenizer"),
    "tj binary": (_write(TJ, b"\x00\xff\x13garbage"), TJ, "is not a readable BPE tokenizer file"),
    "tj not a tokenizer": (_write(TJ, b'{"hello": 1}'), TJ, "is not a readable BPE tokenizer file"),
    "tj a directory": (lambda f: ((f / TJ).unlink(), (f / TJ).mkdir()), TJ, "is missing"),
    "ac params mismatch": (_edit_params(scale=5.0), AC, "disagree on scale (5.0 vs 10.0)"),
    "ac clip mismatch": (_edit_params(clip=True), AC, "disagree on clip (True vs False)"),
    "ac clip wrong type": (_edit_params(clip="false"), AC, "clip must be True or False, got 'false'"),
    "ac unknown param": (_edit_params(bins=3), AC, "unknown FAST parameter 'bins'"),
    "ac params not object": (_edit_json(AC, params=[10.0]), AC, "params must be an object"),
    "ac horizon mismatch": (_edit_json(AC, horizon=12), AC, "disagree on time_horizon (12 vs 10)"),
    "ac horizon wrong type": (_edit_json(AC, horizon="10"), AC, "horizon must be an integer in [1, 16777216]"),
    "ac state mismatch": (_edit_json(AC, state={"min_token": 0, "max_token": 32}), AC, "disagree on min_token"),
    "ac vocab_size wrong": (_edit_json(AC, vocab_size=7), AC, "vocab_size 7 is not the tokenizer's"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_every_corrupted_file_is_one_clear_error_naming_it(saved_fast, tmp_path, case):
    edit, name, message = CORRUPTIONS[case]
    folder = tmp_path / "tok"
    shutil.copytree(saved_fast, folder)
    shutil.rmtree(folder / "bpe_tokenizer")  # so a corrupted tokenizer.json is not replaced by the subfolder's
    edit(folder)
    with pytest.raises(ActokError) as err:
        load_tokenizer(folder)
    text = str(err.value)
    assert message in text and name in text and "\n" not in text


@pytest.mark.parametrize(
    "content,message",
    [(b"{not json", "is not valid JSON"), (b'{"tokenizer": "binning", "params": {}}', "names the tokenizer 'binning'")],
)
def test_fast_load_reads_actok_tokenizer_json_itself(saved_fast, tmp_path, content, message):
    folder = tmp_path / "tok"
    shutil.copytree(saved_fast, folder)
    (folder / AC).write_bytes(content)
    with pytest.raises(ActokError, match=message):
        FASTTokenizer.load(folder)


def test_wavelet_folder_errors_name_the_file(pusht_chunks, tmp_path):
    from actok import create_tokenizer

    folder = create_tokenizer("wavelet", clip=True).fit(pusht_chunks.train).save(tmp_path / "w")
    assert load_tokenizer(folder).clip is True
    (folder / TJ).write_text("{}")
    with pytest.raises(ActokError, match=r"tokenizer\.json is not a readable BPE tokenizer file"):
        load_tokenizer(folder)
    config = json.loads((folder / AC).read_text())
    config["state"]["max_token"] = "32"
    (folder / AC).write_text(json.dumps(config))
    with pytest.raises(ActokError, match=r"actok_tokenizer\.json: max_token must be an integer, got '32'"):
        load_tokenizer(folder)


def test_compiled_and_library_encode_agree_on_rows_beyond_the_tables(g1_fast):
    """Code points beyond the compiled loops' tables (above U+FFFF) are encoded through the library, in place."""
    tok, h, d = g1_fast, g1_fast.horizon, g1_fast.action_dim
    x = np.zeros((3, h, d))
    x[1, :, 0] = (0x10400 + tok.min_token) / (tok.scale * math.sqrt(h))
    if tok.codec.encode_tables is not None:
        assert tok.codec.encode_tables.classes.shape[0] == kernels.TABLE_CODE_POINTS
    ids = quietly(tok.encode, x)
    plain = plain_of(tok)
    assert ids == [plain.encode_one(c) for c in x]


def test_clip_must_be_a_bool():
    with pytest.raises(ActokError, match="clip must be True or False, got 'yes'"):
        FASTTokenizer(clip="yes")
