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
import zipfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Interval
from scipy.fft import idct
from tokenizers import Tokenizer

from actok.errors import ActokError, ActokWarning
from actok.tokenizers._bytelevel import symbols_to_strings
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks, flatten_rows, read_bpe_file
from actok.tokenizers.coefficients import SymbolTable, train_bpe
from actok.tokenizers.params import MAX_VOCAB, Scale, check_fields

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
    decodes_fitted_shape_only = True
    conformance_rmse_bound = 0.05
    conformance_decode_atol = 1e-12

    def __init__(
        self,
        scale: Scale = 10.0,
        vocab_size: Annotated[int, Interval(ge=4, le=MAX_VOCAB)] = 1024,
        deadzone: Annotated[float, Interval(ge=0.5, lt=1.5)] = 0.7,
        shrinkage: Annotated[float, Interval(ge=0, le=1)] | Literal["auto"] = 0.0,
    ):
        super().__init__()
        self.scale, self._vocab_size, self.deadzone, self.shrinkage = scale, vocab_size, deadzone, shrinkage
        self.mean: np.ndarray | None = None  # [H·D]
        self.basis: np.ndarray | None = None  # [H·D, H·D], columns = components by decreasing variance
        self.low: int | None = None  # smallest / largest quantized coefficient seen in fit
        self.high: int | None = None
        self.bpe: Tokenizer | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

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
    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> KLTTokenizer:
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
        # the alphabet's last symbol is the end-of-block
        self.bpe = train_bpe(self._strings(q), self._vocab_size, span + 1, first_symbol=BASE, byte_level=False)
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
        """Valid: every id known, the symbols end with the single end-of-block symbol, and there are at most H·D
        coefficients before it. The repair (`relaxed`) decodes the coefficients it can read: up to H·D, with
        unknown ids and end-of-block symbols dropped."""
        n, m, eob = len(batch), horizon * action_dim, self.high - self.low + 1
        points, row, n_symbols, ids_ok, _ = self._symbols.gather(batch)  # every token is whole symbols
        symbols = points - BASE
        is_eob = symbols == eob
        last = np.zeros(n, dtype=bool)
        has_symbols = n_symbols > 0
        last[has_symbols] = is_eob[(np.cumsum(n_symbols) - 1)[has_symbols]]
        valid = ids_ok & last & (np.bincount(row[is_eob], minlength=n) == 1) & (n_symbols <= m + 1)
        # Each coefficient's index among its row's coefficients (for a valid row: its position before the end).
        coeff = ~is_eob
        per_row = np.bincount(row[coeff], minlength=n)
        rank = np.cumsum(coeff) - 1 - (np.cumsum(per_row) - per_row)[row]
        keep = coeff & (rank < m) & (relaxed | valid[row])
        q = np.zeros((n, m), dtype=np.int64)
        q[row[keep], rank[keep]] = symbols[keep] + self.low
        return self.dequantize(q), valid

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        return (
            f"at most {horizon * action_dim} coefficients followed by the single end-of-block symbol "
            f"(ids in [0, {self._n_vocab}))"
        )

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
        eob = chr(BASE + self.high - self.low + 1)
        return [text[: int(k)] + eob for text, k in zip(symbols_to_strings(q - self.low + BASE), stop, strict=True)]

    def _prepare(self) -> None:
        """id -> code points table for the vectorized decode (char-level BPE: every token is whole symbols)."""
        self._symbols = SymbolTable.build(self.bpe.get_vocab(), byte_level=False)
        self._n_vocab = self.bpe.get_vocab_size()

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_fitted_state()
        np.savez(directory / BASIS_FILE, mean=self.mean, basis=self.basis)
        self.bpe.save(str(directory / TOKENIZER_FILE))
        return {"low": self.low, "high": self.high, "basis": BASIS_FILE, "bpe": TOKENIZER_FILE}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        fields = {"low": int, "high": int, "basis": Literal[BASIS_FILE], "bpe": Literal[TOKENIZER_FILE]}
        state = check_fields(directory / CONFIG_FILE, state, fields)
        self.low, self.high = state["low"], state["high"]
        if not 0 <= self.high - self.low <= self._vocab_size - 3:
            raise ActokError(
                f"{directory / CONFIG_FILE}: state low {self.low} and high {self.high} do not give a coefficient range "
                f"that fits vocab_size {self._vocab_size} (high >= low, high - low + 3 <= vocab_size)"
            )
        for name in (BASIS_FILE, TOKENIZER_FILE):
            if not (directory / name).is_file():
                raise ActokError(f"{directory} is not a complete klt tokenizer: the file {name} is missing")
        self.mean, self.basis = _read_basis(directory / BASIS_FILE, self.horizon * self.action_dim)
        path = directory / TOKENIZER_FILE
        self.bpe = read_bpe_file(path)
        vocab = self.bpe.get_vocab()
        alphabet = {chr(BASE + k) for k in range(self.high - self.low + 2)}
        if (
            sorted(vocab.values()) != list(range(len(vocab)))
            or len(vocab) > self._vocab_size
            or not alphabet <= vocab.keys()
            or not set("".join(vocab)) <= alphabet
        ):
            raise ActokError(
                f"{path} is not the BPE fit builds for the klt state in {CONFIG_FILE} (a vocabulary of at most "
                f"{self._vocab_size} ids over the {len(alphabet)} symbols of coefficients {self.low}..{self.high} "
                "and the end-of-block)"
            )
        self._prepare()


def _read_basis(path: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean `[H·D]` and orthonormal basis `[H·D, H·D]` in `path`, or `ActokError` saying what is wrong."""
    try:
        with open(path, "rb") as file:  # ours to close: np.load leaves a file it fails to read open
            data = np.load(file)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array")
            with data:
                arrays = {k: data[k] for k in ("mean", "basis") if k in data.files}
    except OSError as exc:
        raise ActokError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise ActokError(f"{path} is not an .npz archive of arrays (as np.savez writes)") from None
    missing = [k for k in ("mean", "basis") if k not in arrays]
    if missing:
        raise ActokError(f"{path} lacks the array {missing[0]!r}")
    mean, basis = arrays["mean"], arrays["basis"]
    if mean.shape != (size,) or basis.shape != (size, size) or mean.dtype.kind != "f" or basis.dtype.kind != "f":
        raise ActokError(
            f"{path} holds a mean {mean.shape} and basis {basis.shape}; the tokenizer's shape needs float arrays "
            f"({size},) and ({size}, {size})"
        )
    if not (np.isfinite(mean).all() and np.allclose(basis.T @ basis, np.eye(size), atol=1e-6)):
        raise ActokError(f"{path} does not hold a finite mean and an orthonormal basis")
    return mean, basis
