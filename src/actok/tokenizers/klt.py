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

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import idct
from tokenizers import Tokenizer, models, trainers

from actok.errors import ActokError, ActokWarning
from actok.tokenizers.base import ActionTokenizer, InvalidTokensError, as_chunks, flatten_rows, pad_ids

BASE = 0x100  # code point of the smallest coefficient symbol (clear of ASCII controls)
BASIS_FILE = "klt_basis.npz"
TOKENIZER_FILE = "tokenizer.json"


def separable_basis(centered: np.ndarray, horizon: int, action_dim: int) -> np.ndarray:
    """DCT over time ⊗ PCA over dims, `[H·D, H·D]` for time-major flattened chunks: a structured transform with
    only D x D parameters learned, well estimated from few chunks."""
    dct_basis = idct(np.eye(horizon), axis=0, norm="ortho")  # columns: DCT-II basis vectors
    per_step = centered.reshape(-1, action_dim)
    variances, vectors = np.linalg.eigh(np.atleast_2d(np.cov(per_step, rowvar=False)))
    return np.kron(dct_basis, vectors[:, np.argsort(variances)[::-1]])


def shrunk_klt_basis(centered: np.ndarray, horizon: int, action_dim: int, shrinkage: float | str) -> np.ndarray:
    """Eigenvectors (by decreasing variance) of the sample covariance of the flattened chunks, shrunk towards
    its diagonal in the separable DCT ⊗ PCA basis. With few chunks per coefficient the sample covariance's
    minor directions are noise that held-out chunks do not follow; `"auto"` uses H·D / (H·D + N)."""
    n, m = centered.shape
    alpha = m / (m + n) if shrinkage == "auto" else float(shrinkage)
    cov = np.atleast_2d(np.cov(centered, rowvar=False))
    if alpha > 0:
        prior = separable_basis(centered, horizon, action_dim)
        target_variances = np.einsum("ij,jk,ki->i", prior.T, cov, prior)
        cov = (1 - alpha) * cov + alpha * (prior * target_variances) @ prior.T
    variances, vectors = np.linalg.eigh(cov)
    return vectors[:, np.argsort(variances)[::-1]]


