"""A compiled byte-level BPE encoder (the `tokenizers` library's ByteLevel pre-tokenizer + BPE, id for id) and
FAST's compiled id -> coefficient decoder. Imported only where numba is (see `_fast_kernels`).

The encoder, per row of code points:
- the GPT-2 split the ByteLevel pre-tokenizer applies is a small state machine over per-code-point classes
  (`_runs`, `_plain_word`, `_gpt2_word_end`);
- a word is kept as runs of one token (run-length nodes, `_word_nodes`), so a run of n identical symbols costs
  O(log n) merges instead of n: pairing a run left to right is exactly what the library's (rank, position)
  order does to it;
- merges are taken in rank order from per-rank buckets (`_merge_word`; ranks only grow while a word is merged,
  because a merge's inputs are always made by earlier merges -- checked when the tables are built).

`tables` is `EncodeTables.as_tuple()`: (classes, n_bytes, byte_ids, hash_keys, hash_ranks, hash_shift, new_ids,
n_vocab). A word's nodes are rows [token, count, next, previous]; a queued pair is a row [bucket chain, node code,
left token, right token], where the node code is 2·node for the pair across nodes node and next and 2·node + 1
for the pairs inside node's run.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

from actok.tokenizers._bytelevel import DROPPED, PAIR_HASH, SPACE, TOO_LARGE

TOKEN, COUNT, NEXT, PREV = 0, 1, 2, 3  # columns of a node (a run of one token, doubly linked)
CHAIN, CODE, LEFT, RIGHT = (
    0,
    1,
    2,
    3,
)  # columns of a queued pair (bucket chain, node code, tokens); CODE.. of a candidate
_ONE = uint64(1)
_HASH = uint64(PAIR_HASH)
# Lowest set bit -> its index: multiply the isolated bit by a de Bruijn constant, read the top 6 bits.
_DEBRUIJN = uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int32)
for _i in range(64):
    _DEBRUIJN_INDEX[(((1 << _i) * 0x03F79D71B4CB0A89) & (2**64 - 1)) >> 58] = _i


def _jit(fn):
    """`njit`, cached on disk; where numba finds no writable cache location (read-only install, no writable
    home), compiled for this process only."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)


def _step(fn):
    """A step of the loops: compiled without numba's reference counting (`_nrt=False`, as numba's own docs use
    it for code that allocates nothing). The loops call steps per word and per merge, and each call would
    otherwise count a reference to each array argument up and down, atomically: +50% encode time."""
    return njit(nogil=True, _nrt=False)(fn)


