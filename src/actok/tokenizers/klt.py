"""`klt`: our rate-distortion tokenizer — a cross-validated orthonormal transform, dead-zone quantization, a symbol
layout in which any string parses, and BPE over the ordered coefficients.

Where FAST spends its tokens (REFERENCES §3, measured in docs/zoo.md):
1. The DCT decorrelates each dimension over time but not the dimensions from each other; joint actions (arms,
   grippers moving together) leave a lot of shared structure. The Karhunen–Loève transform (PCA of the
   flattened training chunks, `[H·D]`) decorrelates both and orders the coefficients by variance, but with few
   episodes its minor directions do not generalize. `transform="auto"` picks the plain KLT, a shrunk one, the
   separable DCT ⊗ dim-PCA or FAST's DCT by cross-validation on the training chunks (`choose_transform`).
2. With that order, everything after the last non-zero coefficient is zeros: we stop there, and the end of the
   string is the end of block (no symbol spent). Any string parses: missing coefficients are zero, extra ones
   ignored, so every sequence of in-vocabulary ids decodes, a prefix to a coarser chunk.
3. Large leading coefficients are a carry symbol plus a value symbol (`carry_layout`), so the alphabet stays small
   and the vocabulary goes to BPE merges.
4. A dead zone (`deadzone` > 0.5: values below `deadzone / scale` in magnitude become zero, larger ones are
   rounded down towards zero with the same step) trades a little error for more zeros; at equal RMSE this wins
   tokens (the scale is raised to pay the error back; see docs/zoo.md).
5. BPE runs on the code points directly, with no GPT-2 pre-tokenizer: FAST's byte-level pre-tokenizer splits
   "words" at whitespace and punctuation code points, and when the zero coefficient lands on one (e.g. U+0085)
   no merge can span a run of zeros.

The transform is orthonormal, so the coefficient quantization error is exactly the reconstruction error; decoded
values are clipped into each dim's training range, so whatever ids a model emits give a chunk like the training
ones. `save` also writes a self-contained Hugging Face processor (`_hub/processing_klt.py`).

Speed (batch encode and decode at least as fast as FAST's): only the K leading components that hold every
non-zero quantized coefficient of 99.9% of the training chunks are coded (`coded_components`; on G1 at H=50, 446
of 1300), so encode multiplies by `[H·D, K]`; the DCT and separable transforms run as two small products
(`Separable`, O(H·D·(H + D)) per chunk); the dense product runs in float32 with the coefficients near a
quantization edge recomputed in float64 (the ids are the float64 ones), and decode multiplies the rows sorted by
coefficient count, each group by only the basis vectors it needs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
from annotated_types import Interval
from scipy.fft import idct
from tokenizers import Tokenizer

from actok.errors import ActokError
from actok.tokenizers import _fast_kernels as kernels
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks, flatten_rows, read_bpe_file
from actok.tokenizers.coefficients import TOKENIZER_FILE, SymbolTable, train_bpe
from actok.tokenizers.hub import write_processor_files
from actok.tokenizers.params import MAX_QUANTIZED, MAX_VOCAB, Scale, check_fields

BASE = 0x100  # code point of the smallest coefficient symbol (clear of ASCII controls)
BASIS_FILE = "klt_basis.npz"
PROCESSOR_MODULE = "processing_klt.py"  # the self-contained Hugging Face processor
BASIS_ARRAYS = ("mean", "basis", "value_low", "value_high")
FACTOR_ARRAYS = ("time_basis", "dim_basis", "order")  # a separable transform's factors (`Separable`)
TRANSFORMS = ("auto", "klt", "separable", "dct")
# What transform="auto" chooses from: (transform, shrinkage) pairs, from the most learned to the least.
CANDIDATES = (("klt", 0.0), ("klt", 0.5), ("separable", 1.0), ("dct", 1.0))
CV_FOLDS = 3
CV_MAX_BLOCKS = 24  # contiguous blocks of chunks, dealt to the folds in turn
CV_MAX_ROWS = 1000  # chunks per fold side the cross-validation projects (a sample: it estimates averages)
CV_SCALES = (0.8, 1.25)  # times the scale: two points of each candidate's rate-distortion curve
CARRY_QUANTILE = 0.99  # values up to this quantile of the non-zero magnitudes are one symbol
MIN_LAPLACE_SCALE = 0.2  # the smallest mean |coefficient| the coding-cost model assumes (caps a surprise's cost)
ENCODE_BLOCK = 8192  # chunks whose coefficients encode computes at once
F32_MIN_SIZE = 256  # H·D from which encode uses the float32 product (on G1: even at 260, 8% faster at 416)
CODED_QUANTILE = 0.999  # the coefficients coded hold every non-zero one of this fraction of the training chunks
DECODE_GROUP = 256  # decode multiplies the rows, sorted by their coefficient count, in groups of this many
F32_BOUND_SAFETY = 1.1  # times the float32 error bound (slack for the float64 check): nearer an edge, recomputed


@cache
def _compiled():
    """klt's compiled loops (`_klt_kernels`); only called where numba is."""
    from actok.tokenizers import _klt_kernels

    return _klt_kernels


def time_basis(horizon: int) -> np.ndarray:
    """The orthonormal DCT-II basis over time `[H, H]`, one frequency a column (a chunk's coefficients: T^T x)."""
    return idct(np.eye(horizon), axis=0, norm="ortho")


def dct_basis(horizon: int, action_dim: int) -> np.ndarray:
    """DCT-II over time for each dim, `[H·D, H·D]` for time-major flattened chunks, columns frequency-major (the
    order of FAST's coefficients): nothing learned."""
    return np.kron(time_basis(horizon), np.eye(action_dim))


