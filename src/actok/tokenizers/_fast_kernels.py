"""Compiled batch loops for FAST: quantization + byte-level BPE encode, and id -> coefficient decode.

The `tokenizers` library spends ~100 ns per symbol merging the long words FAST strings contain (a chunk's
high-frequency zeros form one "word" of hundreds of identical characters, which its cache skips), so a batch
encode through it is only ~3x faster than the reference's per-chunk loop. These loops produce the same ids as
the library, step for step, but much faster:

- the GPT-2 split the ByteLevel pre-tokenizer applies is a small state machine over per-code-point classes;
- a word is kept as runs of one token (run-length nodes), so a run of n identical symbols costs O(log n) merges
  instead of n: pairing a run left to right is exactly what the library's (rank, position) order does to it;
- merges are taken in rank order from per-rank buckets (ranks only grow while a word is merged, because a merge's
  inputs are always made by earlier merges -- checked when the tables are built).

`EncodeTables.build` returns None for any tokenizer file these loops would not reproduce exactly (another model or
pre-tokenizer, added tokens, merges out of order, ...); FAST then uses the library. Equality with the library is
tested on every bundled dataset, on fuzzed chunks and on fuzzed text with a BPE trained on text.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np

logger = logging.getLogger(__name__)

OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
TOO_LARGE, DROPPED = 1, 2  # flags of encoded rows
_FIB = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: Fibonacci hashing of (left, right) token pairs


@cache
def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception as err:  # ImportError, or a numba that does not support this numpy
        logger.info("numba is not usable (%s): FAST encodes and decodes through the tokenizers library", err)
        return False
    return True


def _char_classes(n: int, pre_tokenizer) -> np.ndarray:
    """Class of each code point `< n` as the GPT-2 pattern sees it (\\p{L}, \\p{N}, \\s, anything else).

    From Python's Unicode tables; code points those tables call unassigned (newer Unicode versions than this
    Python's may assign them) are asked of the tokenizer's own pre-tokenizer. The classes are the same for every
    tokenizer the loops accept (ByteLevel with the GPT-2 pattern), so they are computed once per process."""
    global _CLASSES
    done = len(_CLASSES)
    if n > done:
        grown = np.zeros(n, dtype=np.int8)
        grown[:done] = _CLASSES
        for cp in range(done, n):
            cat = unicodedata.category(chr(cp))
            if cp in (9, 10, 11, 12, 13, 0x85) or cat in ("Zs", "Zl", "Zp"):
                grown[cp] = SPACE
            elif cat[0] == "L":
                grown[cp] = LETTER
            elif cat[0] == "N":
                grown[cp] = NUMBER
            elif cat == "Cn":
                c = chr(cp)
                joins = [len(pre_tokenizer.pre_tokenize_str(p + c + p)) == 1 for p in ("a", "1", "#")]
                grown[cp] = LETTER if joins[0] else NUMBER if joins[1] else OTHER if joins[2] else SPACE
        _CLASSES = grown
    return _CLASSES[:n]


_CLASSES = np.zeros(0, dtype=np.int8)
#: Code points the encode loop has tables for (the Basic Multilingual Plane); rows with larger ones, which need
#: coefficients thousands of steps beyond any fitted range, go through the library.
TABLE_CODE_POINTS = 0x10000


def utf8_bytes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points `[...]` (below 0x110000) -> (UTF-8 length `[...]` int8, the bytes `[..., 4]` int16, -1 after the
    last), computed as `str.encode("utf-8", "surrogatepass")` would."""
    cp = np.asarray(points, dtype=np.int64)
    n_bytes = (1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)).astype(np.int8)
    lead = np.choose(n_bytes - 1, [cp, 0xC0 | (cp >> 6), 0xE0 | (cp >> 12), 0xF0 | (cp >> 18)])
    out = np.full((*cp.shape, 4), -1, dtype=np.int16)
    out[..., 0] = lead
    for j in range(1, 4):  # continuation bytes: 6 bits each, most significant first
        shift = 6 * (n_bytes.astype(np.int64) - 1 - j)
        out[..., j] = np.where(shift >= 0, 0x80 | ((cp >> np.maximum(shift, 0)) & 0x3F), -1)
    return n_bytes, out


