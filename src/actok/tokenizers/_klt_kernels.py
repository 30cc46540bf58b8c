"""klt's compiled loops: quantized coefficients -> symbols, and ids -> scaled coefficients (the same values as the
numpy steps of `actok.tokenizers.klt`, operation for operation). Imported only where numba is."""

from __future__ import annotations

import numpy as np

from actok.tokenizers._bytelevel_bpe import _jit
from actok.tokenizers.params import MAX_QUANTIZED


@_jit
def spell_rows(c, scale, deadzone, half, carries):
    """Coefficients `c` `[N, C]` (before the scale) -> `klt.spell_symbols(deadzone_quantize(c * scale, deadzone),
    half, carries)`: (flat alphabet indices `[S]` int32, row offsets `[N + 1]`). Each coefficient is quantized
    once."""
    n, width = c.shape
    q = np.empty(width, np.int64)
    symbols, offsets = np.empty(max(16, 8 * n), np.int32), np.zeros(n + 1, np.int64)
    for i in range(n):
        stop = 0
        for t in range(width):
            q[t] = _quantize(c[i, t], scale, deadzone)
            if q[t] != 0:
                stop = t + 1
        symbols = _spell_row(q, stop, half, carries, symbols, offsets, i)
    return symbols[: offsets[n]], offsets


@_jit
def spell_rows_f32(c32, flat, mean, basis_t, tol, scale, deadzone, half, carries):
    """`spell_rows` of float32 coefficients `c32` `[N, C]` (the float32 basis product) giving the symbols of the
    float64 ones: each coefficient whose scaled value lies within `tol[i]` `[N]` (a bound on its scaled error) of a
    quantization edge of `klt.deadzone_quantize` (or not finite) is recomputed in float64 as the dot product of the
    centered chunk `flat[i] - mean` with the basis vector `basis_t[t]` `[C, H·D]`, summed term by term in order:
    the same numbers as numpy's `klt.edge_exact_coefficients` and the exported processor, also for values exactly
    on an edge."""
    n, width = c32.shape
    q = np.empty(width, np.int64)
    centered = np.empty(flat.shape[1])
    symbols, offsets = np.empty(max(16, 8 * n), np.int32), np.zeros(n + 1, np.int64)
    for i in range(n):
        stop, centered_ready = 0, False
        for t in range(width):
            value = np.float64(c32[i, t])
            edge = np.abs(value * scale) + 1.0 - deadzone
            edge -= np.floor(edge)
            if not (edge >= tol[i] and edge <= 1.0 - tol[i]):  # also a NaN (inf or NaN in float32)
                if not centered_ready:
                    for j in range(flat.shape[1]):
                        centered[j] = flat[i, j] - mean[j]
                    centered_ready = True
                value = 0.0  # the float64 dot product summed in order (`klt.edge_exact_coefficients`)
                for j in range(centered.shape[0]):
                    value += centered[j] * basis_t[t, j]
            q[t] = _quantize(value, scale, deadzone)
            if q[t] != 0:
                stop = t + 1
        symbols = _spell_row(q, stop, half, carries, symbols, offsets, i)
    return symbols[: offsets[n]], offsets


@_jit
def _spell_row(q, stop, half, carries, symbols, offsets, i):
    """Append the symbols of row i's quantized coefficients `q[:stop]` to `symbols` (grown as needed) from
    `offsets[i]` on, set `offsets[i + 1]`, and return `symbols`. A value in [-half, half] is one symbol (its carry,
    round(v / modulus), is 0); a larger one, clipped into the layout, a carry and a value symbol."""
    modulus = 2 * half + 1
    limit = carries * modulus + half
    o = offsets[i]
    if o + 2 * stop > symbols.shape[0]:
        grown = np.empty(max(2 * symbols.shape[0], o + 2 * stop), np.int32)
        grown[:o] = symbols[:o]
        symbols = grown
    for t in range(stop):
        v = q[t]
        if -half <= v <= half:
            symbols[o] = v + half
        else:
            v = min(max(v, -limit), limit)
            k = np.int64(np.rint(v / modulus))
            if k != 0:
                symbols[o] = modulus + k + carries - (k > 0)
                o += 1
            symbols[o] = v - k * modulus + half
        o += 1
    offsets[i + 1] = o
    return symbols


