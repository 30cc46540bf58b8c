"""The coefficient codec shared by the transform tokenizers: quantized coefficients <-> BPE ids.

A transform tokenizer is a transform object (`Transform`: chunks `[N, H, D]` <-> coefficients `[N, C·D]`; the
DCT for FAST, a wavelet for `wavelet`, ...) composed with this codec:
- `train_bpe`: the BPE over symbol strings, byte-level (FAST's) or over the code points themselves (klt's);
- `SymbolTable`: id -> the code points a token stands for (decode, vectorized);
- `ByteLevelCodec`: FAST's rules (REFERENCES §3) on one fitted state -- scale, round, clamp below `min_token`,
  `clip` -- and the encode/decode tables of the compiled loops (`_fast_kernels`) and of their numpy fallbacks;
- `CoefficientTokenizer`: an `ActionTokenizer` made of a `Transform` and a `ByteLevelCodec` (FAST, wavelet).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import ByteLevelBPETokenizer, Tokenizer, models
from tokenizers.trainers import BpeTrainer

from actok.errors import ActokError, ActokWarning
from actok.tokenizers import _fast_kernels as kernels
from actok.tokenizers._bytelevel import (
    DROPPED,
    SURROGATES,
    TABLE_CODE_POINTS,
    TOO_LARGE,
    byte_symbols,
    string_points,
    symbols_to_strings,
    table_bytes,
    token_bytes,
    utf8_bytes,
)
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks, read_bpe_file
from actok.tokenizers.params import Scale, VocabSize, check_fields

TOKENIZER_FILE = "tokenizer.json"
FIT_BLOCK = 65536  # chunks whose BPE training strings are made at once


class Transform(Protocol):
    """An invertible transform of chunks into coefficients, in the chunks' float dtype."""

    name: str

    def __call__(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        """Chunks `[N, H, D]` -> unscaled coefficients `[N, C·D]`; `workers`: threads it may use."""

    def inverse(self, coeff: np.ndarray, horizon: int, action_dim: int, workers: int | None = None) -> np.ndarray:
        """Coefficients `[N, C·D]` -> chunks `[N, H, D]` (may reuse `coeff`'s memory)."""

    def n_coefficients(self, horizon: int) -> int:
        """Coefficients per dimension for a horizon (C)."""


def train_bpe(
    strings: Iterable[str], vocab_size: int, alphabet_size: int, first_symbol: int = 0, byte_level: bool = True
) -> Tokenizer:
    """A BPE trained on symbol strings with the alphabet `chr(first_symbol + k)`, `k < alphabet_size`, as the
    reference processor's `fit` trains it: byte-level (GPT-2 pre-tokenizer and byte symbols), or, with
    `byte_level=False`, directly on the code points (no pre-tokenizer: merges may span any symbols)."""
    bpe = ByteLevelBPETokenizer()._tokenizer if byte_level else Tokenizer(models.BPE())
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=[chr(first_symbol + k) for k in range(alphabet_size)],
        max_token_length=10000,
    )
    bpe.train_from_iterator(strings, trainer=trainer)
    return bpe


