"""klt's compiled loops: quantized coefficients -> symbols, and ids -> scaled coefficients (the same values as the
numpy steps of `actok.tokenizers.klt`, operation for operation). Imported only where numba is."""

from __future__ import annotations

import numpy as np

from actok.tokenizers._bytelevel_bpe import _jit


@_jit
def spell_rows(c, scale, deadzone, half, carries):
    """Coefficients `c` `[N, C]` (before the scale) -> `klt.spell_symbols(deadzone_quantize(c * scale, deadzone),
    half, carries)`: (flat alphabet indices `[S]` int32, row offsets `[N + 1]`)."""
    n, width = c.shape
    modulus = 2 * half + 1
    limit = carries * modulus + half
    q = np.empty(width, np.int64)
    stops = np.zeros(n, np.int64)
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):  # first pass: each row's symbol count
        count = 0
        for t in range(width):
            q[t] = _quantize(c[i, t], scale, deadzone)
            if q[t] != 0:
                stops[i] = t + 1
        for t in range(stops[i]):
            count += 1 + (_carry(q[t], modulus, limit) != 0)
        offsets[i + 1] = offsets[i] + count
    symbols = np.empty(offsets[n], np.int32)
    for i in range(n):
        o = offsets[i]
        for t in range(stops[i]):
            v = min(max(_quantize(c[i, t], scale, deadzone), -limit), limit)
            k = _carry(v, modulus, limit)
            if k != 0:
                symbols[o] = modulus + k + carries - (k > 0)
                o += 1
            symbols[o] = v - k * modulus + half
            o += 1
    return symbols, offsets


@_jit
def _quantize(value, scale, deadzone):
    """`klt.deadzone_quantize` of one coefficient times the scale (the same float operations)."""
    v = value * scale
    return np.int64(np.sign(v) * np.floor(np.abs(v) + 1.0 - deadzone))


@_jit
def refine_near_edges(c, centered, basis_t, tol, scale, deadzone):
    """Float32 coefficients `c` `[N, C]` (before the scale) -> float64 ones, each whose scaled value lies within
    `tol[i]` `[N]` of a quantization edge of `klt.deadzone_quantize` recomputed in float64 as the dot product of the
    centered chunk `centered[i]` `[N, H·D]` with the basis vector `basis_t[t]` `[C, H·D]`: where `tol` bounds the
    scaled error of `c`, these quantize as the float64 coefficients do."""
    n, width = c.shape
    out = np.empty((n, width))
    for i in range(n):
        for t in range(width):
            out[i, t] = c[i, t]
            edge = np.abs(out[i, t] * scale) + 1.0 - deadzone
            edge -= np.floor(edge)
            if edge < tol[i] or edge > 1.0 - tol[i]:
                out[i, t] = np.dot(centered[i], basis_t[t])
    return out


@_jit
def _carry(v, modulus, limit):
    """The carry of a quantized value (`klt.carry_layout`): round(v / modulus) after clipping into the layout."""
    v = min(max(v, -limit), limit)
    return np.int64(np.rint(v / modulus))


@_jit
def ids_to_values(flat, lengths, n_vocab, start, size, points, m, half, carries, deadzone, scale):
    """Flat ids (rows of `lengths`) -> (scaled-back coefficients `[N, L]`, each row's coefficient count (at most m)
    `[N]`, L the largest, rows with only known ids `[N]`): `klt.read_symbols` then
    `deadzone_dequantize(q, deadzone) / scale`. Unknown ids are skipped; token i's symbols are
    `points[start[i] : start[i] + size[i]]` (alphabet indices)."""
    n = lengths.shape[0]
    modulus = 2 * half + 1
    limit = carries * modulus + half
    counts = np.zeros(n, np.int64)
    ids_ok = np.ones(n, np.bool_)
    o = 0
    for i in range(n):  # first pass: value symbols per row
        for j in range(o, o + lengths[i]):
            t = flat[j]
            if t < 0 or t >= n_vocab:
                ids_ok[i] = False
                continue
            for p in range(start[t], start[t] + size[t]):
                counts[i] += points[p] < modulus
        counts[i] = min(counts[i], m)
        o += lengths[i]
    out = np.zeros((n, counts.max() if n else 0))
    o = 0
    for i in range(n):
        rank, acc = 0, 0
        for j in range(o, o + lengths[i]):
            t = flat[j]
            if t < 0 or t >= n_vocab:
                continue
            for p in range(start[t], start[t] + size[t]):
                s = points[p]
                if s >= modulus:  # a carry: adds up until the next value symbol
                    k = s - modulus
                    acc += k - carries + (k >= carries)
                    continue
                if rank < m:
                    q = min(max(s - half + acc * modulus, -limit), limit)
                    out[i, rank] = (q + np.sign(q) * (deadzone - 0.5)) / scale
                rank += 1
                acc = 0
        o += lengths[i]
    return out, counts, ids_ok