@_jit
def _quantize(value, scale, deadzone):
    """`klt.deadzone_quantize` of one coefficient times the scale (the same float operations)."""
    v = value * scale
    return np.int64(np.sign(v) * np.floor(min(np.abs(v) + 1.0 - deadzone, MAX_QUANTIZED)))


@_jit
def center_f32(flat, mean):
    """Flattened chunks `[N, H·D]` -> (`flat - mean` in float32 `[N, H·D]`, the float64 norm of each row `[N]`)."""
    n, m = flat.shape
    out = np.empty((n, m), np.float32)
    norms = np.empty(n)
    for i in range(n):
        total = 0.0
        for j in range(m):
            v = flat[i, j] - mean[j]
            out[i, j] = v
            total += v * v
        norms[i] = np.sqrt(total)
    return out, norms


@_jit
def ids_to_values(flat, lengths, n_vocab, start, size, points, value_counts, m, half, carries, deadzone, scale):
    """Flat ids (rows of `lengths`) -> (scaled-back coefficients `[N, L]` in float32, the rows sorted by coefficient
    count; each row's count (at most m) `[N]`, L the largest; the sorted order `[N]` (row r of the coefficients is
    sequence `order[r]`; a stable sort); sequences with only known ids `[N]`): `klt.read_symbols` then
    `deadzone_dequantize(q, deadzone) / scale`. Unknown ids are skipped; token i's symbols are
    `points[start[i] : start[i] + size[i]]` (alphabet indices), `value_counts[i]` of them value symbols."""
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
            counts[i] += value_counts[t]
        counts[i] = min(counts[i], m)
        o += lengths[i]
    out = np.zeros((n, counts.max() if n else 0), np.float32)
    order = np.argsort(counts, kind="mergesort")
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    o = 0
    for i in range(n):
        rank, acc, r = 0, 0, position[i]
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
                    out[r, rank] = (q + np.sign(q) * (deadzone - 0.5)) / scale
                rank += 1
                acc = 0
        o += lengths[i]
    return out, counts, order, ids_ok


@_jit
def gather_coefficients(z, freq, dim):
    """A separable transform's coefficients `z` `[H, N, D]` (frequency, chunk, dim) -> the coded ones `[N, K]`:
    coefficient k of chunk i is `z[freq[k], i, dim[k]]`."""
    n, k = z.shape[1], freq.shape[0]
    out = np.empty((n, k))
    for i in range(n):
        for j in range(k):
            out[i, j] = z[freq[j], i, dim[j]]
    return out


@_jit
def scatter_coefficients(c, counts, order, freq, dim, horizon, action_dim):
    """The inverse of `gather_coefficients` for decode: coefficients `[N, L]` (row r is sequence `order[r]`, which
    holds `counts[order[r]]`) -> `[H, N, D]` float32, zero where no coefficient is coded."""
    n = c.shape[0]
    z = np.zeros((horizon, n, action_dim), np.float32)
    for r in range(n):
        i = order[r]
        for j in range(counts[i]):
            z[freq[j], i, dim[j]] = c[r, j]
    return z


@_jit
def finish_time_first(v, mean, low, high):
    """Centered values `v` `[H, N, D]` (time, chunk, dim; float32) -> chunks `[N, H, D]` (float64): the mean added
    and each value clipped into its dim's range, as numpy's `np.minimum(np.maximum(v + mean, low), high)`."""
    h, n, d = v.shape
    out = np.empty((n, h, d))
    for i in range(n):
        for t in range(h):
            for e in range(d):
                value = np.float64(v[t, i, e]) + mean[t * d + e]
                if value < low[e]:
                    value = low[e]
                if value > high[e]:
                    value = high[e]
                out[i, t, e] = value
    return out


@_jit
def finish_rows(x, rows, mean, low, high, out):
    """Centered chunks `x` `[G, H·D]` (float32) -> `out[rows[g]]` `[N, H·D]` (float64): the mean added and each
    value clipped into [low, high] `[H·D]` (each dim's range, repeated for every step), as numpy's
    `np.minimum(np.maximum(x + mean, low), high)`; one contiguous loop per row (vectorized)."""
    g, m = x.shape
    for r in range(g):
        source, target = x[r], out[rows[r]]
        for j in range(m):
            value = np.float64(source[j]) + mean[j]
            if value < low[j]:
                value = low[j]
            if value > high[j]:
                value = high[j]
            target[j] = value