@dataclass(frozen=True)
class SymbolTable:
    """What each id of a BPE vocabulary stands for: `points[start[i] : start[i] + length[i]]` are the code points of
    token i when `whole[i]` (its bytes are whole UTF-8 characters; always, for a BPE over code points); `known[i]`:
    i is in the vocabulary; `token_bytes[i]`: its bytes (byte-level only)."""

    known: np.ndarray  # [V] bool
    whole: np.ndarray  # [V] bool
    start: np.ndarray  # [V] int64
    length: np.ndarray  # [V] int64
    points: np.ndarray  # [P] int64
    token_bytes: list[bytes]

    @classmethod
    def build(cls, vocab: dict[str, int], byte_level: bool) -> SymbolTable:
        n_vocab = max(vocab.values(), default=-1) + 1
        known, whole = np.zeros(n_vocab, dtype=bool), np.zeros(n_vocab, dtype=bool)
        start, length = np.zeros(n_vocab, np.int64), np.zeros(n_vocab, np.int64)
        raw, pieces, offset = [b""] * n_vocab, [], 0
        for token, i in sorted(vocab.items(), key=lambda kv: kv[1]):
            known[i] = True
            if byte_level:
                raw[i] = token_bytes(token)
                try:
                    token = raw[i].decode("utf-8")
                except UnicodeDecodeError:
                    continue  # part of a character: its row is decoded from the joined bytes
            whole[i], start[i], length[i] = True, offset, len(token)
            pieces.append(token)
            offset += len(token)
        return cls(known, whole, start, length, string_points("".join(pieces)), raw)

    @property
    def n_vocab(self) -> int:
        return len(self.known)

    def gather(self, batch: TokenBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The code points of a batch's whole-character tokens, in order: (points `[S]`, their row `[S]`, points per
        row `[N]`, rows with only known ids `[N]`, rows holding a partial-character token `[N]`)."""
        n = len(batch)
        token_row = np.repeat(np.arange(n), batch.lengths)
        known = (batch.flat >= 0) & (batch.flat < self.n_vocab)
        known[known] = self.known[batch.flat[known]]
        safe = np.where(known, batch.flat, 0)
        whole = known & self.whole[safe]
        sizes = np.where(whole, self.length[safe], 0)
        ends = np.cumsum(sizes)
        total = int(ends[-1]) if len(ends) else 0
        gather = np.repeat(self.start[safe] - (ends - sizes), sizes) + np.arange(total)
        row = np.repeat(token_row, sizes)
        ids_ok = np.bincount(token_row[~known], minlength=n) == 0
        partial = np.bincount(token_row[known & ~whole], minlength=n) > 0
        return self.points[gather], row, np.bincount(row, minlength=n), ids_ok, partial


def transform_dtype(chunks: Any) -> type:
    """The float dtype the transform runs in for this input, as scipy's DCT picks it for the reference: float32 for
    float16/float32 arrays, float64 for everything else."""
    dtype = np.asarray(chunks).dtype if hasattr(chunks, "dtype") else None
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def coefficient_range(rounded: np.ndarray, scale: float, vocab_size: int, what: str) -> tuple[int, int]:
    """The smallest and largest of the coefficients `[N, C·D]` rounded at `scale`, checked to fit `vocab_size`
    (`ActokError` with the vocab_size or scale that would fit; a warning when it leaves BPE few merges)."""
    if not np.isfinite(rounded).all():
        raise ActokError(f"the {what} coefficients times scale {scale:g} overflow {rounded.dtype}")
    lo, hi = int(rounded.min()), int(rounded.max())
    span = hi - lo
    if span > vocab_size:
        fitting_scale = (vocab_size - 1) / (span / scale)
        raise ActokError(
            f"vocab_size {vocab_size} is smaller than the {what} coefficient range {span} at scale {scale:g}: "
            f"use vocab_size >= {span}, or scale <= {fitting_scale:.3g} for this vocab_size"
        )
    if span > vocab_size - 100:
        warnings.warn(
            f"the coefficient range {span} is within 100 of vocab_size {vocab_size}: few merges are left for BPE; "
            "raise vocab_size or lower scale",
            ActokWarning,
            stacklevel=3,
        )
    return lo, hi


def train_byte_level(raw: np.ndarray, scale: float, vocab_size: int, what: str) -> tuple[Tokenizer, int, int]:
    """FAST's fit on coefficients `[N, C·D]`: (the byte-level BPE over the rounded coefficients minus min_token,
    min_token, max_token). `raw` is scaled and rounded in place, and the training strings are made block by block
    as the trainer reads them, so a million chunks' coefficients are never copied nor their strings held at once."""
    rounded = np.around(np.multiply(raw, raw.dtype.type(scale), out=raw), out=raw)
    lo, hi = coefficient_range(rounded, scale, vocab_size, what)
    strings = (
        text
        for start in range(0, len(rounded), FIT_BLOCK)
        for text in symbols_to_strings(rounded[start : start + FIT_BLOCK].astype(np.int64) - lo)
    )
    return train_bpe(strings, vocab_size, hi - lo + 1), lo, hi


