"""FAST's batch loops around the compiled byte-level BPE encoder and id decoder (`_bytelevel_bpe`): their tables,
row blocks over threads, and the Python-side entry points.

The `tokenizers` library spends ~100 ns per symbol merging the long words FAST strings contain (a chunk's
high-frequency zeros form one "word" of hundreds of identical characters, which its cache skips), so a batch
encode through it is only ~3x faster than the reference's per-chunk loop. The compiled encoder produces the same
ids as the library, step for step, but much faster (how: `_bytelevel_bpe`).

`EncodeTables.build` returns None for any tokenizer file the encoder would not reproduce exactly (another model or
pre-tokenizer, added tokens, merges out of order, ...); FAST then uses the library. Equality with the library is
tested on every bundled dataset, on fuzzed chunks and on fuzzed text with a BPE trained on text.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from actok.tokenizers._bytelevel import PAIR_HASH, TABLE_CODE_POINTS, byte_symbols, char_classes, table_bytes

logger = logging.getLogger(__name__)


@cache
def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception as err:  # ImportError, or a numba that does not support this numpy
        logger.info("numba is not usable (%s): FAST encodes and decodes through the tokenizers library", err)
        return False
    return True


@dataclass
class EncodeTables:
    """Everything the encode loop needs, for code points `0 .. n_code_points - 1`."""

    classes: np.ndarray  # [P] int8
    n_bytes: np.ndarray  # [P] int8, UTF-8 length
    byte_ids: np.ndarray  # [P, 4] int32, vocabulary id of each byte's symbol (-1: not in the vocabulary)
    hash_keys: np.ndarray  # [S] int64, left * n_vocab + right (-1: empty slot)
    hash_ranks: np.ndarray  # [S] int32
    hash_shift: int
    new_ids: np.ndarray  # [M] int32, the token each merge makes
    n_vocab: int

    def as_tuple(self) -> tuple:
        """The tables in the order the compiled encoder reads them."""
        return (self.classes, self.n_bytes, self.byte_ids, self.hash_keys, self.hash_ranks, self.hash_shift,
                self.new_ids, self.n_vocab)  # fmt: skip

    @classmethod
    def build(cls, tokenizer_json: str, pre_tokenizer, n_code_points: int = TABLE_CODE_POINTS) -> EncodeTables | None:
        """Tables for a `tokenizers` BPE (its JSON), or None when the compiled loop would not reproduce it."""
        spec = json.loads(tokenizer_json)
        reason = _unsupported(spec)
        if reason:
            logger.info("FAST encodes through the tokenizers library: %s", reason)
            return None
        model = spec["model"]
        vocab: dict[str, int] = model["vocab"]
        merges = MergeTables.build(model)
        if isinstance(merges, str):
            logger.info("FAST encodes through the tokenizers library: %s", merges)
            return None
        symbol_ids = np.array([vocab.get(s, -1) for s in byte_symbols()] + [-1], dtype=np.int32)
        if model.get("unk_token") is not None and (symbol_ids[:256] < 0).any():
            logger.info("FAST encodes through the tokenizers library: some byte symbols would be unknown tokens")
            return None
        n_bytes, raw = table_bytes(n_code_points)
        return cls(
            char_classes(n_code_points, pre_tokenizer),
            n_bytes,
            symbol_ids[raw],  # raw == -1 (no such byte) reads the trailing -1
            merges.hash_keys,
            merges.hash_ranks,
            merges.hash_shift,
            merges.new_ids,
            merges.n_vocab,
        )


@dataclass
class MergeTables:
    """A BPE's merges as the compiled loops read them: pair (left * n_vocab + right) -> rank in an open-addressing
    hash, and the token each rank makes."""

    hash_keys: np.ndarray  # [S] int64, left * n_vocab + right (-1: empty slot)
    hash_ranks: np.ndarray  # [S] int32
    hash_shift: int
    new_ids: np.ndarray  # [M] int32, the token each merge makes
    n_vocab: int

    @classmethod
    def build(cls, model: dict) -> MergeTables | str:
        """The tables of a BPE model (its JSON object), or why the compiled loops would not reproduce it."""
        vocab: dict[str, int] = model["vocab"]
        merges = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]
        n_vocab = max(vocab.values()) + 1
        left = np.empty(len(merges), np.int64)
        right = np.empty(len(merges), np.int64)
        new = np.empty(len(merges), np.int32)
        made_by = {}
        for rank, (a, b) in enumerate(merges):
            if a not in vocab or b not in vocab or a + b not in vocab:
                return f"merge {a!r} {b!r} is not in the vocabulary"
            # Ranks must only grow while a word is merged: a merge's inputs are made by earlier merges.
            if made_by.get(a, -1) >= rank or made_by.get(b, -1) >= rank or a + b in made_by:
                return "merges are not in creation order"
            made_by[a + b] = rank
            left[rank], right[rank], new[rank] = vocab[a], vocab[b], vocab[a + b]
        keys = left * n_vocab + right
        if len(np.unique(keys)) != len(keys):
            return "a pair is merged twice"
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        hash_keys, hash_ranks = _build_hash(keys, np.arange(len(keys), dtype=np.int32), bits)
        return cls(hash_keys, hash_ranks, 64 - bits, new, n_vocab)

    def as_tuple(self) -> tuple:
        return self.hash_keys, self.hash_ranks, self.hash_shift, self.new_ids, self.n_vocab


@dataclass
class SymbolEncodeTables:
    """What the compiled encoder of a BPE over code points without a pre-tokenizer (klt's) needs: the token of
    each alphabet symbol `chr(first_symbol + k)` and the merges."""

    symbol_ids: np.ndarray  # [A] int32
    merges: MergeTables

    @classmethod
    def build(cls, tokenizer_json: str, first_symbol: int, alphabet_size: int) -> SymbolEncodeTables | None:
        """Tables for a `tokenizers` BPE without pre-tokenizer (its JSON) whose vocabulary holds every symbol of
        the alphabet, or None when the compiled loop would not reproduce it (the library encodes then)."""
        spec = json.loads(tokenizer_json)
        reason = _unsupported(spec, pre_tokenizer=None)
        vocab: dict[str, int] = (spec.get("model") or {}).get("vocab") or {}
        symbol_ids = np.array([vocab.get(chr(first_symbol + k), -1) for k in range(alphabet_size)], np.int32)
        if reason is None and (symbol_ids < 0).any():
            reason = "an alphabet symbol is not in the vocabulary"
        merges = reason or MergeTables.build(spec["model"])
        if isinstance(merges, str):
            logger.info("klt encodes through the tokenizers library: %s", merges)
            return None
        return cls(symbol_ids, merges)


def _unsupported(spec: dict, pre_tokenizer: str | None = "ByteLevel") -> str | None:
    """Why the compiled loop would not give the library's ids for this tokenizer (None: it would); `pre_tokenizer`:
    the one the loop applies (the GPT-2 ByteLevel split, or None: each row is one word)."""
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE":
        return f"model type {model.get('type')!r} is not BPE"
    if model.get("dropout") not in (None, 0, 0.0):
        return "BPE dropout is set"
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "the BPE uses subword prefixes/suffixes"
    if model.get("ignore_merges"):
        return "the BPE sets ignore_merges"
    if model.get("byte_fallback"):
        return "the BPE sets byte_fallback"
    if spec.get("normalizer") is not None:
        return "the tokenizer has a normalizer"
    if pre_tokenizer is None and spec.get("pre_tokenizer") is not None:
        return "the tokenizer has a pre-tokenizer"
    if pre_tokenizer is not None and (
        pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True)
    ):
        return "the pre-tokenizer is not ByteLevel(add_prefix_space=False, use_regex=True)"
    if spec.get("added_tokens"):
        return "the tokenizer has added tokens"
    post = spec.get("post_processor")
    if post is not None and (pre_tokenizer is None or post.get("type") != "ByteLevel"):
        return f"post-processor {post.get('type')!r} may add tokens"
    if spec.get("truncation") or spec.get("padding"):
        return "truncation or padding is set"
    return None


def _build_hash(keys: np.ndarray, ranks: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table (linear probing) from pair keys to merge ranks, hashed as the encode loop hashes."""
    size = 1 << bits
    table_keys = np.full(size, -1, np.int64)
    table_ranks = np.full(size, -1, np.int32)
    for key, rank in zip(keys.tolist(), ranks.tolist(), strict=True):
        h = ((key * PAIR_HASH) & (2**64 - 1)) >> (64 - bits)
        while table_keys[h] >= 0:
            h = (h + 1) & (size - 1)
        table_keys[h], table_ranks[h] = key, rank
    return table_keys, table_ranks


class Kernels(NamedTuple):
    """The compiled loops (`_bytelevel_bpe`)."""

    encode_code_points: Callable
    encode_coefficients: Callable
    decode: Callable
    encode_symbols: Callable


@cache
def _kernels() -> Kernels:
    """The compiled loops, loaded from numba's on-disk cache (compiled and cached on first use)."""
    from actok.tokenizers import _bytelevel_bpe as compiled

    return Kernels(
        compiled.encode_code_point_rows,
        compiled.encode_coefficient_rows,
        compiled.ids_to_coefficients,
        compiled.encode_symbol_rows,
    )


def _coefficients(coeff: np.ndarray) -> np.ndarray:
    """Coefficients as the loops read them: float32 stays float32 (the reference rounds in the input's dtype)."""
    return np.ascontiguousarray(coeff, dtype=np.float32 if coeff.dtype == np.float32 else np.float64)


def encode_code_points(
    codes: np.ndarray, tables: EncodeTables, lengths: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of code points `[N, L]` (the first `lengths[i]` of row i; all by default) -> (flat ids, offsets, row
    flags: TOO_LARGE, DROPPED)."""
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    if lengths is None:
        lengths = np.full(len(codes), codes.shape[1], dtype=np.int64)
    return _kernels().encode_code_points(codes, lengths.astype(np.int64), tables.as_tuple())


def encode_symbols(symbols: np.ndarray, offsets: np.ndarray, tables: SymbolEncodeTables) -> list[list[int]]:
    """Rows of alphabet indices (flat `symbols`, row `offsets` `[N + 1]`) -> ids per row, through the compiled BPE
    over code points (`SymbolEncodeTables`), on row blocks spread over the CPU cores for large batches."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    return encode_symbol_blocks(lambda rows: (symbols, offsets[rows.start : rows.stop + 1]), len(offsets) - 1, tables)


def encode_symbol_blocks(spell: Callable, n: int, tables: SymbolEncodeTables) -> list[list[int]]:
    """Ids per row of `n` rows whose symbols `spell(rows)` gives for a slice of rows (flat alphabet indices int32,
    and the rows' offsets into them `[len + 1]`), spelled and BPE-encoded on row blocks spread over the CPU cores
    for large batches (`spell` runs in the block's thread, its BLAS products on one thread: `map_row_blocks`)."""

    def work(rows: slice) -> tuple[np.ndarray, np.ndarray]:
        symbols, offsets = spell(rows)
        return _kernels().encode_symbols(symbols, offsets, tables.symbol_ids, *tables.merges.as_tuple())

    return [row for flat, out_offsets in map_row_blocks(work, n) for row in split_rows(flat, out_offsets)]


def map_row_blocks(work: Callable, n: int, min_rows: int = 256) -> list:
    """`work(rows)` for each of `row_blocks(n, min_rows)`, in order: on this process's thread pool when there are several,
    with BLAS limited to one thread meanwhile (each block's matrix products run in its own thread; BLAS threads
    of their own would compete with the pool for the same cores)."""
    parts = row_blocks(n, min_rows)
    if len(parts) == 1:
        return [work(parts[0])]
    with _one_blas_thread():
        return list(_pool().map(work, parts))


@cache
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, made once (it scans the process's libraries)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """A context in which the BLAS libraries loaded so far use one thread each."""
    return _blas_controller().limit(limits=1, user_api="blas")


def encode_chunks(
    chunks: np.ndarray, transform, scale: float, min_token: int, emit: np.ndarray, clip: bool, tables: EncodeTables
) -> tuple[list[list[int]], np.ndarray]:
    """Chunks `[N, H, D]` -> (ids per chunk, row flags `[N]`): `transform(block, workers=1)` (coefficients
    `[n, C]`), then quantization + BPE, on row blocks spread over the CPU cores for large batches (the loops
    release the GIL). Rows flagged TOO_LARGE are empty: the caller encodes them another way."""

    def work(rows: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # no Python objects are made here
        out = []
        for start in range(rows.start, rows.stop, SUB_BLOCK):  # coefficients used while still in cache
            sub = slice(start, min(start + SUB_BLOCK, rows.stop))
            coeff = _coefficients(transform(chunks[sub], workers=1))
            args = (coeff.dtype.type(scale), int(min_token), emit, bool(clip), tables.as_tuple())
            out.append(_kernels().encode_coefficients(coeff, *args))
        return out

    pieces = [piece for block in map_row_blocks(work, len(chunks)) for piece in block]
    ids = [row for flat, offsets, _ in pieces for row in split_rows(flat, offsets)]
    return ids, np.concatenate([flags for *_, flags in pieces]) if pieces else np.zeros(0, np.int8)


SUB_BLOCK = 128  # rows transformed and encoded at a time inside a block


def num_threads() -> int:
    """Threads for FAST's batch loops and transforms: `ACTOK_NUM_THREADS` if set; 1 when
    `TOKENIZERS_PARALLELISM` is off (as users set it inside data-loader workers); else the usable CPU cores."""
    env = os.environ.get("ACTOK_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            logger.warning("ignoring ACTOK_NUM_THREADS=%r: not an integer", env)
    if os.environ.get("TOKENIZERS_PARALLELISM", "").strip().lower() in ("0", "false", "off", "no"):
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def row_blocks(n: int, min_rows: int = 256) -> list[slice]:
    """Contiguous row ranges, one per thread, each at least `min_rows` long (a single range for small batches)."""
    k = max(1, min(num_threads(), n // min_rows))
    bounds = np.linspace(0, n, k + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in pairwise(bounds)]


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    """This process's pool (a pool inherited through fork, e.g. by data-loader workers, has no threads)."""
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS[pid] = ThreadPoolExecutor(max_workers=max(2, num_threads()), thread_name_prefix="actok-fast")
    return _POOLS[pid]


def decode_ids(
    flat: np.ndarray, lengths: np.ndarray, tables: DecodeTables, n_coeff: int, finish=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat int64 ids (-1: not an id) + lengths -> (coefficients `[N, n_coeff]`, symbols per row, rows with only
    known ids, rows holding a partial-character token, whose symbols the caller decodes from their bytes), on row
    blocks over the CPU cores for large batches; `finish(rows, *block arrays)` runs on each block right after, in
    the same thread."""
    t = tables
    n = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = (np.zeros((n, n_coeff)), np.empty(n, np.int64), np.empty(n, bool), np.empty(n, bool))

    def work(rows: slice) -> None:
        part = flat[offsets[rows.start] : offsets[rows.stop]]
        block = tuple(array[rows] for array in out)
        _kernels().decode(part, lengths[rows], t.n_vocab, t.whole, t.start, t.size, t.values, t.zero, *block)
        if finish is not None:
            finish(rows, *block)

    map_row_blocks(work, n)
    return out


@dataclass
class DecodeTables:
    """Per token: whether it is whole UTF-8 characters, and where its scaled coefficient values start (and how
    many) in `values`; `zero`: whether all its values are 0.0."""

    n_vocab: int
    whole: np.ndarray
    start: np.ndarray
    size: np.ndarray
    values: np.ndarray
    zero: np.ndarray

    @classmethod
    def build(cls, whole, start, size, points, min_token: int, scale: float) -> DecodeTables:
        values = (points + min_token) / scale  # the same division the reference makes
        spelled = np.flatnonzero(size > 0)
        by_start = spelled[np.argsort(start[spelled])]
        owner = np.repeat(by_start, size[by_start])  # the token each entry of `points` belongs to
        zero = np.ones(len(size), dtype=bool)
        zero[owner[values != 0.0]] = False
        return cls(len(whole), whole, start, size, values, zero)


def split_rows(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    """Flat ids + row offsets -> one Python list per row."""
    values, bounds = flat.tolist(), offsets.tolist()
    return [values[a:b] for a, b in pairwise(bounds)]