@cache
def table_bytes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`utf8_bytes` of the code points `0 .. n - 1`, once per process (read-only)."""
    n_bytes, raw = utf8_bytes(np.arange(n))
    n_bytes.flags.writeable = raw.flags.writeable = False
    return n_bytes, raw


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
        merges = [m.split(" ", 1) if isinstance(m, str) else m for m in model["merges"]]
        n_vocab = max(vocab.values()) + 1
        left = np.empty(len(merges), np.int64)
        right = np.empty(len(merges), np.int64)
        new = np.empty(len(merges), np.int32)
        made_by = {}
        for rank, (a, b) in enumerate(merges):
            if a not in vocab or b not in vocab or a + b not in vocab:
                logger.info("FAST encodes through the tokenizers library: merge %r %r is not in the vocabulary", a, b)
                return None
            # Ranks must only grow while a word is merged: a merge's inputs are made by earlier merges.
            if made_by.get(a, -1) >= rank or made_by.get(b, -1) >= rank or a + b in made_by:
                logger.info("FAST encodes through the tokenizers library: merges are not in creation order")
                return None
            made_by[a + b] = rank
            left[rank], right[rank], new[rank] = vocab[a], vocab[b], vocab[a + b]
        keys = left * n_vocab + right
        if len(np.unique(keys)) != len(keys):
            logger.info("FAST encodes through the tokenizers library: a pair is merged twice")
            return None
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        hash_keys, hash_ranks = _build_hash(keys, np.arange(len(keys), dtype=np.int32), bits)
        symbol_ids = np.array([vocab.get(s, -1) for s in _byte_symbols()] + [-1], dtype=np.int32)
        if model.get("unk_token") is not None and (symbol_ids[:256] < 0).any():
            logger.info("FAST encodes through the tokenizers library: some byte symbols would be unknown tokens")
            return None
        n_bytes, raw = table_bytes(n_code_points)
        return cls(
            _char_classes(n_code_points, pre_tokenizer),
            n_bytes,
            symbol_ids[raw],  # raw == -1 (no such byte) reads the trailing -1
            hash_keys,
            hash_ranks,
            64 - bits,
            new,
            n_vocab,
        )


def _byte_symbols() -> tuple[str, ...]:
    from actok.tokenizers.fast import byte_symbols

    return byte_symbols()


def _unsupported(spec: dict) -> str | None:
    """Why the compiled loop would not give the library's ids for this tokenizer (None: it would)."""
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
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        return "the pre-tokenizer is not ByteLevel(add_prefix_space=False, use_regex=True)"
    if spec.get("added_tokens"):
        return "the tokenizer has added tokens"
    post = spec.get("post_processor")
    if post is not None and post.get("type") != "ByteLevel":
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
        h = ((key * _FIB) & (2**64 - 1)) >> (64 - bits)
        while table_keys[h] >= 0:
            h = (h + 1) & (size - 1)
        table_keys[h], table_ranks[h] = key, rank
    return table_keys, table_ranks


# Lowest set bit -> its index: multiply the isolated bit by a de Bruijn constant, read the top 6 bits.
_DEBRUIJN = 0x03F79D71B4CB0A89
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int32)
for _i in range(64):
    _DEBRUIJN_INDEX[(((1 << _i) * _DEBRUIJN) & (2**64 - 1)) >> 58] = _i


@cache
def _kernels():
    """The compiled loops, loaded from numba's on-disk cache (compiled and cached on first use). Where numba finds
    no writable cache location (read-only install, no writable home), they are compiled for this process only."""
    try:
        return _compile(cache=True)
    except RuntimeError as err:  # numba: "cannot cache function ...: no locator available"
        logger.info("FAST loops are compiled without numba's disk cache: %s", err)
        return _compile(cache=False)