class ByteLevelCodec:
    """Coefficients <-> byte-level BPE ids by the reference processor's rules (see `actok.tokenizers.fast`), for
    one fitted state (BPE, scale, min_token, max_token): the encode tables (for every code point of the fitted
    range, the nearest one whose UTF-8 bytes all have a byte symbol in the vocabulary: what clip=True emits; the
    compiled loop's tables) and the decode tables (each token's code points and bytes)."""

    def __init__(self, bpe: Tokenizer, scale: float, min_token: int, max_token: int):
        self.bpe, self.scale, self.min_token, self.max_token = bpe, scale, min_token, max_token
        vocab = bpe.get_vocab()
        self.symbols = SymbolTable.build(vocab, byte_level=True)
        self.n_vocab = self.symbols.n_vocab
        self.symbol_ids = np.array([vocab.get(s, -1) for s in byte_symbols()] + [-1], dtype=np.int64)
        raw = table_bytes(TABLE_CODE_POINTS)[1]
        self.spelled = ((self.symbol_ids[raw] >= 0) | (raw < 0)).all(axis=1)  # per code point below U+10000
        self.emit_code = self._nearest_spelled(np.arange(max_token - min_token + 1))
        self.encode_tables = (
            kernels.EncodeTables.build(bpe.to_str(), bpe.pre_tokenizer) if kernels.numba_available() else None
        )
        s = self.symbols
        self.decode_tables = kernels.DecodeTables.build(s.whole, s.start, s.length, s.points, min_token, scale)

    def _nearest_spelled(self, codes: np.ndarray) -> np.ndarray:
        """For each code point of `codes` (the fitted range), the nearest one the vocabulary spells (int32)."""
        emit = self.spelled[codes]
        if not emit.any():
            raise ActokError("the BPE vocabulary cannot spell any code point of the fitted range")
        ok = codes[emit]
        nearest = np.clip(np.searchsorted(ok, codes), 1, len(ok) - 1) if len(ok) > 1 else np.zeros_like(codes)
        left, right = ok[np.maximum(nearest - 1, 0)], ok[nearest]
        out = np.where(np.abs(codes - left) <= np.abs(right - codes), left, right).astype(np.int32)
        out[emit] = codes[emit]
        return out

    # ---------------------------------------------------------------- encode
    def code_points(self, coeff: np.ndarray, clip: bool) -> tuple[np.ndarray, int]:
        """Unscaled coefficients `[N, C·D]` (in the chunks' dtype) -> (code points `[N, C·D]` as encode spells them,
        how many coefficients clip=True moves). The reference's rule: round(coefficient * scale) in the chunks'
        dtype, minus min_token, below 0 clamped to 0. With clip=True, and where the reference cannot encode the
        result (U+D800 to U+DFFF, beyond U+10FFFF, NaN from an overflowing transform): the nearest code point of
        the fitted range the vocabulary spells. The compiled encode loop applies the same rule."""
        v = np.rint(coeff * coeff.dtype.type(self.scale)).astype(np.float64) - self.min_token
        span = self.max_token - self.min_token
        fitted = self.emit_code[np.where(v > 0, np.minimum(v, span), 0).astype(np.int64)]  # NaN -> 0
        spelled = (v < SURROGATES) | ((v > 0xDFFF) & (v <= 0x10FFFF))
        codes = np.where(clip | ~spelled, fitted, np.where(spelled & (v > 0), v, 0)).astype(np.int64)
        return codes, int(np.count_nonzero(fitted != v))

    def encode(self, chunks: np.ndarray, transform: Transform, clip: bool) -> list[list[int]]:
        """Chunks `[N, H, D]` (in the transform dtype) -> BPE ids per chunk; warns (`ActokWarning`) when a chunk
        lost symbols the vocabulary cannot spell, as the reference loses them."""
        if self.encode_tables is None:
            ids, flags = self._encode_with_library(transform(chunks), clip)
        else:
            ids, flags = kernels.encode_chunks(
                chunks, transform, self.scale, self.min_token, self.emit_code, clip, self.encode_tables
            )
            rows = np.flatnonzero(flags == TOO_LARGE)  # code points beyond the loops' tables
            if len(rows):
                sub_ids, flags[rows] = self._encode_with_library(transform(chunks[rows]), clip)
                for i, row in zip(rows.tolist(), sub_ids, strict=True):
                    ids[i] = row
        dropped = int(np.count_nonzero(flags == DROPPED))
        if dropped:
            warnings.warn(
                f"{dropped} of {len(flags)} chunks have coefficients beyond the fitted range [{self.min_token}, "
                f"{self.max_token}] whose bytes have no symbol in the BPE vocabulary: they were dropped, as the "
                "reference processor drops them, so those sequences will not decode (clip=True clips such "
                "coefficients into the range instead)",
                ActokWarning,
                stacklevel=3,
            )
        return ids

    def _encode_with_library(self, coeff: np.ndarray, clip: bool) -> tuple[list[list[int]], np.ndarray]:
        """Coefficients -> (ids through the tokenizers library, row flags: DROPPED where a byte had no symbol)."""
        codes = self.code_points(coeff, clip)[0]
        small = codes < len(self.spelled)
        missing = ~self.spelled[np.where(small, codes, 0)]
        raw = utf8_bytes(codes[~small])[1]
        missing[~small] = ((self.symbol_ids[raw] < 0) & (raw >= 0)).any(axis=1)
        ids = [e.ids for e in self.bpe.encode_batch_fast(symbols_to_strings(codes))]
        return ids, np.where(missing.any(axis=1), DROPPED, 0).astype(np.int8)

    # ---------------------------------------------------------------- decode
    def decode(self, batch: TokenBatch, n_coeff: int, finish: Callable[..., None]) -> np.ndarray:
        """Ids -> coefficients `[rows, n_coeff]` handed to `finish(rows, coeff, workers)` block by block (the
        inverse transform); returns validity `[N]`: every id in the vocabulary, their bytes valid UTF-8, exactly
        `n_coeff` symbols. Unknown ids are skipped and broken bytes read as zero coefficients (the repair)."""
        if kernels.numba_available():  # compiled id -> coefficient loop, per row block
            coeff, n_chars, ids_ok, partial = kernels.decode_ids(
                batch.flat, batch.lengths, self.decode_tables, n_coeff, lambda rows, c, *_: finish(rows, c, 1)
            )
        else:
            coeff, n_chars, ids_ok, partial = self._coefficients_numpy(batch, n_coeff)
            finish(slice(None), coeff, None)
        utf8_ok = np.ones(len(batch), dtype=bool)
        rows = np.flatnonzero(partial)
        if len(rows):
            sub, n_chars[rows], ids_ok[rows], utf8_ok[rows] = self._coefficients_from_bytes(batch, rows, n_coeff)
            finish(rows, sub, None)
        return ids_ok & utf8_ok & (n_chars == n_coeff)

    def _coefficients_numpy(
        self, batch: TokenBatch, n_coeff: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the compiled decode loop computes, vectorized with numpy (without numba): scaled coefficients
        `[N, n_coeff]` of the whole-character tokens, symbols per row, rows with only known ids, rows holding a
        partial-character token."""
        points, row, n_chars, ids_ok, partial = self.symbols.gather(batch)
        pos = np.arange(len(row)) - np.repeat(np.cumsum(n_chars) - n_chars, n_chars)
        keep = pos < n_coeff
        coeff = np.zeros((len(batch), n_coeff))
        coeff[row[keep], pos[keep]] = (points[keep] + self.min_token) / self.scale
        return coeff, n_chars, ids_ok, partial

    def _coefficients_from_bytes(
        self, batch: TokenBatch, rows: np.ndarray, n_coeff: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows holding tokens that are part of a UTF-8 character, decoded as the library's byte-level decoder
        does (the bytes of the known tokens, joined): (scaled coefficients `[R, n_coeff]`, symbols, only known ids,
        valid UTF-8). Bytes that are not UTF-8 decode to U+FFFD, read here as a zero coefficient."""
        starts = np.cumsum(batch.lengths) - batch.lengths
        coeff = np.zeros((len(rows), n_coeff))
        n_chars = np.zeros(len(rows), dtype=np.int64)
        ids_ok = np.zeros(len(rows), dtype=bool)
        utf8_ok = np.zeros(len(rows), dtype=bool)
        for k, i in enumerate(rows.tolist()):
            ids = batch.flat[starts[i] : starts[i] + batch.lengths[i]]
            ids = ids[(ids >= 0) & (ids < self.n_vocab)]
            known = self.symbols.known[ids]
            raw = b"".join(self.symbols.token_bytes[t] for t in ids[known].tolist())
            try:
                text, utf8_ok[k] = raw.decode("utf-8"), True
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
            points = string_points(text)
            values = np.where(utf8_ok[k] | (points != 0xFFFD), (points + self.min_token) / self.scale, 0.0)
            coeff[k, : min(len(values), n_coeff)] = values[:n_coeff]
            n_chars[k], ids_ok[k] = len(points), len(ids) == batch.lengths[i] and known.all()
        return coeff, n_chars, ids_ok, utf8_ok


def check_range(path: Path, min_token: int, max_token: int) -> None:
    """`ActokError` naming `path` unless max_token - min_token is a range byte-level BPE can spell."""
    if not 0 <= max_token - min_token < SURROGATES:
        raise ActokError(
            f"{path}: max_token {max_token} must be in [min_token, min_token + {SURROGATES - 1}] "
            f"(min_token is {min_token})"
        )


class CoefficientTokenizer(ActionTokenizer):
    """A transform (`self.transform`, set by the subclass) composed with the byte-level coefficient codec; the
    fitted state is the BPE and the coefficient range [min_token, max_token], saved in an actok folder as
    tokenizer.json and the state's min_token/max_token.

    Args:
        scale: multiplier applied to the coefficients before rounding (larger = finer, more tokens).
        vocab_size: BPE vocabulary size; must be at least the coefficient range seen in `fit`.
        clip: clip coefficients into the fitted range (bounded sequence lengths, every sequence decodes) instead of
            the reference's byte tokens beyond it.
    """

    conformance_rmse_bound = 0.05
    transform: Transform

    def __init__(self, scale: Scale = 10.0, vocab_size: VocabSize = 1024, clip: bool = False):
        super().__init__()
        self.scale = float(scale)
        self._vocab_size = int(vocab_size)
        self.clip = bool(clip)
        self.min_token: int | None = None
        self.max_token: int | None = None
        self.bpe: Tokenizer | None = None
        self.codec: ByteLevelCodec | None = None

    # ------------------------------------------------------------ protocol
    @property
    def vocab_size(self) -> int:
        """The configured size, or the BPE's when it holds more ids (its initial alphabet alone has
        max_token - min_token + 1 symbols, plus the byte symbols the training strings use)."""
        return max(self._vocab_size, self.codec.n_vocab if self.codec else 0)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "vocab_size": self._vocab_size}

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> CoefficientTokenizer:
        """Learn the coefficient range and the BPE from normalized chunks `[N, H, D]` (float32 chunks are
        transformed and rounded in float32, as the reference does)."""
        chunks = self._input(chunks, fitted=False)
        if len(chunks) == 0:
            raise ActokError(f"cannot fit {self.name} on zero chunks")
        self._set_shape(chunks)
        raw = self.transform(chunks)
        if np.shares_memory(raw, chunks):  # the training rounds in place: never in the caller's array
            raw = raw.copy()
        self.bpe, self.min_token, self.max_token = train_byte_level(
            raw, self.scale, self._vocab_size, self.transform.name
        )
        self._prepare()
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalized chunks `[N, H, D]` -> BPE ids per chunk (no BOS/EOS): the reference's ids (see
        `actok.tokenizers.fast`); warns (`ActokWarning`) when a chunk lost symbols the vocabulary cannot spell."""
        chunks = self._input(chunks)
        self._check_fitted_state()
        return self.codec.encode(chunks, self.transform, self.clip)

    def count_clipped(self, chunks: np.ndarray) -> int:
        """How many coefficients of `chunks` `clip=True` moves: outside the fitted [min_token, max_token] range, or
        on a code point whose bytes the BPE vocabulary has no symbols for. The same count whatever `clip` is (with
        clip=False, those above the range are spelled with byte tokens instead, or dropped as the reference does)."""
        chunks = self._input(chunks)
        self._check_fitted_state()
        return self.codec.code_points(self.transform(chunks), self.clip)[1]

    def diagnostics(self, chunks: np.ndarray, ids: list[list[int]]) -> dict[str, float]:
        """The fraction of coefficients outside the fitted range (`count_clipped`: what clip=True
        moves; with clip=False, what gets longer byte-level tokens instead)."""
        return {"clipped_coefficient_fraction": self.count_clipped(chunks) / chunks.size}

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Valid: every id in the vocabulary, their bytes valid UTF-8, exactly C·D symbols. The repair (`relaxed`):
        unknown ids skipped (as the reference skips them), broken bytes read as zero coefficients, then cut or
        padded with zero coefficients, as LeRobot's relaxed decoding does."""
        out = np.empty((len(batch), horizon, action_dim))

        def finish(rows, coeff: np.ndarray, workers: int | None) -> None:
            out[rows] = self.transform.inverse(coeff, horizon, action_dim, workers=workers)

        valid = self.codec.decode(batch, self.transform.n_coefficients(horizon) * action_dim, finish)
        return out, valid

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        n = self.transform.n_coefficients(horizon) * action_dim
        return (
            f"ids in [0, {self.codec.n_vocab}) whose bytes are UTF-8 text of exactly {n} symbols "
            f"(H {horizon} x D {action_dim})"
        )

    def _check_fitted_state(self) -> None:
        if self.codec is None:
            raise ActokError(f"{self.name} tokenizer is not fitted: call fit(chunks) first or load a saved one")

    # -------------------------------------------------------------- internals
    def _input(self, chunks: np.ndarray, fitted: bool = True) -> np.ndarray:
        """Validated chunks `[N, H, D]` (of the fitted shape when `fitted`) in the dtype the transform runs in."""
        checked = self._check_shape(chunks) if fitted else as_chunks(chunks)
        dtype = transform_dtype(chunks)
        return checked if dtype is np.float64 else np.asarray(chunks, dtype=dtype)

    def _prepare(self) -> None:
        """The codec's tables for the fitted state (bpe, scale, min_token, max_token)."""
        self.codec = ByteLevelCodec(self.bpe, self.scale, self.min_token, self.max_token)

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_fitted_state()
        self.bpe.save(str(directory / TOKENIZER_FILE))
        return {"min_token": self.min_token, "max_token": self.max_token}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise ActokError(
                f"{directory} is not a complete {self.name} tokenizer: the file {TOKENIZER_FILE} is missing"
            )
        state = check_fields(directory / CONFIG_FILE, state, {"min_token": int, "max_token": int})
        check_range(directory / CONFIG_FILE, state["min_token"], state["max_token"])
        self.bpe, self.min_token, self.max_token = read_byte_level_bpe(path), state["min_token"], state["max_token"]
        try:
            self._prepare()
        except ActokError as err:
            raise ActokError(f"{path}: {err}") from None


def read_byte_level_bpe(path: Path) -> Tokenizer:
    """A byte-level BPE `tokenizer.json`; `ActokError` naming the file for anything else."""
    bpe = read_bpe_file(path)
    spec = json.loads(bpe.to_str())
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise ActokError(
            f"{path} holds a {model.get('type')} model with a {decoder.get('type')} decoder; a byte-level BPE "
            "(model BPE, decoder ByteLevel) is needed"
        )
    return bpe