def dim_basis(centered: np.ndarray, action_dim: int) -> np.ndarray:
    """The PCA of the time steps of the centered flattened chunks `[N, H·D]` over dims, `[D, D]`, by decreasing
    variance."""
    variances, vectors = np.linalg.eigh(np.atleast_2d(np.cov(centered.reshape(-1, action_dim), rowvar=False)))
    return vectors[:, np.argsort(variances)[::-1]]


def separable_basis(centered: np.ndarray, horizon: int, action_dim: int) -> np.ndarray:
    """DCT over time ⊗ PCA over dims, `[H·D, H·D]` for time-major flattened chunks `[N, H·D]`: a structured
    transform with only D x D parameters learned, well estimated from few chunks."""
    return np.kron(time_basis(horizon), dim_basis(centered, action_dim))


def separable_forward(centered: np.ndarray, time: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """Centered flattened chunks `[N, H·D]` -> their coefficients in kron(time, dims), as `[H, N, D]` (frequency,
    chunk, dim): two products, the dims' `[N·H, D] @ [D, D]` (skipped for the identity: the same numbers) and the
    time's `[H, H] @ [H, N·D]`, O(H·D·(H + D)) per chunk where the dense basis costs O((H·D)²). The exported
    processor computes the same products."""
    n, (h, d) = len(centered), (len(time), len(dims))
    y = centered.reshape(n * h, d)
    if not _is_identity(dims):
        y = y @ dims
    return (time.T @ y.reshape(n, h, d).transpose(1, 0, 2).reshape(h, n * d)).reshape(h, n, d)


def separable_inverse(z: np.ndarray, time: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """The inverse of `separable_forward`, in the dtype of its arguments: coefficients `[H, N, D]` -> centered
    values `[H, N, D]` (time, chunk, dim)."""
    h, n, d = z.shape
    w = time @ z.reshape(h, n * d)
    if not _is_identity(dims):
        w = w.reshape(h * n, d) @ dims.T
    return w.reshape(h, n, d)


def _is_identity(matrix: np.ndarray) -> bool:
    return bool(np.array_equal(matrix, np.eye(len(matrix))))


def variance_order(variances: np.ndarray) -> np.ndarray:
    """Coefficient positions by decreasing variance (ties in position order)."""
    return np.argsort(variances, kind="stable")[::-1]


def candidate_bases(
    centered: np.ndarray, horizon: int, action_dim: int, candidates: Sequence[tuple[str, float]]
) -> list[np.ndarray]:
    """The orthonormal basis `[H·D, H·D]` of each (transform, shrinkage) candidate for the centered flattened chunks
    `[N, H·D]`. "klt": the eigenvectors (by decreasing variance) of (1 - shrinkage) x the sample covariance +
    shrinkage x its diagonal in the separable DCT ⊗ PCA basis (with few chunks per coefficient the sample
    covariance's minor directions are noise held-out chunks do not follow; the separable prior has only D x D
    parameters); "separable": that prior, by decreasing variance; "dct": `dct_basis`."""
    if all(kind == "dct" for kind, _ in candidates):
        return [dct_basis(horizon, action_dim)] * len(candidates)
    prior = separable_basis(centered, horizon, action_dim)
    cov = centered.T @ centered / max(len(centered) - 1, 1)
    target = (prior * (cov @ prior)).sum(axis=0)  # the prior's coefficient variances
    bases = []
    for kind, alpha in candidates:
        if kind == "dct":
            bases.append(dct_basis(horizon, action_dim))
        elif kind == "separable" or alpha >= 1:  # the prior itself: no eigendecomposition needed
            bases.append(prior[:, variance_order(target)])
        else:
            variances, vectors = np.linalg.eigh((1 - alpha) * cov + alpha * (prior * target) @ prior.T)
            bases.append(vectors[:, np.argsort(variances)[::-1]])
    return bases


class Separable(NamedTuple):
    """A separable transform's factors: the basis is kron(time, dims)[:, order] (`separable_forward`)."""

    time: np.ndarray  # [H, H]
    dims: np.ndarray  # [D, D]
    order: np.ndarray  # [K] positions of the coded coefficients among the H·D (frequency-major), int64

    def forward(self, centered: np.ndarray, compiled: Any = None) -> np.ndarray:
        """Centered flattened chunks `[N, H·D]` -> the coded coefficients `[N, K]` (float64); `compiled`: the
        compiled loops (`_klt_kernels`), or None for numpy's."""
        z = separable_forward(centered, self.time, self.dims)
        if compiled is not None:
            d = len(self.dims)
            return compiled.gather_coefficients(z, self.order // d, self.order % d)
        return z.transpose(1, 0, 2).reshape(len(centered), z.shape[0] * z.shape[2])[:, self.order]

    def inverse(self, c: np.ndarray, counts: np.ndarray, rows: np.ndarray, compiled: Any = None) -> np.ndarray:
        """The first L <= K coded coefficients `[N, L]` (float32; row r is chunk `rows[r]`, which holds
        `counts[rows[r]]`; the others zero) -> centered values `[H, N, D]` (time, chunk, dim), in float32 (as the
        dense basis's decode)."""
        n, (h, d) = len(c), (len(self.time), len(self.dims))
        if compiled is not None:
            z = compiled.scatter_coefficients(c, counts, rows, self.order // d, self.order % d, h, d)
        else:
            full = np.zeros((n, h * d), dtype=np.float32)
            full[rows[:, None], self.order[: c.shape[1]]] = c
            z = np.ascontiguousarray(full.reshape(n, h, d).transpose(1, 0, 2))
        return separable_inverse(z, self.time.astype(np.float32), self.dims.astype(np.float32))

    def dense(self) -> np.ndarray:
        """The basis `[H·D, K]`."""
        return np.kron(self.time, self.dims)[:, self.order]


def fitted_basis(
    centered: np.ndarray, horizon: int, action_dim: int, chosen: tuple[str, float]
) -> Separable | np.ndarray:
    """The transform of a chosen (transform, shrinkage) for the centered flattened chunks `[N, H·D]`: the factors of
    "dct" (frequency-major, as FAST) and "separable" (and "klt" at shrinkage 1, the separable prior itself; its
    coefficients by decreasing variance over the chunks); else the dense basis `[H·D, H·D]` (`candidate_bases`)."""
    kind, alpha = chosen
    if kind == "klt" and alpha < 1:
        return candidate_bases(centered, horizon, action_dim, [chosen])[0]
    time = time_basis(horizon)
    if kind == "dct":
        return Separable(time, np.eye(action_dim), np.arange(horizon * action_dim))
    dims = dim_basis(centered, action_dim)
    variances = (separable_forward(centered, time, dims) ** 2).sum(axis=1).reshape(-1)  # frequency-major
    return Separable(time, dims, variance_order(variances))


def f32_tolerance(size: int, scale: float, norms: np.ndarray) -> np.ndarray:
    """How far from a quantization edge a scaled float32 coefficient must lie to be on the float64 one's side, per
    chunk of centered norm `norms` `[N]`: F32_BOUND_SAFETY x the error bound of a float32 dot product of `size`
    terms with inputs rounded to float32, (size + 2) u ||x - mean|| (u the unit roundoff; unit basis vectors)."""
    return F32_BOUND_SAFETY * (size + 2) * (np.finfo(np.float32).eps / 2) * scale * norms


def edge_exact_coefficients(
    centered: np.ndarray, basis: np.ndarray, basis32: np.ndarray, scale: float, deadzone: float
) -> np.ndarray:
    """The coefficients encode quantizes on a dense basis of F32_MIN_SIZE values and more, in numpy: the float32
    product of the centered chunks `[N, H·D]` and the basis `[H·D, K]` (`basis32` its float32 copy), each
    coefficient within the float32 error bound ((H·D + 2) u ||x - mean||, u the unit roundoff) of a quantization
    edge, or not finite, recomputed in float64 summed term by term in order (`np.cumsum`), as the compiled loop
    (`_klt_kernels.spell_rows_f32`) and the exported processor do: the quantized values are those of the float64
    coefficients, and every path gives the same ones even for values exactly on an edge."""
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32's range: recomputed below
        c = (centered.astype(np.float32) @ basis32).astype(np.float64)
        tol = f32_tolerance(centered.shape[1], scale, np.sqrt((centered**2).sum(axis=1)))[:, None]
        edge = np.abs(c * scale) + 1.0 - deadzone
        edge -= np.floor(edge)
        rows, cols = np.nonzero(~((edge >= tol) & (edge <= 1.0 - tol)))
    for start in range(0, len(rows), ENCODE_BLOCK):  # bounded memory: ENCODE_BLOCK products of H·D terms at once
        r, t = rows[start : start + ENCODE_BLOCK], cols[start : start + ENCODE_BLOCK]
        c[r, t] = np.cumsum(centered[r] * basis.T[t], axis=1)[:, -1]
    return c


def coded_components(q: np.ndarray) -> int:
    """How many leading coefficients the tokenizer codes, from the quantized training coefficients `q` `[N, H·D]`:
    enough to hold every non-zero one of CODED_QUANTILE of the chunks (at least one). The others are zero after
    quantization in (almost) every training chunk, and computing them is most of encode's cost on many dims."""
    nonzero = q != 0
    last = np.where(nonzero.any(axis=1), q.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    return max(1, int(np.quantile(last, CODED_QUANTILE, method="higher"))) if len(last) else q.shape[1]


def deadzone_quantize(c: np.ndarray, deadzone: float) -> np.ndarray:
    """Scaled coefficients -> integers: |c| below `deadzone` -> 0, larger ones rounded down towards zero with the
    zero bin's edge as the first step (deadzone 0.5: plain rounding); magnitudes stop at MAX_QUANTIZED."""
    return (np.sign(c) * np.floor(np.minimum(np.abs(c) + 1.0 - deadzone, MAX_QUANTIZED))).astype(np.int64)


def deadzone_dequantize(q: np.ndarray, deadzone: float) -> np.ndarray:
    """Integers -> scaled coefficients at their bins' midpoints (bins [k + deadzone - 1, k + deadzone))."""
    return q + np.sign(q) * (deadzone - 0.5)


def coding_bits(train_q: np.ndarray, test_q: np.ndarray) -> float:
    """Bits per chunk an adaptive coder spends on held-out quantized coefficients `test_q` `[M, H·D]` when each
    coefficient follows a discrete Laplace law with the mean magnitude seen at its position in `train_q`: the
    cost of what the training chunks predict (zeros in the tail are almost free) and of what they do not."""
    r = np.exp(-1.0 / np.maximum(np.abs(train_q).mean(axis=0), MIN_LAPLACE_SCALE))
    return float((np.log2((1 + r) / (1 - r)) - np.abs(test_q) * np.log2(r)).sum(axis=1).mean())


def cv_folds(n: int, horizon: int) -> list[np.ndarray]:
    """Held-out chunk indices of each of CV_FOLDS folds: contiguous blocks of at least 4 x `horizon` chunks (the
    chunks of one episode are adjacent and overlap, so single chunks would leak into the training side) dealt to
    the folds in turn, so that each fold holds chunks from all over the recording, as a random episode split does."""
    n_blocks = int(np.clip(n // (4 * horizon), CV_FOLDS, CV_MAX_BLOCKS))
    blocks = np.array_split(np.arange(n), n_blocks)
    return [np.concatenate(blocks[k::CV_FOLDS]) for k in range(CV_FOLDS)]


def choose_transform(
    flat: np.ndarray, horizon: int, action_dim: int, scale: float, deadzone: float
) -> tuple[str, float]:
    """The (transform, shrinkage) of CANDIDATES whose quantized held-out coefficients cost the fewest bits at equal
    distortion, by cross-validation over `cv_folds` of the flattened chunks `[N, H·D]`. Each candidate is measured
    at two scales and its bits interpolated (log-log) to a common distortion. Too few chunks to split: the DCT."""
    if len(flat) < 2 * CV_FOLDS:
        return CANDIDATES[-1]
    rng = np.random.default_rng(0)
    bits, distortion = np.zeros((len(CANDIDATES), len(CV_SCALES))), np.zeros((len(CANDIDATES), len(CV_SCALES)))
    for test in cv_folds(len(flat), horizon):
        train = np.delete(flat, test, axis=0)
        mean = train.mean(axis=0)
        bases = candidate_bases(train - mean, horizon, action_dim, CANDIDATES)
        train = train[np.sort(rng.permutation(len(train))[:CV_MAX_ROWS])] - mean
        test = flat[test][np.sort(rng.permutation(len(test))[:CV_MAX_ROWS])] - mean
        for k, basis in enumerate(bases):
            c_train, c_test = train @ basis, test @ basis
            for j, factor in enumerate(CV_SCALES):
                q_test = deadzone_quantize(c_test * scale * factor, deadzone)
                error = c_test - deadzone_dequantize(q_test, deadzone) / (scale * factor)
                bits[k, j] += coding_bits(deadzone_quantize(c_train * scale * factor, deadzone), q_test)
                distortion[k, j] += np.mean(error**2)
    tiny = np.finfo(np.float64).tiny  # constant chunks: no error and (almost) no bits for any candidate
    log_d, log_b = np.log(np.maximum(distortion, tiny)), np.log(np.maximum(bits, tiny))
    slope = (log_b[:, 1] - log_b[:, 0]) / np.where(log_d[:, 1] != log_d[:, 0], log_d[:, 1] - log_d[:, 0], -1.0)
    at_common = log_b[:, 0] + slope * (log_d.mean() - log_d[:, 0])
    return CANDIDATES[int(np.argmin(at_common))]


def carry_layout(q: np.ndarray) -> tuple[int, int]:
    """The symbol layout for the quantized training coefficients `q`: (half-width T, largest carry K). Values in
    [-T, T] are one symbol each, T the CARRY_QUANTILE of the non-zero magnitudes; a larger value v is a carry
    symbol k = round(v / (2T + 1)) in [-K, K] \\ {0} followed by the symbol of v - k (2T + 1). The alphabet (2T + 1 +
    2K symbols) stays small where a few leading coefficients are large (high-dimensional chunks), leaving the
    vocabulary to BPE merges."""
    magnitudes = np.abs(q[q != 0])
    half = max(1, int(np.quantile(magnitudes, CARRY_QUANTILE))) if len(magnitudes) else 1
    return half, int(np.ceil(max(int(np.abs(q).max(initial=0)) - half, 0) / (2 * half + 1)))


def spell_symbols(q: np.ndarray, half: int, carries: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantized coefficients `[N, C]` -> each row's symbols (alphabet indices; flat `[S]`, row offsets `[N + 1]`):
    each coefficient up to the row's last non-zero one as its (carry and) value symbols (`carry_layout`), clipped
    into what the layout spells. The row's end is the end of block: trailing zeros are not written."""
    modulus = 2 * half + 1
    nonzero = q != 0
    stop = np.where(nonzero.any(axis=1), q.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
    q = np.clip(q[:, : stop.max(initial=0)], -(carries * modulus + half), carries * modulus + half)
    k = np.rint(q / modulus).astype(np.int64)
    inside = np.arange(q.shape[1]) < stop[:, None]
    codes = np.stack([modulus + k + carries - (k > 0), q - k * modulus + half], axis=2)
    mask = np.stack([inside & (k != 0), inside], axis=2)
    offsets = np.zeros(len(q) + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=(1, 2)), out=offsets[1:])
    return codes[mask], offsets


def spell(q: np.ndarray, half: int, carries: int) -> list[str]:
    """`spell_symbols` as one string per row, symbol k as the character `chr(BASE + k)`."""
    symbols, offsets = spell_symbols(q, half, carries)
    text = (symbols + BASE).astype("<u4").tobytes().decode("utf-32-le")
    return [text[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def read_symbols(symbols: np.ndarray, row: np.ndarray, n: int, m: int, half: int, carries: int) -> np.ndarray:
    """The inverse of `spell` for any symbol stream: `symbols` (alphabet indices) with their `row` in [0, n),
    rows in order -> quantized coefficients `[n, L]`, L <= m (later coefficients zero). Carries add up until the
    next value symbol; a carry with none after it is ignored; values past the m-th are ignored."""
    modulus = 2 * half + 1
    is_value = symbols < modulus
    c = symbols - modulus
    carry = np.where(is_value, 0, c - carries + (c >= carries))
    total = np.cumsum(carry)
    at = np.flatnonzero(is_value)
    value_row = row[at]
    previous = np.concatenate([[0], total[at[:-1]]])  # the running carry at the previous value symbol
    n_symbols = np.bincount(row, minlength=n)
    first = np.cumsum(n_symbols) - n_symbols  # each row's first symbol
    new_row = np.concatenate([[True], value_row[1:] != value_row[:-1]])
    row_base = total[first[value_row]] - carry[first[value_row]]  # the running carry before the row
    acc = total[at] - np.where(new_row, row_base, previous)
    limit = carries * modulus + half
    values = np.clip(symbols[at] - half + acc * modulus, -limit, limit)
    per_row = np.bincount(value_row, minlength=n)
    rank = np.arange(len(at)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    keep = rank < m
    q = np.zeros((n, int(rank[keep].max(initial=-1)) + 1), dtype=np.int64)  # the zero tail is not multiplied
    q[value_row[keep], rank[keep]] = values[keep]
    return q


class KLTTokenizer(ActionTokenizer):
    """Learned orthonormal transform + dead-zone quantization + implicit end of block + BPE.

    Args:
        scale: coefficients are multiplied by this before quantization (larger = finer, more tokens).
        vocab_size: BPE vocabulary size (at least the coefficient range seen in `fit` + 1).
        deadzone: half-width of the zero bin in quantization steps (0.5 = plain rounding).
        transform: "klt" (PCA of the flattened chunks, shrunk towards the separable one by
            `shrinkage`), "separable" (DCT over time ⊗ PCA over dims), "dct" (FAST's, nothing learned), or "auto":
            the one of `CANDIDATES` that cross-validation on the training chunks finds cheapest.
        shrinkage: for transform "klt", the weight of the separable prior in the covariance (0 = the plain KLT).
    """

    name = "klt"
    decodes_fitted_shape_only = True
    every_sequence_decodes = True
    conformance_rmse_bound = 0.05
    conformance_decode_atol = 1e-5  # float32 basis products round differently with the batch size

    def __init__(
        self,
        scale: Scale = 10.0,
        vocab_size: Annotated[int, Interval(ge=3, le=MAX_VOCAB)] = 1024,
        deadzone: Annotated[float, Interval(ge=0.5, lt=1.5)] = 0.7,
        transform: Literal[TRANSFORMS] = "auto",
        shrinkage: Annotated[float, Interval(ge=0, le=1)] = 0.0,
    ):
        super().__init__()
        self.scale, self._vocab_size, self.deadzone = scale, vocab_size, deadzone
        self.transform, self.shrinkage = transform, shrinkage
        self.mean: np.ndarray | None = None  # [H·D]
        self.basis: np.ndarray | None = None  # [H·D, K]: the coded components (`coded_components`) in order
        self.separable: Separable | None = None  # the factors of `basis` where the transform is separable
        self.half_width: int | None = None  # the symbol layout (`carry_layout`)
        self.max_carry: int | None = None
        self.value_low: np.ndarray | None = None  # [D]: each dim's range in the training chunks
        self.value_high: np.ndarray | None = None
        self.fitted_transform: tuple[str, float] | None = None  # the (transform, shrinkage) fit chose
        self.bpe: Tokenizer | None = None
        self._kernels = None  # klt's compiled loops once fitted, where numba is (`_prepare`)

    @property
    def vocab_size(self) -> int:
        """The BPE's size once fitted (at most the `vocab_size` parameter: few training chunks leave fewer
        merges), so that every id below it is a token and decodes; the parameter before."""
        return self._vocab_size if self.bpe is None else self._n_vocab

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "vocab_size": self._vocab_size}  # the parameter, not the fitted size

    # ------------------------------------------------------------ transform
    def coefficients(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[N, H, D]` -> their coded coefficients `[N, K]` (before the scale), in float64."""
        centered = flatten_rows(chunks) - self.mean
        return centered @ self.basis if self.separable is None else self.separable.forward(centered, self._kernels)

    def quantize(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[N, H, D]` -> quantized coded coefficients `[N, K]` (int64, not clipped): what encode spells (on a
        dense basis of F32_MIN_SIZE values and more, `edge_exact_coefficients`; the same numbers as `coefficients`
        but for values within rounding of an edge, which every path of encode puts on the same side)."""
        if self.separable is not None or self.basis.shape[0] < F32_MIN_SIZE:
            return deadzone_quantize(self.coefficients(chunks) * self.scale, self.deadzone)
        centered = flatten_rows(chunks) - self.mean
        c = edge_exact_coefficients(centered, self.basis, self._basis32, self.scale, self.deadzone)
        return deadzone_quantize(c * self.scale, self.deadzone)

    def dequantize(self, q: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """The first L <= K quantized coefficients `[N, L]` (the others zero) -> chunks `[N, H, D]`, each
        coefficient at its bin's reconstruction point (the dead zone's bins are [k + deadzone - 1, k + deadzone)
        steps, decoded at their midpoint), each value clipped into its dim's range in the training chunks (any
        coefficients give a chunk in that range). `counts` `[N]`: how many coefficients each row holds (`_to_chunks`;
        default L)."""
        counts = np.full(len(q), q.shape[1]) if counts is None else counts
        rows = np.argsort(counts, kind="stable")
        c = (deadzone_dequantize(q, self.deadzone) / self.scale)[rows].astype(np.float32)
        return self._to_chunks(c, counts, rows)

    def _to_chunks(self, c: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The first L coefficients `[N, L]` (float32, before the scale; the others zero; row r is chunk `rows[r]`,
        which holds `counts[rows[r]]` of them, the rows sorted by count) -> chunks `[N, H, D]` clipped into the
        training range, as the exported processor computes them. A separable transform runs its two small products
        (float32). Else the basis product runs in float32 (sgemm, about twice dgemm's speed), DECODE_GROUP rows at
        a time, each group with only the basis vectors its longest row needs; the mean is then added in float64
        and the clip done (in compiled loops where numba is)."""
        n, shape, compiled = len(c), (len(c), self.horizon, self.action_dim), self._kernels
        if self.separable is not None:
            v = self.separable.inverse(c, counts, rows, compiled)
            if compiled is not None:
                return compiled.finish_time_first(v, self.mean, self.value_low, self.value_high)
            x = v.transpose(1, 0, 2).reshape(n, -1) + self.mean
        else:
            x = np.empty((n, self.horizon * self.action_dim))

            def multiply(groups: slice) -> None:  # groups of DECODE_GROUP sorted rows, whole groups per thread
                for start in range(groups.start * DECODE_GROUP, min(groups.stop * DECODE_GROUP, n), DECODE_GROUP):
                    group = rows[start : start + DECODE_GROUP]
                    product = c[start : start + len(group), : counts[group[-1]]] @ self._rows32[: counts[group[-1]]]
                    if compiled is not None:
                        compiled.finish_rows(product, group, self.mean, *self._step_range, x)
                    else:
                        x[group] = product + self.mean

            if compiled is not None:
                kernels.map_row_blocks(multiply, -(-n // DECODE_GROUP), min_rows=1)
                return x.reshape(shape)
            multiply(slice(0, -(-n // DECODE_GROUP)))
        x = x.reshape(shape)
        np.maximum(x, self.value_low, out=x)
        return np.minimum(x, self.value_high, out=x)

    # ------------------------------------------------------------- protocol
    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> KLTTokenizer:
        chunks = as_chunks(chunks)
        n, h, d = chunks.shape
        if n < 2:
            raise ActokError(f"klt needs at least 2 chunks to fit, got {n}")
        self._set_shape(chunks)
        flat = flatten_rows(chunks)
        self.mean = flat.mean(axis=0)
        auto = self.transform == "auto"
        chosen = choose_transform(flat, h, d, self.scale, self.deadzone) if auto else (self.transform, self.shrinkage)
        self.fitted_transform = (chosen[0], float(chosen[1]))
        transform = fitted_basis(flat - self.mean, h, d, self.fitted_transform)
        self.separable, self.basis = (transform, None) if isinstance(transform, Separable) else (None, transform)
        q = deadzone_quantize(self.coefficients(chunks) * self.scale, self.deadzone)  # every coefficient
        k = coded_components(q)
        q = q[:, :k]
        if self.separable is None:
            self.basis = np.ascontiguousarray(self.basis[:, :k])
        else:
            self.separable = self.separable._replace(order=self.separable.order[:k])
            self.basis = self.separable.dense()
        self.value_low, self.value_high = chunks.min(axis=(0, 1)), chunks.max(axis=(0, 1))
        self.half_width, self.max_carry = carry_layout(q)
        span = self._alphabet_size()
        if span + 1 > self._vocab_size:
            raise ActokError(
                f"vocab_size {self._vocab_size} is smaller than the {span} coefficient symbols + 1 at scale "
                f"{self.scale:g}: use "
                + (f"vocab_size >= {span + 1} or " if span < MAX_VOCAB else "")
                + "a smaller scale"
            )
        self.bpe = train_bpe(self._strings(q), self._vocab_size, span, first_symbol=BASE, byte_level=False)
        self._prepare()
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Chunks `[N, H, D]` -> ids per chunk: `quantize`, `spell_symbols`, BPE (the compiled encoder where numba
        is, else the library: the same ids)."""
        chunks = self._check_shape(chunks)
        self._check_fitted_state()
        ids = []
        for start in range(0, len(chunks), ENCODE_BLOCK):  # bounded memory for large batches
            block = chunks[start : start + ENCODE_BLOCK]
            if self._kernels is None:
                q = self.quantize(block)
                ids += [e.ids for e in self.bpe.encode_batch_fast(self._strings(q))]
            else:
                ids += kernels.encode_symbol_blocks(self._speller(block), len(block), self._encode_tables)
        return ids

    def _speller(self, chunks: np.ndarray) -> Callable[[slice], tuple[np.ndarray, np.ndarray]]:
        """Chunks `[N, H, D]` -> `spell(rows)`: the symbols and row offsets (`spell_rows`) of a slice of the chunks,
        the ids of the float64 coefficients (`coefficients`), for `encode_symbol_blocks` to run on row blocks in
        threads (each block computes its own coefficients): a separable transform's two small products; a dense
        basis on F32_MIN_SIZE values and more, the product in float32 (sgemm, about twice dgemm's speed),
        `spell_rows_f32` recomputing in float64 each coefficient within the float32 error bound of a quantization
        edge. The bound: a dot product of P terms in float32, inputs rounded to float32, errs by at most
        (P + 2) u ||x - mean|| (u the unit roundoff, the basis vectors unit length)."""
        flat, compiled = flatten_rows(chunks), self._kernels
        fixed = (self.scale, self.deadzone, self.half_width, self.max_carry)
        if self.separable is not None or flat.shape[1] < F32_MIN_SIZE:
            return lambda rows: compiled.spell_rows(self.coefficients(chunks[rows]), *fixed)

        def spell(rows: slice) -> tuple[np.ndarray, np.ndarray]:
            centered32, norms = compiled.center_f32(flat[rows], self.mean)
            with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32's range: recomputed
                c32 = centered32 @ self._basis32
            tol = f32_tolerance(flat.shape[1], self.scale, norms)
            return compiled.spell_rows_f32(c32, flat[rows], self.mean, self._basis_t, tol, *fixed)

        return spell

    def _alphabet_size(self) -> int:
        return 2 * self.half_width + 1 + 2 * self.max_carry

    def _limit(self) -> int:
        """The largest coefficient magnitude the symbol layout spells."""
        return self.max_carry * (2 * self.half_width + 1) + self.half_width

    def count_clipped(self, chunks: np.ndarray) -> int:
        """Coefficients beyond what the symbol layout spells (encode clips them into it)."""
        q = self.quantize(self._check_shape(chunks))
        return int(np.count_nonzero(np.abs(q) > self._limit()))

    def diagnostics(self, chunks: np.ndarray, ids: list[list[int]]) -> dict[str, float]:
        """The fraction of coefficients beyond what the symbol layout spells (`count_clipped`)."""
        return {"clipped_coefficient_fraction": self.count_clipped(chunks) / chunks.size}

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every sequence of known ids is valid: its symbols are the coefficients in order (`read_symbols`), the
        string's end is the end of block (the coefficients after it are zero), symbols past the K coded
        coefficients are ignored. So a prefix decodes to a coarser chunk. Only unknown ids make a row invalid; the
        repair (`relaxed`) skips them."""
        n, m = len(batch), self.basis.shape[1]
        if self._kernels is None:  # numpy
            points, row, _, ids_ok, _ = self._symbols.gather(batch)  # every token is whole symbols
            symbols = points - BASE
            counts = np.minimum(np.bincount(row[symbols < 2 * self.half_width + 1], minlength=n), m)
            q = read_symbols(symbols, row, n, m, self.half_width, self.max_carry)
            return self.dequantize(q, counts), ids_ok
        table = self._symbols
        c, counts, rows, ids_ok = self._kernels.ids_to_values(
            batch.flat, batch.lengths, self._n_vocab, table.start, table.length, self._token_symbols,
            self._token_values, m, self.half_width, self.max_carry, self.deadzone, self.scale,
        )  # fmt: skip
        return self._to_chunks(c, counts, rows), ids_ok

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        return f"ids in [0, {self._n_vocab})"

    # -------------------------------------------------------------- internals
    def _check_fitted_state(self) -> None:
        if self.bpe is None or self.basis is None:
            raise ActokError("klt tokenizer is not fitted: call fit(chunks) first or load a saved one")

    def _strings(self, q: np.ndarray) -> list[str]:
        """Quantized coefficients `[N, H·D]` -> symbol strings (`spell`)."""
        return spell(q, self.half_width, self.max_carry)

    def _prepare(self) -> None:
        """id -> code points table for the vectorized decode (char-level BPE: every token is whole symbols), and
        the compiled encoder's tables."""
        self._symbols = SymbolTable.build(self.bpe.get_vocab(), byte_level=False)
        self._n_vocab = self.bpe.get_vocab_size()
        self._token_symbols = self._symbols.points - BASE  # each token's alphabet indices, token after token
        token = np.repeat(np.arange(len(self._symbols.start)), self._symbols.length)
        is_value = self._token_symbols < 2 * self.half_width + 1
        self._token_values = np.bincount(token, weights=is_value, minlength=len(self._symbols.start)).astype(np.int64)
        numba = kernels.numba_available()
        self._kernels = _compiled() if numba else None  # klt's compiled loops; None: numpy's steps
        self._encode_tables = (
            kernels.SymbolEncodeTables.build(self.bpe.to_str(), BASE, self._alphabet_size()) if numba else None
        )
        self._basis32 = self.basis.astype(np.float32)  # encode's product
        self._step_range = (np.tile(self.value_low, self.horizon), np.tile(self.value_high, self.horizon))  # [H·D]
        self._rows32 = np.ascontiguousarray(self._basis32.T)  # decode's: the first L basis vectors are contiguous
        if numba and self.separable is None:  # the compiled encoder's basis vectors
            self._basis_t = np.ascontiguousarray(self.basis.T)

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_fitted_state()
        arrays = {name: getattr(self, name) for name in BASIS_ARRAYS}
        if self.separable is not None:
            arrays.update(zip(FACTOR_ARRAYS, self.separable, strict=True))
        np.savez(directory / BASIS_FILE, **arrays)
        fields = {
            "scale": self.scale,
            "deadzone": self.deadzone,
            "half_width": self.half_width,
            "max_carry": self.max_carry,
            "time_horizon": self.horizon,
            "action_dim": self.action_dim,
        }
        write_processor_files(directory, self.bpe, PROCESSOR_MODULE, "KLTActionProcessor", fields)
        return {
            "half_width": self.half_width,
            "max_carry": self.max_carry,
            "fitted_transform": self.fitted_transform[0],
            "fitted_shrinkage": self.fitted_transform[1],
            "basis": BASIS_FILE,
            "bpe": TOKENIZER_FILE,
        }

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        fields = {
            "half_width": Annotated[int, Interval(ge=1, le=MAX_VOCAB)],
            "max_carry": Annotated[int, Interval(ge=0, le=MAX_VOCAB)],
            "fitted_transform": Literal[TRANSFORMS[1:]],
            "fitted_shrinkage": Annotated[float, Interval(ge=0, le=1)],
            "basis": Literal[BASIS_FILE],
            "bpe": Literal[TOKENIZER_FILE],
        }
        state = check_fields(directory / CONFIG_FILE, state, fields)
        self.half_width, self.max_carry = state["half_width"], state["max_carry"]
        self.fitted_transform = (state["fitted_transform"], state["fitted_shrinkage"])
        if self._alphabet_size() + 1 > self._vocab_size:
            raise ActokError(
                f"{directory / CONFIG_FILE}: state half_width {self.half_width} and max_carry {self.max_carry} give "
                f"{self._alphabet_size()} symbols, more than vocab_size {self._vocab_size} - 1"
            )
        for name in (BASIS_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise ActokError(f"{directory} is not a complete klt tokenizer: the file {name} is missing")
        arrays, self.separable = _read_basis(directory / BASIS_FILE, self.horizon, self.action_dim)
        for name in BASIS_ARRAYS:
            setattr(self, name, arrays[name])
        path = directory / TOKENIZER_FILE
        self.bpe = read_bpe_file(path)
        vocab = self.bpe.get_vocab()
        alphabet = {chr(BASE + k) for k in range(self._alphabet_size())}
        if (
            sorted(vocab.values()) != list(range(len(vocab)))
            or len(vocab) > self._vocab_size
            or not alphabet <= vocab.keys()
            or not set("".join(vocab)) <= alphabet
        ):
            raise ActokError(
                f"{path} is not the BPE fit builds for the klt state in {CONFIG_FILE} (a vocabulary of at most "
                f"{self._vocab_size} ids over its {len(alphabet)} coefficient symbols)"
            )
        self._prepare()


def _read_basis(path: Path, horizon: int, action_dim: int) -> tuple[dict[str, np.ndarray], Separable | None]:
    """The arrays of BASIS_ARRAYS in `path` (mean `[H·D]`, orthonormal basis `[H·D, K]`, each dim's value range
    `[D]`) as float64, and a separable transform's factors (FACTOR_ARRAYS, where the file holds them), or
    `ActokError` saying what is wrong."""
    try:
        with open(path, "rb") as file:  # ours to close: np.load leaves a file it fails to read open
            data = np.load(file)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array")
            with data:
                arrays = {k: data[k] for k in BASIS_ARRAYS + FACTOR_ARRAYS if k in data.files}
    except OSError as exc:
        raise ActokError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise ActokError(f"{path} is not an .npz archive of arrays (as np.savez writes)") from None
    missing = [k for k in BASIS_ARRAYS if k not in arrays]
    if missing:
        raise ActokError(f"{path} lacks the array {missing[0]!r}")
    size = horizon * action_dim
    k = arrays["basis"].shape[1] if arrays["basis"].ndim == 2 and 1 <= arrays["basis"].shape[1] <= size else size
    shapes = {"mean": (size,), "basis": (size, k), "value_low": (action_dim,), "value_high": (action_dim,)}
    wrong = [k for k in BASIS_ARRAYS if arrays[k].shape != shapes[k] or arrays[k].dtype.kind != "f"]
    if wrong:
        raise ActokError(
            f"{path} holds a {wrong[0]} of {arrays[wrong[0]].dtype} {arrays[wrong[0]].shape}; the tokenizer's shape "
            f"needs float arrays mean {shapes['mean']}, basis ({size}, K) with 1 <= K <= {size}, value_low and "
            f"value_high {shapes['value_low']}"
        )
    arrays = {name: v.astype(np.float64) for name, v in arrays.items() if name in BASIS_ARRAYS} | {
        name: v for name, v in arrays.items() if name in FACTOR_ARRAYS
    }
    if not all(np.isfinite(arrays[name]).all() for name in BASIS_ARRAYS):
        raise ActokError(f"{path} holds values that are not finite")
    if not np.allclose(arrays["basis"].T @ arrays["basis"], np.eye(k), atol=1e-6):
        raise ActokError(f"{path} does not hold an orthonormal basis")
    if not (arrays["value_low"] <= arrays["value_high"]).all():
        raise ActokError(f"{path} holds a value range whose low exceeds its high")
    return {name: arrays[name] for name in BASIS_ARRAYS}, _read_factors(path, arrays, horizon, action_dim)


def _orthonormal(matrix: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: not orthonormal, no warning
        return bool(np.allclose(matrix.T @ matrix, np.eye(len(matrix)), atol=1e-6))


def _read_factors(path: Path, arrays: dict[str, np.ndarray], horizon: int, action_dim: int) -> Separable | None:
    """The separable factors among `arrays` (none, or all of FACTOR_ARRAYS, equal to the basis), or `ActokError`."""
    present = [name for name in FACTOR_ARRAYS if name in arrays]
    if not present:
        return None
    basis = arrays["basis"]
    time, dims, order = (arrays.get(name) for name in FACTOR_ARRAYS)
    if (
        len(present) < len(FACTOR_ARRAYS)
        or time.shape != (horizon, horizon)
        or dims.shape != (action_dim, action_dim)
        or time.dtype.kind != "f"
        or dims.dtype.kind != "f"
        or order.shape != (basis.shape[1],)
        or order.dtype.kind not in "iu"
        or not np.isfinite(time).all()
        or not np.isfinite(dims).all()
        or not ((order >= 0) & (order < len(basis))).all()
        or not all(_orthonormal(factor) for factor in (time, dims))  # the columns no coefficient uses too
        or not np.allclose(np.kron(time, dims)[:, order], basis, atol=1e-9)
    ):
        raise ActokError(
            f"{path} holds separable factors ({', '.join(FACTOR_ARRAYS)}) that are not those of its basis: "
            f"orthonormal time_basis ({horizon}, {horizon}) and dim_basis ({action_dim}, {action_dim}) whose "
            f"Kronecker product's columns at order ({basis.shape[1]},) are the basis"
        )
    return Separable(time.astype(np.float64), dims.astype(np.float64), order.astype(np.int64))