def _compile(cache: bool):
    from numba import njit, uint64

    fib = uint64(_FIB)
    one = uint64(1)
    debruijn = uint64(_DEBRUIJN)
    debruijn_index = _DEBRUIJN_INDEX

    @njit(cache=cache, nogil=True)
    def bpe_encode(
        codes, lengths, coeff, scale, min_token, emit, clip,
        classes, n_bytes, byte_ids, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab,
    ):  # fmt: skip
        """Rows of code points -> (flat ids, row offsets [N + 1], flags [N]), as the library's ByteLevel BPE. With
        an empty `codes` array, the rows are quantized from `coeff` [N, C] on the fly.
        flags: TOO_LARGE, a code point beyond the tables (the row is left empty, for the library); DROPPED, a byte
        without a symbol in the vocabulary was dropped, as the library drops it."""
        from_coeff = codes.shape[0] == 0 and coeff.shape[0] > 0
        n, width = coeff.shape if from_coeff else codes.shape
        n_points = classes.shape[0]
        span = emit.shape[0] - 1
        row_buf = np.empty(width, np.int32)
        n_merges = new_ids.shape[0]
        mask = hash_keys.shape[0] - 1
        shift = uint64(hash_shift)
        cap = 4 * width + 4  # byte symbols in one row, at most
        tok = np.empty(2 * cap, np.int32)  # run-length nodes: token, count, doubly linked
        cnt = np.empty(2 * cap, np.int32)
        nxt = np.empty(2 * cap, np.int32)
        prv = np.empty(2 * cap, np.int32)
        e_next = np.empty(6 * cap + 8, np.int32)  # queued pairs: bucket chain, node code, the pair's tokens
        e_code = np.empty(6 * cap + 8, np.int32)
        e_left = np.empty(6 * cap + 8, np.int32)
        e_right = np.empty(6 * cap + 8, np.int32)
        head = np.full(n_merges, -1, np.int32)  # per rank: last queued pair
        n_words = (n_merges + 63) // 64
        bits = np.zeros(max(n_words, 1), np.uint64)  # per rank: anything queued
        run_cp = np.empty(width + 1, np.int32)  # a row's runs of one code point: which, where, how many
        run_pos = np.empty(width + 1, np.int32)
        run_len = np.empty(width + 1, np.int32)
        word_cp = np.empty(width + 1, np.int32)  # a word's
        word_len = np.empty(width + 1, np.int32)
        c_left = np.empty(8, np.int32)  # candidate pairs to queue after a merge
        c_right = np.empty(8, np.int32)
        c_code = np.empty(8, np.int32)
        out = np.empty(n * width * max(n_bytes.max(), 1) + 1, np.int32)  # a token holds at least one byte
        offsets = np.zeros(n + 1, np.int64)
        flags = np.zeros(n, np.int8)
        o = 0
        for i in range(n):
            if from_coeff:
                for t in range(width):  # the rule of FASTTokenizer._code_points (see there)
                    v = np.rint(coeff[i, t] * scale) - min_token
                    if clip or not (v < 0xD800 or (v > 0xDFFF and v <= 0x10FFFF)):  # NaN too
                        row_buf[t] = emit[int(min(v, float(span))) if v > 0.0 else 0]
                    else:
                        row_buf[t] = int(max(v, 0.0))
                row = row_buf
                length = width
            else:
                row = codes[i]
                length = lengths[i]
            # ---- runs of one code point; a row without apostrophes or spaces splits into words along them
            n_runs = 0
            plain = True
            t = 0
            while t < length:
                c = row[t]
                if c >= n_points:
                    flags[i] = TOO_LARGE
                    break
                u = t + 1
                while u < length and row[u] == c:
                    u += 1
                run_cp[n_runs] = c
                run_pos[n_runs] = t
                run_len[n_runs] = u - t
                n_runs += 1
                if c == 39 or classes[c] == 3:
                    plain = False
                t = u
            if flags[i] == TOO_LARGE:
                offsets[i + 1] = o
                continue
            ri = 0  # next run (plain rows), or the run holding code point a (other rows)
            a = 0  # next code point (other rows)
            while (plain and ri < n_runs) or (not plain and a < length):
                # ---- one pre-tokenizer word, as runs of one code point (word_cp, word_len)
                n_word = 0
                if plain:  # a word is a maximal sequence of letters, of numbers, or of other symbols
                    kind = classes[run_cp[ri]]
                    while True:
                        word_cp[n_word] = run_cp[ri]
                        word_len[n_word] = run_len[ri]
                        n_word += 1
                        ri += 1
                        if ri >= n_runs or classes[run_cp[ri]] != kind:
                            break
                else:  # 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
                    c = row[a]
                    b = a + 1
                    if (
                        c == 39
                        and a + 1 < length
                        and (row[a + 1] == 115 or row[a + 1] == 116 or row[a + 1] == 109 or row[a + 1] == 100)
                    ):
                        b = a + 2
                    elif (
                        c == 39
                        and a + 2 < length
                        and (
                            (row[a + 1] == 114 and row[a + 2] == 101)
                            or (row[a + 1] == 118 and row[a + 2] == 101)
                            or (row[a + 1] == 108 and row[a + 2] == 108)
                        )
                    ):
                        b = a + 3
                    else:
                        start = a
                        if c == 32 and a + 1 < length and classes[row[a + 1]] != 3:
                            start = a + 1  # the optional leading space of a letter/number/other run
                        kind = classes[row[start]]
                        b = start + 1
                        while b < length and classes[row[b]] == kind:
                            b += 1
                        if kind == 3 and b < length and b - a >= 2:
                            b -= 1  # \s+(?!\S): leave the last space to the word that follows
                    while run_pos[ri] + run_len[ri] <= a:
                        ri += 1  # the run holding position a
                    k = ri
                    while k < n_runs and run_pos[k] < b:  # the runs [a, b) overlaps, cut to it
                        word_cp[n_word] = run_cp[k]
                        word_len[n_word] = min(run_pos[k] + run_len[k], b) - max(run_pos[k], a)
                        n_word += 1
                        k += 1
                    a = b
                # ---- its byte symbols, as run-length nodes
                m = 0
                for wi in range(n_word):
                    cp = word_cp[wi]
                    size = n_bytes[cp]
                    repeat = word_len[wi]
                    for _ in range(1 if size == 1 else repeat):  # a 1-byte character's run is one node
                        for k in range(size):
                            v = byte_ids[cp, k]
                            if v < 0:  # not in the vocabulary (and no unknown token): the library drops it
                                flags[i] = DROPPED
                                continue
                            add = repeat if size == 1 else 1
                            if m > 0 and tok[m - 1] == v:
                                cnt[m - 1] += add
                            else:
                                tok[m] = v
                                cnt[m] = add
                                nxt[m] = m + 1
                                prv[m] = m - 1
                                m += 1
                if m == 0:
                    continue
                if m == 1 and cnt[0] == 1:  # a one-symbol word (common): nothing to merge
                    out[o] = tok[0]
                    o += 1
                    continue
                nxt[m - 1] = -1
                # ---- one loop of events: first each node queues its own pairs (inside its run, and with the
                # next node), then queued pairs are merged lowest rank first; each event queues new candidates
                n_ent = 0
                free = m
                init = 0  # next node to queue the pairs of
                w = 0  # rank word being scanned
                r = 0  # rank being merged
                e = -1  # next queued pair of rank r
                while True:
                    n_cand = 0
                    if init < m:
                        j = init
                        init += 1
                        if cnt[j] >= 2:
                            c_left[n_cand] = tok[j]
                            c_right[n_cand] = tok[j]
                            c_code[n_cand] = 2 * j + 1
                            n_cand += 1
                        if j + 1 < m:
                            c_left[n_cand] = tok[j]
                            c_right[n_cand] = tok[j + 1]
                            c_code[n_cand] = 2 * j
                            n_cand += 1
                    elif e < 0:  # the next rank with queued pairs
                        while w < n_words and bits[w] == 0:
                            w += 1
                        if w == n_words:
                            break
                        x = bits[w]
                        low = x & (~x + one)
                        bits[w] = x ^ low
                        r = w * 64 + debruijn_index[(low * debruijn) >> uint64(58)]
                        e = head[r]
                        head[r] = -1
                        continue
                    else:
                        code = e_code[e]
                        la = e_left[e]
                        rb = e_right[e]
                        e = e_next[e]
                        j = code >> 1
                        if cnt[j] == 0 or tok[j] != la:
                            continue  # stale: the node was merged away or changed since it was queued
                        if code & 1:  # pairs inside a run: paired from the left, an odd one stays on the right
                            c = cnt[j]
                            if c < 2:
                                continue
                            tok[j] = new_ids[r]
                            cnt[j] = c >> 1
                            t = j
                            if c & 1:
                                odd = free
                                free += 1
                                tok[odd] = la
                                cnt[odd] = 1
                                q = nxt[j]
                                nxt[j] = odd
                                prv[odd] = j
                                nxt[odd] = q
                                if q >= 0:
                                    prv[q] = odd
                                    c_left[n_cand] = la
                                    c_right[n_cand] = tok[q]
                                    c_code[n_cand] = 2 * odd
                                    n_cand += 1
                        else:  # the pair across two runs: the last symbol of one, the first of the next
                            k = nxt[j]
                            if k < 0 or tok[k] != rb:
                                continue
                            if cnt[j] > 1:
                                cnt[j] -= 1
                                t = free
                                free += 1
                                cnt[t] = 1
                                nxt[j] = t
                                prv[t] = j
                                nxt[t] = k
                                prv[k] = t
                            else:
                                t = j
                            tok[t] = new_ids[r]
                            if cnt[k] > 1:
                                cnt[k] -= 1
                            else:
                                q = nxt[k]
                                nxt[t] = q
                                if q >= 0:
                                    prv[q] = t
                                cnt[k] = 0
                        # the new run joins equal neighbours (e.g. "x y x y" -> two adjacent merged tokens):
                        # first t into the run on its left, then the run on the right into t
                        for side in range(2):
                            left, right = (prv[t], t) if side == 0 else (t, nxt[t])
                            if left >= 0 and right >= 0 and tok[left] == tok[right]:
                                cnt[left] += cnt[right]
                                cnt[right] = 0
                                q = nxt[right]
                                nxt[left] = q
                                if q >= 0:
                                    prv[q] = left
                                t = left
                        v = tok[t]
                        if cnt[t] >= 2:
                            c_left[n_cand] = v
                            c_right[n_cand] = v
                            c_code[n_cand] = 2 * t + 1
                            n_cand += 1
                        p = prv[t]
                        if p >= 0:
                            c_left[n_cand] = tok[p]
                            c_right[n_cand] = v
                            c_code[n_cand] = 2 * p
                            n_cand += 1
                        q = nxt[t]
                        if q >= 0:
                            c_left[n_cand] = v
                            c_right[n_cand] = tok[q]
                            c_code[n_cand] = 2 * t
                            n_cand += 1
                    # queue the candidates that some merge joins, in the bucket of its rank
                    for ci in range(n_cand):
                        key = np.int64(c_left[ci]) * n_vocab + c_right[ci]
                        h = np.int64((uint64(key) * fib) >> shift)
                        rank = -1
                        while hash_keys[h] >= 0:
                            if hash_keys[h] == key:
                                rank = hash_ranks[h]
                                break
                            h = (h + 1) & mask
                        if rank >= 0:
                            e_next[n_ent] = head[rank]
                            e_code[n_ent] = c_code[ci]
                            e_left[n_ent] = c_left[ci]
                            e_right[n_ent] = c_right[ci]
                            head[rank] = n_ent
                            n_ent += 1
                            bits[rank >> 6] |= one << uint64(rank & 63)
                # ---- emit the word's tokens
                j = 0
                while j >= 0:
                    for _ in range(cnt[j]):
                        out[o] = tok[j]
                        o += 1
                    j = nxt[j]
            offsets[i + 1] = o
        return out[:o], offsets, flags

    @njit(cache=cache, nogil=True)
    def decode(flat, lengths, n_vocab, whole, start, size, values, zero, coeff, n_chars, ids_ok, partial):
        """Flat int64 ids -> scaled coefficients into `coeff` [N, n_coeff] (zeros on entry) from each token's
        precomputed values, with per row: symbols, only known ids, and whether a token holds part of a UTF-8
        character (those rows are decoded from their bytes instead)."""
        n, n_coeff = coeff.shape
        k = 0
        for i in range(n):
            ids_ok[i] = True
            partial[i] = False
            pos = 0
            for _ in range(lengths[i]):
                t = flat[k]
                k += 1
                if t < 0 or t >= n_vocab:
                    ids_ok[i] = False  # unknown ids are skipped, as the library skips them
                    continue
                if not whole[t]:
                    partial[i] = True
                    continue
                if not zero[t]:  # most of a FAST sequence is zero coefficients, already in place
                    first = start[t]
                    for q in range(min(size[t], max(n_coeff - pos, 0))):
                        coeff[i, pos + q] = values[first + q]
                pos += size[t]
            n_chars[i] = pos

    return bpe_encode, decode


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
    return _bpe(codes, lengths, np.zeros((0, 0)), 1.0, 0, np.zeros(1, np.int32), False, tables)


def _bpe(codes, lengths, coeff, scale, min_token, emit, clip, t: EncodeTables):
    tables = (t.classes, t.n_bytes, t.byte_ids, t.hash_keys, t.hash_ranks, t.hash_shift, t.new_ids, t.n_vocab)
    return _kernels()[0](codes, lengths, coeff, coeff.dtype.type(scale), int(min_token), emit, bool(clip), *tables)


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
            out.append(
                _bpe(np.zeros((0, 0), np.int32), np.zeros(0, np.int64), coeff, scale, min_token, emit, clip, tables)
            )
        return out

    parts = row_blocks(len(chunks))
    pieces = [piece for block in ([work(parts[0])] if len(parts) == 1 else _pool().map(work, parts)) for piece in block]
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
        _kernels()[1](part, lengths[rows], t.n_vocab, t.whole, t.start, t.size, t.values, t.zero, *block)
        if finish is not None:
            finish(rows, *block)

    parts = row_blocks(n)
    if len(parts) == 1:
        work(parts[0])
    else:
        list(_pool().map(work, parts))
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
