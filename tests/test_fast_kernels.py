"""The compiled FAST loops against the `tokenizers` library they replace: same ids, same reconstructions.

FAST's encode/decode run through numba loops when numba is importable; the library path is the reference here
(and FAST's fallback). Beyond FAST strings, the encode loop is checked on text with a BPE trained on text, which
exercises every branch of the GPT-2 split (contractions, optional spaces, whitespace look-ahead) and of the merge
order (runs of one symbol, adjacent equal merges)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import dataset_root
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import ByteLevelBPETokenizer, Tokenizer
from tokenizers.trainers import BpeTrainer

from actok import FASTTokenizer
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks
from actok.errors import ActokWarning
from actok.tokenizers import _fast_kernels as kernels
from actok.tokenizers._bytelevel import symbols_to_strings

pytestmark = pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed")


def library_encode(tok: FASTTokenizer, chunks: np.ndarray) -> list[list[int]]:
    codes = tok.codec.code_points(tok.transform(tok._input(chunks)), tok.clip)[0]
    return [e.ids for e in tok.bpe.encode_batch_fast(symbols_to_strings(codes))]


def quiet_encode(tok: FASTTokenizer, chunks: np.ndarray) -> list[list[int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ActokWarning)  # symbols beyond the range dropped, as the library drops them
        return tok.encode(chunks)


def without_kernels(tok: FASTTokenizer, monkeypatch) -> FASTTokenizer:
    monkeypatch.setattr(kernels, "numba_available", lambda: False)
    tok._prepare()
    assert tok.codec.encode_tables is None
    return tok


def text_bpe(corpus: list[str], vocab_size: int = 400) -> Tokenizer:
    bpe = ByteLevelBPETokenizer()
    trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=[])
    bpe._tokenizer.train_from_iterator(corpus, trainer=trainer)
    return bpe._tokenizer


def kernel_encode_text(bpe: Tokenizer, texts: list[str]) -> list[list[int]]:
    points = [[ord(c) for c in t] for t in texts]
    top = max((max(p) for p in points if p), default=0)
    tables = kernels.EncodeTables.build(bpe.to_str(), bpe.pre_tokenizer, top + 1)
    assert tables is not None
    width = max(1, max(map(len, points)))
    codes = np.zeros((len(points), width), dtype=np.int32)
    for i, p in enumerate(points):
        codes[i, : len(p)] = p
    lengths = np.array([len(p) for p in points], dtype=np.int64)
    return kernels.split_rows(*kernels.encode_code_points(codes, tables, lengths)[:2])


# Characters chosen to hit the GPT-2 split's corner cases: contraction letters after an apostrophe, spaces before
# letters/numbers/punctuation, runs of other whitespace, non-ASCII letters and numbers (2- and 3-byte UTF-8).
TRICKY = "'strevlmdaxz17#.- \t\n\r\u00a0\u2003éßΩж٣½\u0300\u1c89"
CORPUS = [
    "it's what we've said: they'll say I'm done, you're right, he'd go " * 3,
    "aaaa bbbb aaaaaaa xyxyxyxy  spaces   and\ttabs\n\nnew lines 1234 5678 ###!!! éé ßß ΩΩ ж ٣٣ ½½",
    "7777777777777777777777766666677777777777777787777777777777777777777777777777777777777",
    "'s't're've'm'll'd ''' 'x 's's 're're " * 20,
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


@pytest.fixture(scope="module")
def bpe_on_text():
    return text_bpe(CORPUS + ["".join(np.random.default_rng(i).choice(list(TRICKY), 200)) for i in range(60)])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,horizon,kw,scale,vocab",
    [
        ("pusht", 10, {"sample_fraction": 1.0}, 10.0, 1024),
        ("unitree_g1_pickbottle", 30, {"sample_fraction": 0.5}, 10.0, 1024),
        ("reachy2_apple_storage", 30, {"sample_fraction": 1.0}, 50.0, 4096),
        ("robosuite_panda", 20, {"sample_fraction": 1.0}, 5.0, 512),
    ],
)
def test_encode_and_decode_identical_to_library_on_every_dataset(name, horizon, kw, scale, vocab, monkeypatch):
    chunks = build_chunks(LeRobotDatasetReader(dataset_root(name)), ChunkConfig(action_horizon=horizon, **kw))
    tok = FASTTokenizer(scale=scale, vocab_size=vocab).fit(chunks.train)
    assert tok.codec.encode_tables is not None
    rng = np.random.default_rng(0)
    cases = []
    clipped = copy.copy(tok)
    clipped.clip = True
    for split in (chunks.train, chunks.holdout):
        ids = tok.encode(split)
        assert ids == library_encode(tok, split)
        for t in (tok, clipped):  # beyond the range: byte tokens (and dropped symbols), or clipped
            assert quiet_encode(t, split * 3.0) == library_encode(t, split * 3.0)
            assert quiet_encode(t, split.astype(np.float32) * 3) == library_encode(t, split.astype(np.float32) * 3)
        corrupted = [
            [int(rng.integers(-5, tok.codec.n_vocab + 5)) if rng.random() < 0.05 else i for i in s] for s in ids
        ]
        cases += [(x, policy) for x in (ids, corrupted) for policy in ("zeros", "relaxed")]
    fast = [tok.decode(x, return_valid=True, on_invalid=policy) for x, policy in cases]
    plain = without_kernels(copy.copy(tok), monkeypatch)
    for (x, policy), (out, valid) in zip(cases, fast, strict=True):
        out_plain, valid_plain = plain.decode(x, return_valid=True, on_invalid=policy)
        assert np.array_equal(valid, valid_plain) and np.array_equal(out, out_plain)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scale=st.floats(-8, 8),
    seed=st.integers(0, 2**31 - 1),
    clip=st.booleans(),
    float32=st.booleans(),
)
def test_fuzzed_chunks_encode_as_the_library(g1_chunks, scale, seed, clip, float32):
    """Magnitudes from 1e-2 to 1e2 times the data (code points up to far beyond the compiled loops' tables),
    clipped or not, float32 or float64."""
    tok = copy.copy(_g1_fast(g1_chunks))
    tok.clip = clip
    rng = np.random.default_rng(seed)
    chunks = g1_chunks.holdout[rng.choice(len(g1_chunks.holdout), 8)] * 10.0 ** (scale / 4)
    chunks += rng.normal(0, 10.0 ** (scale / 4), chunks.shape) * (rng.random() < 0.5)
    chunks = chunks.astype(np.float32 if float32 else np.float64)
    assert quiet_encode(tok, chunks) == library_encode(tok, chunks)


_CACHE: dict[str, FASTTokenizer] = {}


def _g1_fast(g1_chunks) -> FASTTokenizer:
    if "g1" not in _CACHE:
        _CACHE["g1"] = FASTTokenizer().fit(g1_chunks.train)
    return _CACHE["g1"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(alphabet=TRICKY, max_size=60), min_size=1, max_size=6))
def test_fuzzed_text_encodes_as_the_library(bpe_on_text, texts):
    assert kernel_encode_text(bpe_on_text, texts) == [e.ids for e in bpe_on_text.encode_batch(texts)]


def test_the_text_bpe_merges_contractions(bpe_on_text):
    """Otherwise splitting them off as words would not change any id, and the tests here could not see it."""
    vocab = bpe_on_text.get_vocab()
    assert all(c in vocab for c in CONTRACTIONS)


def test_long_runs_and_repeated_pairs_encode_as_the_library(bpe_on_text):
    texts = ["7" * n for n in range(1, 300, 7)] + ["xy" * n for n in range(1, 40)] + ["a" * n + "b" for n in range(50)]
    texts += ["6" + "7" * n + "6" for n in range(1, 200, 3)] + ["'s" * n + " " * n for n in range(1, 20)]
    texts += [f"x{c}{c}a {c}'{c[1:]}" for c in CONTRACTIONS]
    assert kernel_encode_text(bpe_on_text, texts) == [e.ids for e in bpe_on_text.encode_batch(texts)]


def test_character_classes_match_the_library_pre_tokenizer(bpe_on_text):
    """Every code point up to U+3100 (FAST's alphabets stay far below), next to letters, digits, punctuation and
    spaces: the split and therefore the ids match the library's."""
    points = [cp for cp in range(0x3100) if not 0xD800 <= cp < 0xE000]
    texts = [p.format(chr(cp)) for cp in points for p in ("a{}a", "1{}1", "#{}#", " {} ", "{0}{0}{0} x")]
    assert kernel_encode_text(bpe_on_text, texts) == [e.ids for e in bpe_on_text.encode_batch(texts)]


def test_unsupported_tokenizer_files_fall_back_to_the_library(bpe_on_text):
    from tokenizers import AddedToken, normalizers

    with_added = Tokenizer.from_str(bpe_on_text.to_str())
    with_added.add_tokens([AddedToken("77", special=False)])
    with_normalizer = Tokenizer.from_str(bpe_on_text.to_str())
    with_normalizer.normalizer = normalizers.Lowercase()
    for bpe in (with_added, with_normalizer):
        assert kernels.EncodeTables.build(bpe.to_str(), bpe.pre_tokenizer, 200) is None


def test_without_numba_fast_uses_the_library_with_the_same_results(pusht_chunks, monkeypatch):
    tok = FASTTokenizer().fit(pusht_chunks.train)
    ids = tok.encode(pusht_chunks.holdout)
    decoded = tok.decode(ids)
    plain = without_kernels(tok, monkeypatch)
    assert plain.encode(pusht_chunks.holdout) == ids
    assert np.array_equal(plain.decode(ids), decoded)


def test_row_blocks_cover_every_row_once():
    for n in (0, 1, 255, 256, 513, 10_000):
        blocks = kernels.row_blocks(n)
        covered = np.concatenate([np.arange(n)[b] for b in blocks]) if blocks else np.array([])
        assert np.array_equal(covered, np.arange(n))


_FORKED: dict[str, object] = {}


def _encode_in_child() -> list[list[int]]:
    return _FORKED["tok"].encode(_FORKED["chunks"])


def test_threads_setting_and_fork_give_the_same_ids(g1_chunks, monkeypatch):
    """ACTOK_NUM_THREADS=1 and a forked child (e.g. a data-loader worker, after the parent's pool started) encode
    exactly as the threaded parent, and the child does not hang on the threads it did not inherit."""
    import multiprocessing

    monkeypatch.setenv("ACTOK_NUM_THREADS", "2")
    tok = _g1_fast(g1_chunks)
    chunks = np.concatenate([g1_chunks.train] * (1 + 1200 // len(g1_chunks.train)))[:1200]
    assert len(kernels.row_blocks(len(chunks))) == 2
    threaded = tok.encode(chunks)
    monkeypatch.setenv("ACTOK_NUM_THREADS", "1")
    assert len(kernels.row_blocks(len(chunks))) == 1
    assert tok.encode(chunks) == threaded
    monkeypatch.setenv("ACTOK_NUM_THREADS", "2")
    _FORKED.update(tok=tok, chunks=chunks)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_encode_in_child).get(timeout=120) == threaded
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("ACTOK_NUM_THREADS")
    assert kernels.num_threads() == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_decode_of_arbitrary_ids_matches_the_numpy_path(g1_chunks, monkeypatch, seed):
    """Random id sequences over the whole vocabulary (and beyond): validity, lengths and values match the numpy
    path."""
    tok = _g1_fast(g1_chunks)
    rng = np.random.default_rng(seed)
    ids = [rng.integers(-3, tok.codec.n_vocab + 3, rng.integers(0, 120)).tolist() for _ in range(40)]
    ids += tok.encode(g1_chunks.holdout[:20])
    fast = [tok.decode(ids, return_valid=True, on_invalid=p) for p in ("zeros", "relaxed")]
    plain = without_kernels(copy.copy(tok), monkeypatch)
    for policy, (out, valid) in zip(("zeros", "relaxed"), fast, strict=True):
        out_plain, valid_plain = plain.decode(ids, return_valid=True, on_invalid=policy)
        assert np.array_equal(valid, valid_plain) and np.array_equal(out, out_plain)


ENCODE_SMOOTH_CHUNKS = """
import json, numpy as np
from actok import FASTTokenizer
x = np.cumsum(np.random.default_rng(0).normal(size=(300, 10, 2)) * 0.1, axis=1)
print(json.dumps(FASTTokenizer().fit(x).encode(x * 3)))
"""


@pytest.mark.slow
def test_loops_compiled_without_the_disk_cache_give_the_same_ids():
    """The path taken where numba has no writable cache location (read-only install, no writable home): the
    loops are compiled for the process only, and give the same ids."""
    no_cache = (
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []  # as if no location were writable\n"
        "from actok.tokenizers import _bytelevel_bpe as compiled\n"
        "assert type(compiled.encode_coefficient_rows._cache).__name__ == 'NullCache'\n"
    )
    ids = [
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for code in (no_cache + ENCODE_SMOOTH_CHUNKS, ENCODE_SMOOTH_CHUNKS)
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 300


def test_row_blocks_run_on_the_pool_with_one_blas_thread(monkeypatch):
    """Several row blocks run on the codec's thread pool with BLAS held to one thread (its own threads would
    compete with the pool's for the cores), in order, and BLAS gets its threads back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    monkeypatch.setenv("ACTOK_NUM_THREADS", "2")
    before = blas_threads()
    assert before, "numpy's BLAS is visible to threadpoolctl"
    seen = kernels.map_row_blocks(lambda rows: (rows, blas_threads()), 1000)
    assert [rows for rows, _ in seen] == [slice(0, 500), slice(500, 1000)]
    assert all(threads == [1] * len(before) for _, threads in seen)
    assert blas_threads() == before
    assert kernels.map_row_blocks(lambda rows: rows, 100) == [slice(0, 100)]  # one block: this thread
