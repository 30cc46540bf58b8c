"""`klt`: our rate-distortion tokenizer — a learned decorrelating transform, dead-zone quantization, an explicit
end-of-block symbol and BPE over the ordered coefficients.

Where FAST spends its tokens (REFERENCES §3, measured in docs/zoo.md):
1. The DCT decorrelates each dimension over time but not the dimensions from each other; joint actions (arms,
   grippers moving together) leave a lot of shared structure. The Karhunen–Loève transform (PCA of the
   flattened training chunks, `[H·D]`) decorrelates both, and orders the coefficients by variance.
2. With that order, everything after the last non-zero coefficient is zeros: we stop there and write one
   end-of-block symbol (as JPEG does) instead of spelling the zero run out. The symbol also makes a truncated or
   extended sequence detectable, so decoding stays strict.
3. A dead zone (`deadzone` > 0.5: values below `deadzone / scale` in magnitude become zero, larger ones are
   rounded down towards zero with the same step) trades a little error for more zeros; at equal RMSE this wins
   tokens (the scale is raised to pay the error back; see docs/zoo.md).
4. BPE runs on the code points directly, with no GPT-2 pre-tokenizer: FAST's byte-level pre-tokenizer splits
   "words" at whitespace and punctuation code points, and when the zero coefficient lands on one (e.g. U+0085)
   no merge can span a run of zeros.

The transform is orthonormal, so the coefficient quantization error is exactly the reconstruction error.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Interval
from scipy.fft import idct
from tokenizers import Tokenizer, models, trainers

from actok.errors import ActokError
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks, flatten_rows, read_bpe_file
from actok.tokenizers.hub import TOKENIZER_FILE, write_processor_files
from actok.tokenizers.params import MAX_VOCAB, Scale, check_fields

BASE = 0x100  # code point of the smallest coefficient symbol (clear of ASCII controls)
BASIS_FILE = "klt_basis.npz"
PROCESSOR_MODULE = "processing_klt.py"  # the self-contained Hugging Face processor
BASIS_ARRAYS = ("mean", "basis", "value_low", "value_high")
TRANSFORMS = ("auto", "klt", "separable", "dct")
# What transform="auto" chooses from: (transform, shrinkage) pairs, from the most learned to the least.
CANDIDATES = (("klt", 0.0), ("klt", 0.5), ("separable", 1.0), ("dct", 1.0))
CV_FOLDS = 3
CV_MAX_BLOCKS = 24  # contiguous blocks of chunks, dealt to the folds in turn
CV_MAX_ROWS = 1000  # chunks per fold side the cross-validation projects (a sample: it estimates averages)
CV_SCALES = (0.8, 1.25)  # times the scale: two points of each candidate's rate-distortion curve
MIN_LAPLACE_SCALE = 0.2  # the smallest mean |coefficient| the coding-cost model assumes (caps a surprise's cost)


def dct_basis(horizon: int, action_dim: int) -> np.ndarray:
    """DCT-II over time for each dim, `[H·D, H·D]` for time-major flattened chunks, columns frequency-major (the
    order of FAST's coefficients): nothing learned."""
    return np.kron(idct(np.eye(horizon), axis=0, norm="ortho"), np.eye(action_dim))


def separable_basis(centered: np.ndarray, horizon: int, action_dim: int) -> np.ndarray:
    """DCT over time ⊗ PCA over dims, `[H·D, H·D]` for time-major flattened chunks `[N, H·D]`: a structured
    transform with only D x D parameters learned, well estimated from few chunks."""
    per_step = centered.reshape(-1, action_dim)
    variances, vectors = np.linalg.eigh(np.atleast_2d(np.cov(per_step, rowvar=False)))
    return np.kron(idct(np.eye(horizon), axis=0, norm="ortho"), vectors[:, np.argsort(variances)[::-1]])


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
            bases.append(prior[:, np.argsort(target, kind="stable")[::-1]])
        else:
            variances, vectors = np.linalg.eigh((1 - alpha) * cov + alpha * (prior * target) @ prior.T)
            bases.append(vectors[:, np.argsort(variances)[::-1]])
    return bases


def deadzone_quantize(c: np.ndarray, deadzone: float) -> np.ndarray:
    """Scaled coefficients -> integers: |c| below `deadzone` -> 0, larger ones rounded down towards zero with the
    zero bin's edge as the first step (deadzone 0.5: plain rounding)."""
    return (np.sign(c) * np.floor(np.abs(c) + 1.0 - deadzone)).astype(np.int64)


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
    log_d, log_b = np.log(distortion), np.log(bits)
    slope = (log_b[:, 1] - log_b[:, 0]) / np.where(log_d[:, 1] != log_d[:, 0], log_d[:, 1] - log_d[:, 0], -1.0)
    at_common = log_b[:, 0] + slope * (log_d.mean() - log_d[:, 0])
    return CANDIDATES[int(np.argmin(at_common))]


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
    conformance_decode_atol = 1e-12

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
        self.basis: np.ndarray | None = None  # [H·D, H·D], columns = components by decreasing variance
        self.low: int | None = None  # smallest / largest quantized coefficient seen in fit (the alphabet)
        self.high: int | None = None
        self.value_low: np.ndarray | None = None  # [D]: each dim's range in the training chunks
        self.value_high: np.ndarray | None = None
        self.fitted_transform: tuple[str, float] | None = None  # the (transform, shrinkage) fit chose
        self.bpe: Tokenizer | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    # ------------------------------------------------------------ transform
    def quantize(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[N, H, D]` -> quantized coefficients `[N, H·D]` (int64, not clipped)."""
        return deadzone_quantize((flatten_rows(chunks) - self.mean) @ self.basis * self.scale, self.deadzone)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Quantized coefficients `[N, H·D]` -> chunks `[N, H, D]`, each coefficient at its bin's reconstruction
        point (the dead zone's bins are [k + deadzone - 1, k + deadzone) steps, decoded at their midpoint), each
        value clipped into its dim's range in the training chunks (any coefficients give a chunk in that range)."""
        c = deadzone_dequantize(q, self.deadzone) / self.scale
        x = (c @ self.basis.T + self.mean).reshape(len(q), self.horizon, self.action_dim)
        return np.clip(x, self.value_low, self.value_high)

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
        self.basis = candidate_bases(flat - self.mean, h, d, [self.fitted_transform])[0]
        self.value_low, self.value_high = chunks.min(axis=(0, 1)), chunks.max(axis=(0, 1))
        q = self.quantize(chunks)
        self.low, self.high = int(q.min()), int(q.max())
        span = self.high - self.low + 1
        if span + 1 > self._vocab_size:
            raise ActokError(
                f"vocab_size {self._vocab_size} is smaller than the coefficient range {span} + 1 at scale "
                f"{self.scale:g}: use vocab_size >= {span + 1} or a smaller scale"
            )
        self.bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=self._vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=[chr(BASE + k) for k in range(span)],
            max_token_length=10000,
        )
        self.bpe.train_from_iterator(self._strings(q), trainer=trainer)
        self._prepare()
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        chunks = self._check_shape(chunks)
        self._check_fitted_state()
        return [e.ids for e in self.bpe.encode_batch_fast(self._strings(self.quantize(chunks)))]

    def count_clipped(self, chunks: np.ndarray) -> int:
        """Coefficients outside the range seen in `fit` (encode clips them into it)."""
        q = self.quantize(self._check_shape(chunks))
        return int(np.count_nonzero((q < self.low) | (q > self.high)))

    def extra_metrics(self, chunks: np.ndarray, ids: list[list[int]], decoded: np.ndarray) -> dict[str, float]:
        return {"clipped_coefficient_fraction": self.count_clipped(chunks) / chunks.size}

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every sequence of known ids is valid: its symbols are the coefficients in order, the string's end is
        the end of block (the coefficients after it are zero), symbols past H·D are ignored. So a prefix decodes
        to a coarser chunk. Only unknown ids make a row invalid; the repair (`relaxed`) skips them."""
        n, m = len(batch), horizon * action_dim
        token_row = np.repeat(np.arange(n), batch.lengths)
        known = (batch.flat >= 0) & (batch.flat < self._n_vocab)
        safe = np.where(known, batch.flat, 0)
        sizes = np.where(known, self._token_length[safe], 0)  # symbols per token
        ends = np.cumsum(sizes)
        total = int(ends[-1]) if len(ends) else 0
        gather = np.repeat(self._token_start[safe] - (ends - sizes), sizes) + np.arange(total)
        row = np.repeat(token_row, sizes)
        per_row = np.bincount(row, minlength=n)
        rank = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)  # position within the row
        keep = rank < m
        q = np.zeros((n, m), dtype=np.int64)
        q[row[keep], rank[keep]] = self._token_points[gather[keep]] - BASE + self.low
        return self.dequantize(q), np.bincount(token_row[~known], minlength=n) == 0

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        return f"ids in [0, {self._n_vocab})"

    # -------------------------------------------------------------- internals
    def _check_fitted_state(self) -> None:
        if self.bpe is None or self.basis is None:
            raise ActokError("klt tokenizer is not fitted: call fit(chunks) first or load a saved one")

    def _strings(self, q: np.ndarray) -> list[str]:
        """Quantized coefficients `[N, H·D]` -> symbol strings: clipped into the fitted range, trailing zeros
        dropped (the string's end is the end of block)."""
        q = np.clip(q, self.low, self.high)
        nonzero = q != 0
        stop = np.where(nonzero.any(axis=1), q.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
        codes = (q - self.low + BASE).astype("<u4")
        text = np.ascontiguousarray(codes).tobytes().decode("utf-32-le")
        width = q.shape[1]
        return [text[i * width : i * width + int(k)] for i, k in enumerate(stop)]

    def _prepare(self) -> None:
        """id -> code points table for the vectorized decode (char-level BPE: every token is whole symbols)."""
        vocab = self.bpe.get_vocab()
        self._n_vocab = self.bpe.get_vocab_size()
        starts, sizes = np.zeros(self._n_vocab, np.int64), np.zeros(self._n_vocab, np.int64)
        pieces, offset = [""] * self._n_vocab, 0
        for token, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            starts[i], sizes[i], pieces[i] = offset, len(token), token
            offset += len(token)
        self._token_start, self._token_length = starts, sizes
        self._token_points = np.frombuffer("".join(pieces).encode("utf-32-le"), dtype="<u4").astype(np.int64)

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_fitted_state()
        np.savez(directory / BASIS_FILE, **{name: getattr(self, name) for name in BASIS_ARRAYS})
        fields = {
            "scale": self.scale,
            "deadzone": self.deadzone,
            "low": self.low,
            "high": self.high,
            "time_horizon": self.horizon,
            "action_dim": self.action_dim,
        }
        write_processor_files(directory, self.bpe, PROCESSOR_MODULE, "KLTActionProcessor", fields)
        return {
            "low": self.low,
            "high": self.high,
            "fitted_transform": self.fitted_transform[0],
            "fitted_shrinkage": self.fitted_transform[1],
            "basis": BASIS_FILE,
            "bpe": TOKENIZER_FILE,
        }

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        fields = {
            "low": int,
            "high": int,
            "fitted_transform": Literal[TRANSFORMS[1:]],
            "fitted_shrinkage": Annotated[float, Interval(ge=0, le=1)],
            "basis": Literal[BASIS_FILE],
            "bpe": Literal[TOKENIZER_FILE],
        }
        state = check_fields(directory / CONFIG_FILE, state, fields)
        self.low, self.high = state["low"], state["high"]
        self.fitted_transform = (state["fitted_transform"], state["fitted_shrinkage"])
        if not 0 <= self.high - self.low <= self._vocab_size - 2:
            raise ActokError(
                f"{directory / CONFIG_FILE}: state low {self.low} and high {self.high} do not give a coefficient range "
                f"that fits vocab_size {self._vocab_size} (high >= low, high - low + 2 <= vocab_size)"
            )
        for name in (BASIS_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise ActokError(f"{directory} is not a complete klt tokenizer: the file {name} is missing")
        arrays = _read_basis(directory / BASIS_FILE, self.horizon, self.action_dim)
        for name in BASIS_ARRAYS:
            setattr(self, name, arrays[name])
        path = directory / TOKENIZER_FILE
        self.bpe = read_bpe_file(path)
        vocab = self.bpe.get_vocab()
        alphabet = {chr(BASE + k) for k in range(self.high - self.low + 1)}
        if (
            sorted(vocab.values()) != list(range(len(vocab)))
            or len(vocab) > self._vocab_size
            or not alphabet <= vocab.keys()
            or not set("".join(vocab)) <= alphabet
        ):
            raise ActokError(
                f"{path} is not the BPE fit builds for the klt state in {CONFIG_FILE} (a vocabulary of at most "
                f"{self._vocab_size} ids over the {len(alphabet)} symbols of coefficients {self.low}..{self.high})"
            )
        self._prepare()


def _read_basis(path: Path, horizon: int, action_dim: int) -> dict[str, np.ndarray]:
    """The arrays of BASIS_ARRAYS in `path` (mean `[H·D]`, orthonormal basis `[H·D, H·D]`, each dim's value range
    `[D]`) as float64, or `ActokError` saying what is wrong."""
    try:
        with open(path, "rb") as file:  # ours to close: np.load leaves a file it fails to read open
            data = np.load(file)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array")
            with data:
                arrays = {k: data[k] for k in BASIS_ARRAYS if k in data.files}
    except OSError as exc:
        raise ActokError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise ActokError(f"{path} is not an .npz archive of arrays (as np.savez writes)") from None
    missing = [k for k in BASIS_ARRAYS if k not in arrays]
    if missing:
        raise ActokError(f"{path} lacks the array {missing[0]!r}")
    size = horizon * action_dim
    shapes = {"mean": (size,), "basis": (size, size), "value_low": (action_dim,), "value_high": (action_dim,)}
    wrong = [k for k in BASIS_ARRAYS if arrays[k].shape != shapes[k] or arrays[k].dtype.kind != "f"]
    if wrong:
        raise ActokError(
            f"{path} holds a {wrong[0]} of {arrays[wrong[0]].dtype} {arrays[wrong[0]].shape}; the tokenizer's shape "
            f"needs float arrays mean {shapes['mean']}, basis {shapes['basis']}, value_low and value_high {shapes['value_low']}"
        )
    arrays = {k: v.astype(np.float64) for k, v in arrays.items()}
    if not all(np.isfinite(v).all() for v in arrays.values()):
        raise ActokError(f"{path} holds values that are not finite")
    if not np.allclose(arrays["basis"].T @ arrays["basis"], np.eye(size), atol=1e-6):
        raise ActokError(f"{path} does not hold an orthonormal basis")
    if not (arrays["value_low"] <= arrays["value_high"]).all():
        raise ActokError(f"{path} holds a value range whose low exceeds its high")
    return arrays