# ------------------------------------------------------------------ encode: entry points
@_jit
def encode_code_point_rows(codes, lengths, tables):
    """Rows of code points `codes[i, :lengths[i]]` -> (flat ids, row offsets [N + 1], flags [N]), as the library's
    ByteLevel BPE. flags: TOO_LARGE, a code point beyond the tables (the row is left empty, for the library);
    DROPPED, a byte without a symbol in the vocabulary was dropped, as the library drops it."""
    classes, n_bytes, byte_ids, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab = tables
    n, width = codes.shape
    cap = 4 * width + 4  # byte symbols in one row, at most
    nodes = np.empty((2 * cap, 4), np.int32)
    queue = np.empty((6 * cap + 8, 4), np.int32)
    candidates = np.empty((8, 4), np.int32)
    head = np.full(new_ids.shape[0], -1, np.int32)  # per rank: last queued pair
    bits = np.zeros(max((new_ids.shape[0] + 63) // 64, 1), np.uint64)  # per rank: anything queued
    runs = np.empty((width + 1, 3), np.int32)
    word = np.empty((width + 1, 2), np.int32)
    out = np.empty(n * width * max(n_bytes.max(), 1) + 1, np.int32)  # a token holds at least one byte
    offsets = np.zeros(n + 1, np.int64)
    flags = np.zeros(n, np.int8)
    o = 0
    for i in range(n):
        row, length = codes[i], lengths[i]
        n_runs, plain = _runs(row, length, classes, runs)
        if n_runs < 0:
            flags[i] = TOO_LARGE
        ri = 0  # next run (plain rows), or the run holding code point a (other rows)
        a = 0  # next code point (other rows)
        while n_runs >= 0 and ((plain and ri < n_runs) or (not plain and a < length)):
            if plain:
                ri, n_word = _plain_word(ri, n_runs, classes, runs, word)
            else:
                b = _gpt2_word_end(row, length, a, classes)
                ri, n_word = _cut_runs(a, b, ri, n_runs, runs, word)
                a = b
            m, dropped = _word_nodes(word, n_word, n_bytes, byte_ids, nodes)
            if dropped:
                flags[i] = DROPPED
            if m > 1 or (m == 1 and nodes[0, COUNT] > 1):  # a one-symbol word (common) has nothing to merge
                _merge_word(
                    m, nodes, queue, candidates, head, bits, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab
                )
            o = _emit(m, nodes, out, o)
        offsets[i + 1] = o
    return out[:o], offsets, flags


@_jit
def encode_coefficient_rows(coeff, scale, min_token, emit, clip, tables):
    """Unscaled coefficients `[N, C]` -> what `encode_code_point_rows` returns for their code points, by FAST's
    rule (`ByteLevelCodec.code_points`: round(coefficient * scale) in the coefficients' dtype, minus min_token,
    clamped at 0; `emit[k]` where clipped or where the reference cannot encode)."""
    n, width = coeff.shape
    span = emit.shape[0] - 1
    codes = np.empty((n, width), np.int32)
    for i in range(n):
        for t in range(width):
            v = np.rint(coeff[i, t] * scale) - min_token
            if clip or not (v < 0xD800 or (v > 0xDFFF and v <= 0x10FFFF)):  # NaN too
                codes[i, t] = emit[int(min(v, float(span))) if v > 0.0 else 0]
            else:
                codes[i, t] = int(max(v, 0.0))
    return encode_code_point_rows(codes, np.full(n, width, np.int64), tables)


@_jit
def encode_symbol_rows(symbols, offsets, symbol_ids, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab):
    """Rows of alphabet indices `symbols[offsets[i] : offsets[i + 1]]` -> (flat ids, row offsets [N + 1]), as the
    library's BPE without a pre-tokenizer (klt's): each row is one word whose symbol k is the token
    `symbol_ids[k]`, merged as `_merge_word` merges a byte-level word."""
    n = offsets.shape[0] - 1
    width = 1
    for i in range(n):
        width = max(width, offsets[i + 1] - offsets[i])
    nodes = np.empty((2 * width + 2, 4), np.int32)
    queue = np.empty((6 * width + 8, 4), np.int32)
    candidates = np.empty((8, 4), np.int32)
    head = np.full(new_ids.shape[0], -1, np.int32)  # per rank: last queued pair
    bits = np.zeros(max((new_ids.shape[0] + 63) // 64, 1), np.uint64)  # per rank: anything queued
    out = np.empty(symbols.shape[0] + 1, np.int32)  # a token holds at least one symbol
    out_offsets = np.zeros(n + 1, np.int64)
    o = 0
    for i in range(n):
        m = 0
        for t in range(offsets[i], offsets[i + 1]):
            v = symbol_ids[symbols[t]]
            if m > 0 and nodes[m - 1, TOKEN] == v:
                nodes[m - 1, COUNT] += 1
            else:
                nodes[m, TOKEN], nodes[m, COUNT], nodes[m, NEXT], nodes[m, PREV] = v, 1, m + 1, m - 1
                m += 1
        if m > 0:
            nodes[m - 1, NEXT] = -1
        if m > 1 or (m == 1 and nodes[0, COUNT] > 1):
            _merge_word(m, nodes, queue, candidates, head, bits, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab)
        o = _emit(m, nodes, out, o)
        out_offsets[i + 1] = o
    return out[:o], out_offsets


# ------------------------------------------------------------------ encode: the pre-tokenizer split
@_step
def _runs(row, length, classes, runs):
    """The row's runs of one code point into `runs` [., 3] (code point, position, length) -> (how many, -1 for a
    code point beyond the tables; whether the row is plain: no apostrophe or whitespace, so that its words are
    maximal sequences of one class)."""
    n_points = classes.shape[0]
    n_runs = 0
    plain = True
    t = 0
    while t < length:
        c = row[t]
        if c >= n_points:
            return -1, False
        u = t + 1
        while u < length and row[u] == c:
            u += 1
        runs[n_runs, 0], runs[n_runs, 1], runs[n_runs, 2] = c, t, u - t
        n_runs += 1
        if c == 39 or classes[c] == SPACE:
            plain = False
        t = u
    return n_runs, plain


@_step
def _plain_word(ri, n_runs, classes, runs, word):
    """The word of a plain row that starts at run `ri` (a maximal sequence of letters, of numbers, or of other
    symbols) into `word` [., 2] (code point, repeat) -> (the next run, runs in the word)."""
    kind = classes[runs[ri, 0]]
    n_word = 0
    while True:
        word[n_word, 0], word[n_word, 1] = runs[ri, 0], runs[ri, 2]
        n_word += 1
        ri += 1
        if ri >= n_runs or classes[runs[ri, 0]] != kind:
            return ri, n_word


@_step
def _gpt2_word_end(row, length, a, classes):
    """Where the word starting at `a` ends, by the GPT-2 pattern
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    c = row[a]
    if c == 39 and a + 1 < length:
        d = row[a + 1]
        if d == 115 or d == 116 or d == 109 or d == 100:  # 's 't 'm 'd
            return a + 2
        if a + 2 < length and (((d == 114 or d == 118) and row[a + 2] == 101) or (d == 108 and row[a + 2] == 108)):
            return a + 3  # 're 've 'll
    start = a
    if c == 32 and a + 1 < length and classes[row[a + 1]] != SPACE:
        start = a + 1  # the optional leading space of a letter/number/other run
    kind = classes[row[start]]
    b = start + 1
    while b < length and classes[row[b]] == kind:
        b += 1
    if kind == SPACE and b < length and b - a >= 2:
        b -= 1  # \s+(?!\S): leave the last space to the word that follows
    return b


@_step
def _cut_runs(a, b, ri, n_runs, runs, word):
    """The runs that code points [a, b) overlap, cut to it, into `word` -> (the run holding a, runs in the word)."""
    while runs[ri, 1] + runs[ri, 2] <= a:
        ri += 1
    n_word = 0
    k = ri
    while k < n_runs and runs[k, 1] < b:
        word[n_word, 0] = runs[k, 0]
        word[n_word, 1] = min(runs[k, 1] + runs[k, 2], b) - max(runs[k, 1], a)
        n_word += 1
        k += 1
    return ri, n_word


@_step
def _word_nodes(word, n_word, n_bytes, byte_ids, nodes):
    """A word's byte symbols as run-length nodes, linked in order -> (nodes, whether a byte without a symbol in
    the vocabulary was dropped, as the library drops it)."""
    m = 0
    dropped = False
    for wi in range(n_word):
        cp, repeat = word[wi, 0], word[wi, 1]
        size = n_bytes[cp]
        add = repeat if size == 1 else 1
        for _ in range(1 if size == 1 else repeat):  # a 1-byte character's run is one node
            for k in range(size):
                v = byte_ids[cp, k]
                if v < 0:
                    dropped = True
                elif m > 0 and nodes[m - 1, TOKEN] == v:
                    nodes[m - 1, COUNT] += add
                else:
                    nodes[m, TOKEN], nodes[m, COUNT], nodes[m, NEXT], nodes[m, PREV] = v, add, m + 1, m - 1
                    m += 1
    if m > 0:
        nodes[m - 1, NEXT] = -1
    return m, dropped


@_step
def _emit(m, nodes, out, o):
    """Append the word's tokens (each node's token, count times) to `out` at `o` -> the new end."""
    j = 0 if m > 0 else -1
    while j >= 0:
        for _ in range(nodes[j, COUNT]):
            out[o] = nodes[j, TOKEN]
            o += 1
        j = nodes[j, NEXT]
    return o


# ------------------------------------------------------------------ encode: merging one word
@_step
def _merge_word(m, nodes, queue, candidates, head, bits, hash_keys, hash_ranks, hash_shift, new_ids, n_vocab):
    """Merge a word of `m` nodes as the library does: first each node queues its own pairs (inside its run, and
    with the next node), then queued pairs are merged lowest rank first; each merge queues the new pairs around
    it."""
    n_words = (new_ids.shape[0] + 63) // 64
    n_ent, free = 0, m  # queued pairs, next unused node
    w, r, e = 0, 0, -1  # rank word being scanned, rank being merged, its next queued pair
    for j in range(m):
        n_cand = _pairs_of_node(j, m, nodes, candidates)
        n_ent = _queue(n_cand, candidates, n_ent, queue, head, bits, hash_keys, hash_ranks, hash_shift, n_vocab)
    while True:
        if e < 0:  # the next rank with queued pairs
            w, r, e = _next_rank(w, n_words, head, bits)
            if w == n_words:
                return
            continue
        code, la, rb = queue[e, CODE], queue[e, LEFT], queue[e, RIGHT]
        e = queue[e, CHAIN]
        j = code >> 1
        if nodes[j, COUNT] == 0 or nodes[j, TOKEN] != la:
            continue  # stale: the node was merged away or changed since the pair was queued
        n_cand = 0
        if code & 1:  # pairs inside a run: paired from the left, an odd one stays on the right
            c = nodes[j, COUNT]
            if c < 2:
                continue
            nodes[j, TOKEN], nodes[j, COUNT] = new_ids[r], c >> 1
            t = j
            if c & 1:
                free, n_cand = _split_odd(j, la, free, nodes, candidates)
        else:  # the pair across two runs: the last symbol of one, the first of the next
            k = nodes[j, NEXT]
            if k < 0 or nodes[k, TOKEN] != rb:
                continue
            t, free = _merge_across(j, k, new_ids[r], free, nodes)
        n_cand = _pairs_around(_join_equal_neighbours(t, nodes), nodes, candidates, n_cand)
        n_ent = _queue(n_cand, candidates, n_ent, queue, head, bits, hash_keys, hash_ranks, hash_shift, n_vocab)


@_step
def _next_rank(w, n_words, head, bits):
    """Pop the lowest rank with queued pairs, scanning from rank word `w` -> (its word, n_words when none is
    left; the rank; its last queued pair, now taken off its bucket)."""
    while w < n_words and bits[w] == 0:
        w += 1
    if w == n_words:
        return w, 0, -1
    x = bits[w]
    low = x & (~x + _ONE)
    bits[w] = x ^ low
    r = w * 64 + _DEBRUIJN_INDEX[(low * _DEBRUIJN) >> uint64(58)]
    e = head[r]
    head[r] = -1
    return w, r, e


@_step
def _candidate(candidates, n_cand, code, left, right):
    """Add the pair (node code, left token, right token) to the candidates -> how many."""
    candidates[n_cand, CODE], candidates[n_cand, LEFT], candidates[n_cand, RIGHT] = code, left, right
    return n_cand + 1


@_step
def _pairs_of_node(j, m, nodes, candidates):
    """A node's own pairs before any merge (inside its run; with the next node) as candidates -> how many."""
    n_cand = 0
    if nodes[j, COUNT] >= 2:
        n_cand = _candidate(candidates, n_cand, 2 * j + 1, nodes[j, TOKEN], nodes[j, TOKEN])
    if j + 1 < m:
        n_cand = _candidate(candidates, n_cand, 2 * j, nodes[j, TOKEN], nodes[j + 1, TOKEN])
    return n_cand


@_step
def _split_odd(j, token, free, nodes, candidates):
    """The odd symbol left over after pairing run j becomes a node of its own right after j -> (the next unused
    node, candidates: its pair with the node after it)."""
    q = nodes[j, NEXT]
    nodes[free, TOKEN], nodes[free, COUNT], nodes[free, NEXT], nodes[free, PREV] = token, 1, q, j
    nodes[j, NEXT] = free
    if q < 0:
        return free + 1, 0
    nodes[q, PREV] = free
    return free + 1, _candidate(candidates, 0, 2 * free, token, nodes[q, TOKEN])


@_step
def _merge_across(j, k, new, free, nodes):
    """Merge the last symbol of run j with the first of run k (the next one) into token `new` -> (the node
    holding it, the next unused node)."""
    t = j
    if nodes[j, COUNT] > 1:  # the last symbol of j's run leaves it, as a node t between j and k
        nodes[j, COUNT] -= 1
        t = free
        free += 1
        nodes[t, COUNT], nodes[t, NEXT], nodes[t, PREV] = 1, k, j
        nodes[j, NEXT] = nodes[k, PREV] = t
    nodes[t, TOKEN] = new
    if nodes[k, COUNT] > 1:
        nodes[k, COUNT] -= 1
    else:  # k is merged away
        q = nodes[k, NEXT]
        nodes[t, NEXT] = q
        if q >= 0:
            nodes[q, PREV] = t
        nodes[k, COUNT] = 0
    return t, free


@_step
def _join_equal_neighbours(t, nodes):
    """The new run at node t joins equal neighbours (e.g. "x y x y" -> two adjacent merged tokens): first t into
    the run on its left, then the run on the right into t -> the node holding the joined run."""
    for side in range(2):
        left, right = (nodes[t, PREV], t) if side == 0 else (t, nodes[t, NEXT])
        if left >= 0 and right >= 0 and nodes[left, TOKEN] == nodes[right, TOKEN]:
            nodes[left, COUNT] += nodes[right, COUNT]
            nodes[right, COUNT] = 0
            q = nodes[right, NEXT]
            nodes[left, NEXT] = q
            if q >= 0:
                nodes[q, PREV] = left
            t = left
    return t


@_step
def _pairs_around(t, nodes, candidates, n_cand):
    """The pairs a merged run at node t takes part in (inside it, with its left and right nodes), added to the
    candidates -> how many candidates."""
    v, p, q = nodes[t, TOKEN], nodes[t, PREV], nodes[t, NEXT]
    if nodes[t, COUNT] >= 2:
        n_cand = _candidate(candidates, n_cand, 2 * t + 1, v, v)
    if p >= 0:
        n_cand = _candidate(candidates, n_cand, 2 * p, nodes[p, TOKEN], v)
    if q >= 0:
        n_cand = _candidate(candidates, n_cand, 2 * t, v, nodes[q, TOKEN])
    return n_cand


@_step
def _queue(n_cand, candidates, n_ent, queue, head, bits, hash_keys, hash_ranks, hash_shift, n_vocab):
    """Queue the candidates that some merge joins, in the bucket of its rank -> queued pairs."""
    mask = hash_keys.shape[0] - 1
    for ci in range(n_cand):
        key = np.int64(candidates[ci, LEFT]) * n_vocab + candidates[ci, RIGHT]
        h = np.int64((uint64(key) * _HASH) >> uint64(hash_shift))
        while hash_keys[h] >= 0 and hash_keys[h] != key:
            h = (h + 1) & mask
        if hash_keys[h] == key:
            rank = hash_ranks[h]
            queue[n_ent, CHAIN], queue[n_ent, CODE] = head[rank], candidates[ci, CODE]
            queue[n_ent, LEFT], queue[n_ent, RIGHT] = candidates[ci, LEFT], candidates[ci, RIGHT]
            head[rank] = n_ent
            n_ent += 1
            bits[rank >> 6] |= _ONE << uint64(rank & 63)
    return n_ent


# ------------------------------------------------------------------ decode
@_jit
def ids_to_coefficients(flat, lengths, n_vocab, whole, start, size, values, zero, coeff, n_chars, ids_ok, partial):
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