class KLTTokenizer(ActionTokenizer):
    """KLT + dead-zone quantization + end-of-block + BPE.

    Args:
        scale: coefficients are multiplied by this before quantization (larger = finer, more tokens).
        vocab_size: BPE vocabulary size (at least the coefficient range seen in `fit` + 2).
        deadzone: half-width of the zero bin in quantization steps (0.5 = plain rounding).
        shrinkage: weight of the separable DCT ⊗ PCA prior in the covariance the basis is computed from (0 = the
            plain KLT, 1 = the separable transform, "auto" = H·D / (H·D + N)); for datasets with few chunks.
    """

    name = "klt"

    def __init__(
        self, scale: float = 10.0, vocab_size: int = 1024, deadzone: float = 0.7, shrinkage: float | str = 0.0
    ):
        super().__init__()
        bad_shrinkage = shrinkage != "auto" and not (isinstance(shrinkage, int | float) and 0 <= shrinkage <= 1)
        if float(scale) <= 0 or int(vocab_size) < 4 or not 0.5 <= float(deadzone) < 1.5 or bad_shrinkage:
            raise ActokError(
                f"klt needs scale > 0, vocab_size >= 4, 0.5 <= deadzone < 1.5 and shrinkage 'auto' or in [0, 1] "
                f"(got scale={scale}, vocab_size={vocab_size}, deadzone={deadzone}, shrinkage={shrinkage!r})"
            )
        self.scale, self._vocab_size, self.deadzone = float(scale), int(vocab_size), float(deadzone)
        self.shrinkage = shrinkage if shrinkage == "auto" else float(shrinkage)
        self.mean: np.ndarray | None = None  # [H·D]
        self.basis: np.ndarray | None = None  # [H·D, H·D], columns = components by decreasing variance
        self.low: int | None = None  # smallest / largest quantized coefficient seen in fit
        self.high: int | None = None
        self.bpe: Tokenizer | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def get_params(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "vocab_size": self._vocab_size,
            "deadzone": self.deadzone,
            "shrinkage": self.shrinkage,
        }

    # ------------------------------------------------------------ transform
    def quantize(self, chunks: np.ndarray) -> np.ndarray:
        """Chunks `[N, H, D]` -> quantized KLT coefficients `[N, H·D]` (int64, not clipped)."""
        c = (flatten_rows(chunks) - self.mean) @ self.basis * self.scale
        return (np.sign(c) * np.floor(np.abs(c) + 1.0 - self.deadzone)).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Quantized coefficients `[N, H·D]` -> chunks `[N, H, D]` (each value at its bin's reconstruction point:
        the dead zone's bins are [k + deadzone - 1, k + deadzone) steps, decoded at their midpoint)."""
        shift = np.sign(q) * (self.deadzone - 0.5)
        c = (q + shift) / self.scale
        return (c @ self.basis.T + self.mean).reshape(len(q), self.horizon, self.action_dim)

    # ------------------------------------------------------------- protocol
    def fit(self, chunks: np.ndarray) -> KLTTokenizer:
        chunks = as_chunks(chunks)
        n, h, d = chunks.shape
        if n < 2:
            raise ActokError(f"klt needs at least 2 chunks to fit, got {n}")
        self._set_shape(chunks)
        flat = flatten_rows(chunks)
        self.mean = flat.mean(axis=0)
        self.basis = shrunk_klt_basis(flat - self.mean, h, d, self.shrinkage)
        if n < h * d:
            warnings.warn(
                f"klt fitted on {n} chunks for {h * d} coefficients: components past the {n}th are not learned "
                "from data (held-out error may suffer; use more chunks or a shorter horizon)",
                ActokWarning,
                stacklevel=2,
            )
        q = self.quantize(chunks)
        self.low, self.high = int(q.min()), int(q.max())
        span = self.high - self.low + 1
        if span + 2 > self._vocab_size:
            raise ActokError(
                f"vocab_size {self._vocab_size} is smaller than the coefficient range {span} + 2 at scale "
                f"{self.scale:g}: use vocab_size >= {span + 2} or a smaller scale"
            )
        alphabet = [chr(BASE + k) for k in range(span + 1)]  # the last one is the end-of-block symbol
        self.bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=self._vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=alphabet,
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

    def decode(
        self,
        ids: Sequence[Sequence[int]],
        horizon: int | None = None,
        action_dim: int | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ):
        """Valid: every id known, the symbols end with the single end-of-block symbol, and there are at most H·D
        coefficients before it. `"relaxed"` decodes the coefficients it can read (up to H·D, end-of-block
        symbols dropped); `"zeros"` returns zero chunks for invalid sequences."""
        self._check_policy(on_invalid)
        self._check_fitted_state()
        h, d = self._decode_shape(horizon, action_dim)
        if (h, d) != (self.horizon, self.action_dim):
            raise ActokError(
                f"klt decodes chunks of shape [H={self.horizon}, D={self.action_dim}] only, got [H={h}, D={d}]"
            )
        m, eob = h * d, self.high - self.low + 1
        padded, lengths = pad_ids(ids)
        n, width = padded.shape
        present = np.arange(width) < lengths[:, None]
        known = (padded >= 0) & (padded < self._n_vocab)
        safe = np.where(present & known, padded, 0)
        sizes = np.where(present & known, self._token_length[safe], 0)
        ends = np.cumsum(sizes.ravel())
        flat_sizes = sizes.ravel()
        gather = np.repeat(self._token_start[safe.ravel()] - (ends - flat_sizes), flat_sizes) + np.arange(
            int(ends[-1]) if len(ends) else 0
        )
        symbols = self._token_points[gather] - BASE
        n_symbols = sizes.sum(axis=1)
        row = np.repeat(np.arange(n), n_symbols)
        pos = np.arange(len(symbols)) - np.repeat(np.cumsum(n_symbols) - n_symbols, n_symbols)
        is_eob = symbols == eob
        last = np.zeros(n, dtype=bool)
        if len(symbols):
            last_index = np.cumsum(n_symbols) - 1
            last[n_symbols > 0] = is_eob[last_index[n_symbols > 0]]
        valid = (
            (known | ~present).all(axis=1) & last & (np.bincount(row[is_eob], minlength=n) == 1) & (n_symbols <= m + 1)
        )
        if on_invalid == "raise" and not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            raise InvalidTokensError(
                f"sequence {bad} is not a valid klt encoding: {int(n_symbols[bad])} symbols, expected at most "
                f"{m} coefficients followed by the single end-of-block symbol (ids in [0, {self._n_vocab}))"
            )
        q = np.zeros((n, m), dtype=np.int64)
        if on_invalid == "relaxed":
            coeff = ~is_eob  # drop end-of-block symbols wherever they are, keep the first H·D coefficients
            per_row = np.bincount(row[coeff], minlength=n)
            rank = np.cumsum(coeff) - 1 - (np.cumsum(per_row) - per_row)[row]  # index among the row's coefficients
            keep = coeff & (rank < m)
            q[row[keep], rank[keep]] = symbols[keep] + self.low
            out = self.dequantize(q)
        else:
            keep = valid[row] & ~is_eob
            q[row[keep], pos[keep]] = symbols[keep] + self.low
            out = self.dequantize(q)
            out[~valid] = 0.0
        return (out, valid) if return_valid else out

    # -------------------------------------------------------------- internals
    def _check_fitted_state(self) -> None:
        if self.bpe is None or self.basis is None:
            raise ActokError("klt tokenizer is not fitted: call fit(chunks) first or load a saved one")

    def _strings(self, q: np.ndarray) -> list[str]:
        """Quantized coefficients -> symbol strings: clipped into the fitted range, trailing zeros dropped, then
        the end-of-block symbol."""
        q = np.clip(q, self.low, self.high)
        nonzero = q != 0
        stop = np.where(nonzero.any(axis=1), q.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)
        codes = (q - self.low + BASE).astype("<u4")
        text = np.ascontiguousarray(codes).tobytes().decode("utf-32-le")
        width, eob = q.shape[1], chr(BASE + self.high - self.low + 1)
        return [text[i * width : i * width + int(k)] + eob for i, k in enumerate(stop)]

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
        np.savez(directory / BASIS_FILE, mean=self.mean, basis=self.basis)
        self.bpe.save(str(directory / TOKENIZER_FILE))
        return {"low": self.low, "high": self.high, "basis": BASIS_FILE, "bpe": TOKENIZER_FILE}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        for name in (BASIS_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise ActokError(f"{directory} is not a complete klt tokenizer: the file {name} is missing")
        with np.load(directory / BASIS_FILE) as data:
            self.mean, self.basis = data["mean"], data["basis"]
        self.bpe = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        self.low, self.high = int(state["low"]), int(state["high"])
        self._prepare()
