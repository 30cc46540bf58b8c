"""FAST: DCT over time, scaled and rounded coefficients, byte-level BPE (REFERENCES §3).

`fit` builds the reference processor's BPE with the same library calls, and `encode` gives the reference's ids, id
for id, on every input the reference can encode, also far outside the fitted range:
- the DCT runs in the input's float dtype (float32 chunks round as the reference rounds them);
- a coefficient below the fitted `min_token` is clamped to it; one above `max_token` becomes a code point beyond
  the fitted alphabet, which the byte-level BPE spells with byte tokens (lossless, just longer);
- where the vocabulary has no symbol for such a code point's bytes, the reference silently drops them and so does
  `encode` (same ids), with an `ActokWarning`: that sequence cannot decode;
- where the reference cannot encode at all (a code point in U+D800-DFFF makes its tokenizer call raise TypeError,
  openpi #333; one beyond U+10FFFF makes `chr` raise), `encode` clips that coefficient as `clip=True` does.
`clip=True` clips every coefficient into the fitted range onto a symbol the BPE spells (bounded lengths, every
sequence decodes; other ids than the reference's for out-of-range chunks). `count_clipped` counts the coefficients
`clip=True` moves, whatever `clip` is.

`decode` accepts every sequence the reference decodes to a chunk of the right shape (code points beyond the fitted
range included) and marks invalid exactly the others: ids outside the vocabulary, bytes that are not UTF-8 (the
reference decodes them to U+FFFD and reads a coefficient near 65,533 from it, garbage), and a number of symbols
other than H*D (the reference prints an error and returns zeros). The `on_invalid` policy applies to those.
Encode and decode run in compiled loops (`_fast_kernels`) that give the library's results exactly; without numba,
or for a tokenizer file those loops do not cover, the same steps go through the library and numpy.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer, Tokenizer
from tokenizers.trainers import BpeTrainer

from actok.errors import ActokError, ActokWarning
from actok.tokenizers import _fast_kernels as _kernels
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, TokenBatch, as_chunks, flatten_rows, read_bpe_file
from actok.tokenizers.hub import BPE_SUBFOLDER, PROCESSOR_CONFIG, TOKENIZER_FILE, write_processor_files
from actok.tokenizers.params import Scale, VocabSize

PROCESSOR_MODULE = "processing_action_tokenizer.py"
SURROGATES = 0xD800  # the first code point byte-level BPE cannot spell (U+D800-DFFF are not characters)


@cache
def byte_symbols() -> tuple[str, ...]:
    """GPT-2's byte -> printable character table used by byte-level BPE (index = byte value)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def token_bytes(token: str) -> bytes:
    """The bytes the byte-level decoder makes of one vocabulary token: its byte symbols' bytes, or, for a token
    with a character that is not a byte symbol (the reference's initial alphabet holds such characters), the
    token's own UTF-8."""
    inverse = _byte_values()
    if all(c in inverse for c in token):
        return bytes(inverse[c] for c in token)
    return token.encode("utf-8")


@cache
def _byte_values() -> dict[str, int]:
    return {symbol: b for b, symbol in enumerate(byte_symbols())}


def symbols_to_strings(codes: np.ndarray) -> list[str]:
    """Code points `[N, L]` (all rows the same length, no surrogates) -> N strings, via one UTF-32 decode."""
    n, length = codes.shape
    text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * length : (i + 1) * length] for i in range(n)]


def train_bpe(strings: Sequence[str], vocab_size: int, alphabet_size: int) -> Tokenizer:
    """Byte-level BPE trained exactly as the reference processor's `fit` trains it."""
    bpe = ByteLevelBPETokenizer()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=[chr(i) for i in range(alphabet_size)],
        max_token_length=10000,
    )
    bpe._tokenizer.train_from_iterator(strings, trainer=trainer)
    return bpe._tokenizer


def transform_dtype(chunks: Any) -> type:
    """The float dtype the transform runs in for this input, as scipy's DCT picks it for the reference: float32 for
    float16/float32 arrays, float64 for everything else."""
    dtype = np.asarray(chunks).dtype if hasattr(chunks, "dtype") else None
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


class FASTTokenizer(ActionTokenizer):
    """DCT + BPE action tokenizer, id-for-id the reference processor (see the module docstring).

    Args:
        scale: multiplier applied to DCT coefficients before rounding (larger = finer, more tokens).
        vocab_size: BPE vocabulary size; must be at least the coefficient range seen in `fit`.
        clip: clip coefficients into the fitted range (bounded sequence lengths, every sequence decodes) instead of
            the reference's byte tokens beyond it.
    """

    name = "fast"
    conformance_rmse_bound = 0.05

    def __init__(self, scale: Scale = 10.0, vocab_size: VocabSize = 1024, clip: bool = False):
        super().__init__()
        self.scale = float(scale)
        self._vocab_size = int(vocab_size)
        self.clip = bool(clip)
        self.min_token: int | None = None
        self.max_token: int | None = None
        self.bpe: Tokenizer | None = None
        self._n_vocab = 0
        self._encode_tables: _kernels.EncodeTables | None = None

    # ------------------------------------------------------------ protocol
    @property
    def vocab_size(self) -> int:
        """The configured size, or the BPE's when it holds more ids (its initial alphabet alone has
        max_token - min_token + 1 symbols, plus the byte symbols the training strings use)."""
        return max(self._vocab_size, self._n_vocab)

    def get_params(self) -> dict[str, Any]:
        return {"scale": self.scale, "vocab_size": self._vocab_size, "clip": self.clip}

    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> FASTTokenizer:
        """Learn the coefficient range and the BPE from normalized chunks `[N, H, D]` (float32 chunks are
        transformed and rounded in float32, as the reference does)."""
        chunks = self._input(chunks, fitted=False)
        if len(chunks) == 0:
            raise ActokError("cannot fit FAST on zero chunks")
        self._set_shape(chunks)
        raw = self.transform(chunks)
        rounded = np.around(raw * raw.dtype.type(self.scale))
        if not np.isfinite(rounded).all():
            raise ActokError(f"the {self.transform_name} coefficients times scale {self.scale:g} overflow {raw.dtype}")
        lo, hi = int(rounded.min()), int(rounded.max())
        span = hi - lo
        if span > self._vocab_size:
            fitting_scale = (self._vocab_size - 1) / float(raw.max() - raw.min())
            raise ActokError(
                f"vocab_size {self._vocab_size} is smaller than the {self.transform_name} coefficient range {span} at scale "
                f"{self.scale:g}: use vocab_size >= {span}, or scale <= {fitting_scale:.3g} for this vocab_size"
            )
        if span > self._vocab_size - 100:
            warnings.warn(
                f"the coefficient range {span} is within 100 of vocab_size {self._vocab_size}: few merges are left "
                "for BPE; raise vocab_size or lower scale",
                ActokWarning,
                stacklevel=2,
            )
        self.min_token, self.max_token = lo, hi
        self.bpe = train_bpe(symbols_to_strings(rounded.astype(np.int64) - lo), self._vocab_size, span + 1)
        self._prepare()
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalized chunks `[N, H, D]` -> BPE ids per chunk (no BOS/EOS): the reference's ids (module docstring);
        warns (`ActokWarning`) when a chunk lost symbols the vocabulary cannot spell, as the reference loses them."""
        chunks = self._input(chunks)
        self._check_bpe()
        if self._encode_tables is None:
            ids, flags = self._encode_with_library(chunks)
        else:
            ids, flags = _kernels.encode_chunks(
                chunks, self.transform, self.scale, self.min_token, self._emit_code, self.clip, self._encode_tables
            )
            rows = np.flatnonzero(flags == _kernels.TOO_LARGE)  # code points beyond the loops' tables
            if len(rows):
                sub_ids, flags[rows] = self._encode_with_library(chunks[rows])
                for i, row in zip(rows.tolist(), sub_ids, strict=True):
                    ids[i] = row
        dropped = int(np.count_nonzero(flags == _kernels.DROPPED))
        if dropped:
            warnings.warn(
                f"{dropped} of {len(flags)} chunks have coefficients beyond the fitted range [{self.min_token}, "
                f"{self.max_token}] whose bytes have no symbol in the BPE vocabulary: they were dropped, as the "
                "reference processor drops them, so those sequences will not decode (clip=True clips such "
                "coefficients into the range instead)",
                ActokWarning,
                stacklevel=2,
            )
        return ids

    def count_clipped(self, chunks: np.ndarray) -> int:
        """How many coefficients of `chunks` `clip=True` moves: outside the fitted [min_token, max_token] range, or
        on a code point whose bytes the BPE vocabulary has no symbols for. The same count whatever `clip` is (with
        clip=False, those above the range are spelled with byte tokens instead, or dropped as the reference does)."""
        return self._code_points(self._input(chunks))[1]

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """Valid: every id in the vocabulary, their bytes valid UTF-8, exactly H·D symbols (module docstring). The
        repair (`relaxed`): unknown ids skipped (as the reference skips them), broken bytes read as zero
        coefficients, then cut or padded with zero coefficients, as LeRobot's relaxed decoding does."""
        n_coeff = self.n_coefficients(horizon) * action_dim
        out = np.empty((len(batch), horizon, action_dim))

        def finish(rows, coeff: np.ndarray, *_, workers: int | None = None) -> None:
            out[rows] = self.inverse_transform(coeff, horizon, action_dim, workers=workers)

        if _kernels.numba_available():  # compiled id -> coefficient loop and inverse transform, per row block
            coeff, n_chars, ids_ok, partial = _kernels.decode_ids(
                batch.flat, batch.lengths, self._decode_tables, n_coeff, lambda rows, *b: finish(rows, *b, workers=1)
            )
        else:
            coeff, n_chars, ids_ok, partial = self._coefficients_numpy(batch, n_coeff)
            finish(slice(None), coeff)
        utf8_ok = np.ones(len(batch), dtype=bool)
        rows = np.flatnonzero(partial)
        if len(rows):
            sub, n_chars[rows], ids_ok[rows], utf8_ok[rows] = self._coefficients_from_bytes(batch, rows, n_coeff)
            finish(rows, sub)
        return out, ids_ok & utf8_ok & (n_chars == n_coeff)

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        n = self.n_coefficients(horizon) * action_dim
        return f"ids in [0, {self._n_vocab}) whose bytes are UTF-8 text of exactly {n} symbols (H {horizon} x D {action_dim})"

    def _check_fitted_state(self) -> None:
        self._check_bpe()

    def _coefficients_numpy(
        self, batch: TokenBatch, n_coeff: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the compiled decode loop computes, vectorized with numpy (without numba): scaled coefficients
        `[N, n_coeff]` of the whole-character tokens, symbols per row, rows with only known ids, rows holding a
        partial-character token."""
        padded = batch.padded()
        n, width = padded.shape
        present = np.arange(width) < batch.lengths[:, None]
        known = present & (padded >= 0) & (padded < self._n_vocab)
        safe = np.where(known, padded, 0)
        whole = known & self._token_whole[safe]
        tokens, token_row = padded[whole], np.nonzero(whole)[0]
        per_token = self._token_length[tokens]
        ends = np.cumsum(per_token)
        total = int(ends[-1]) if len(ends) else 0
        gather = np.repeat(self._token_start[tokens] - (ends - per_token), per_token) + np.arange(total)
        row = np.repeat(token_row, per_token)
        n_chars = np.bincount(row, minlength=n)
        pos = np.arange(total) - np.repeat(np.cumsum(n_chars) - n_chars, n_chars)
        keep = pos < n_coeff
        coeff = np.zeros((n, n_coeff))
        coeff[row[keep], pos[keep]] = self._decode_tables.values[gather[keep]]
        return coeff, n_chars, (known | ~present).all(axis=1), (known & ~whole).any(axis=1)

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
            ids = ids[(ids >= 0) & (ids < self._n_vocab)]
            known = self._token_known[ids]
            raw = b"".join(self._token_bytes[t] for t in ids[known].tolist())
            try:
                text, utf8_ok[k] = raw.decode("utf-8"), True
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
            points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
            values = np.where(utf8_ok[k] | (points != 0xFFFD), (points + self.min_token) / self.scale, 0.0)
            coeff[k, : min(len(values), n_coeff)] = values[:n_coeff]
            n_chars[k], ids_ok[k] = len(points), len(ids) == batch.lengths[i] and known.all()
        return coeff, n_chars, ids_ok, utf8_ok

    # ------------------------------------------------- the transform (a hook)
    transform_name = "DCT"

    def transform(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        """Chunks `[N, H, D]` -> unscaled coefficients `[N, C·D]`, frequency-major (DCT-II, orthonormal), in the
        chunks' dtype; `workers`: threads for the transform (default: `ACTOK_NUM_THREADS` or the usable cores)."""
        return flatten_rows(dct(chunks, axis=1, norm="ortho", workers=workers or _kernels.num_threads()))

    def n_coefficients(self, horizon: int) -> int:
        """Coefficients per dimension for a horizon (C)."""
        return horizon

    def inverse_transform(
        self, coeff: np.ndarray, horizon: int, action_dim: int, workers: int | None = None
    ) -> np.ndarray:
        """Coefficients `[N, C·D]` -> chunks `[N, H, D]`; may reuse `coeff`'s memory (decode's own buffer)."""
        return idct(
            coeff.reshape(len(coeff), horizon, action_dim),
            axis=1,
            norm="ortho",
            workers=workers or _kernels.num_threads(),
            overwrite_x=True,
        )

    def extra_metrics(self, chunks: np.ndarray, ids: list[list[int]], decoded: np.ndarray) -> dict[str, float]:
        """FAST-specific bench metrics: the fraction of coefficients outside the fitted range (`count_clipped`:
        what clip=True moves; with clip=False, what gets longer byte-level tokens instead)."""
        return {"clipped_coefficient_fraction": self.count_clipped(chunks) / chunks.size}

    # -------------------------------------------------------------- internals
    def _input(self, chunks: np.ndarray, fitted: bool = True) -> np.ndarray:
        """Validated chunks `[N, H, D]` (of the fitted shape when `fitted`) in the dtype the transform runs in."""
        checked = self._check_shape(chunks) if fitted else as_chunks(chunks)
        dtype = transform_dtype(chunks)
        return checked if dtype is np.float64 else np.asarray(chunks, dtype=dtype)

    def _check_bpe(self) -> None:
        if self.bpe is None or self.min_token is None:
            raise ActokError("FAST tokenizer is not fitted: call fit(chunks) first or load a saved one")

    def _prepare(self) -> None:
        """Tables for encode and decode. Encode: for every code point of the fitted range, the nearest one whose
        UTF-8 bytes all have a byte-level symbol in the vocabulary (what clip=True emits); decode: the bytes each
        token decodes to, and the code points of the tokens that are whole UTF-8 characters."""
        vocab = self.bpe.get_vocab()
        self._n_vocab = max(vocab.values(), default=-1) + 1
        symbol_ids = np.array([vocab.get(s, -1) for s in byte_symbols()] + [-1], dtype=np.int64)
        self._symbol_ids = symbol_ids
        raw = _kernels.table_bytes(_kernels.TABLE_CODE_POINTS)[1]
        self._spelled = ((symbol_ids[raw] >= 0) | (raw < 0)).all(axis=1)  # per code point below U+10000
        codes = np.arange(self.max_token - self.min_token + 1)
        emit = self._spelled[codes]
        if not emit.any():
            raise ActokError("the BPE vocabulary cannot spell any code point of the fitted range")
        ok = codes[emit]
        nearest = np.clip(np.searchsorted(ok, codes), 1, len(ok) - 1) if len(ok) > 1 else np.zeros_like(codes)
        left, right = ok[np.maximum(nearest - 1, 0)], ok[nearest]
        self._emit_code = np.where(np.abs(codes - left) <= np.abs(right - codes), left, right).astype(np.int32)
        self._emit_code[emit] = codes[emit]
        self._encode_tables = (
            _kernels.EncodeTables.build(self.bpe.to_str(), self.bpe.pre_tokenizer)
            if _kernels.numba_available()
            else None
        )
        known = np.zeros(self._n_vocab, dtype=bool)
        byte_strings = [b""] * self._n_vocab
        points, starts, sizes = [], np.zeros(self._n_vocab, np.int64), np.zeros(self._n_vocab, np.int64)
        whole, offset = np.zeros(self._n_vocab, dtype=bool), 0
        for token, i in vocab.items():
            known[i], byte_strings[i] = True, token_bytes(token)
            try:
                text = byte_strings[i].decode("utf-8")
            except UnicodeDecodeError:
                continue  # part of a character: its row is decoded from the joined bytes
            whole[i], starts[i], sizes[i] = True, offset, len(text)
            points.append(text)
            offset += len(text)
        self._token_known, self._token_bytes = known, byte_strings
        self._token_whole, self._token_start, self._token_length = whole, starts, sizes
        token_points = np.frombuffer("".join(points).encode("utf-32-le"), dtype="<u4").astype(np.int64)
        self._decode_tables = _kernels.DecodeTables.build(
            whole, starts, sizes, token_points, self.min_token, self.scale
        )

    def _code_points(self, chunks: np.ndarray) -> tuple[np.ndarray, int]:
        """Chunks (in their transform dtype) -> (code points `[N, C·D]` as encode spells them, how many
        coefficients clip=True moves). The reference's rule: round(coefficient * scale) in the chunks' dtype, minus
        min_token, below 0 clamped to 0. With clip=True, and where the reference cannot encode the result (U+D800 to
        U+DFFF, beyond U+10FFFF, NaN from an overflowing transform): the nearest code point of the fitted range the
        vocabulary spells. The compiled encode loop applies the same rule."""
        coeff = self.transform(chunks)
        v = np.rint(coeff * coeff.dtype.type(self.scale)).astype(np.float64) - self.min_token
        span = self.max_token - self.min_token
        fitted = self._emit_code[np.where(v > 0, np.minimum(v, span), 0).astype(np.int64)]  # NaN -> 0
        spelled = (v < SURROGATES) | ((v > 0xDFFF) & (v <= 0x10FFFF))
        codes = np.where(self.clip | ~spelled, fitted, np.where(spelled & (v > 0), v, 0)).astype(np.int64)
        return codes, int(np.count_nonzero(fitted != v))

    def _encode_with_library(self, chunks: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
        """Chunks -> (ids through the tokenizers library, row flags: DROPPED where a byte had no symbol)."""
        codes = self._code_points(chunks)[0]
        small = codes < len(self._spelled)
        missing = ~self._spelled[np.where(small, codes, 0)]
        raw = _kernels.utf8_bytes(codes[~small])[1]
        missing[~small] = ((self._symbol_ids[raw] < 0) & (raw >= 0)).any(axis=1)
        dropped = missing.any(axis=1)
        ids = [e.ids for e in self.bpe.encode_batch_fast(symbols_to_strings(codes))]
        return ids, np.where(dropped, _kernels.DROPPED, 0).astype(np.int8)

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_bpe()
        fields = {
            "action_dim": self.action_dim,
            "clip": self.clip,
            "max_token": self.max_token,
            "min_token": self.min_token,
            "scale": self.scale,
            "time_horizon": self.horizon,
            "vocab_size": self._vocab_size,
        }
        write_processor_files(directory, self.bpe, PROCESSOR_MODULE, "UniversalActionProcessor", fields)
        return {"min_token": self.min_token, "max_token": self.max_token}

    @classmethod
    def load(cls, directory: str | Path) -> FASTTokenizer:
        """Read a FAST folder: processor_config.json and the BPE file (what every FAST consumer reads), and, in a
        folder actok wrote, actok_tokenizer.json, which must agree with them."""
        path = Path(directory)
        tok = load_fast_folder(path)
        if (path / CONFIG_FILE).is_file():
            _check_agrees(tok, path / CONFIG_FILE)
        return tok


# ------------------------------------------------------------------ folder files
_REQUIRED = object()
_KINDS: dict[str, Callable[[Any], bool]] = {
    "a positive finite number": lambda v: (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    ),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a positive integer": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "true or false": lambda v: isinstance(v, bool),
    "a JSON object": lambda v: isinstance(v, dict),
}


def config_field(
    config: dict[str, Any], path: Path, key: str, kind: str, default: Any = _REQUIRED, nullable: bool = False
) -> Any:
    """`config[key]`, checked to be `kind` (a key of `_KINDS`) or, when `nullable`, null; `default` when absent
    (raises `ActokError` naming the file when it is required)."""
    if key not in config:
        if default is _REQUIRED:
            raise ActokError(f"{path} lacks {key!r} ({kind})")
        return default
    value = config[key]
    if not (_KINDS[kind](value) or (nullable and value is None)):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ActokError(f"{path}: {key!r} must be {kind}{' or null' if nullable else ''}, got {shown}")
    return value


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; `ActokError` naming the file when it is unreadable, not JSON or not an object."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ActokError(f"{path} is not UTF-8 text (a JSON file was expected)") from None
    except OSError as err:
        raise ActokError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ActokError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    if not isinstance(config, dict):
        raise ActokError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def read_bpe(path: Path) -> Tokenizer:
    """A byte-level BPE `tokenizer.json`; `ActokError` naming the file for anything else."""
    bpe = read_bpe_file(path)
    spec = json.loads(bpe.to_str())
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    if model.get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise ActokError(
            f"{path} holds a {model.get('type')} model with a {decoder.get('type')} decoder; FAST needs a byte-level "
            "BPE (model BPE, decoder ByteLevel)"
        )
    return bpe


def alphabet_end(bpe: Tokenizer) -> int:
    """The last code point i with chr(0) .. chr(i) all single-character tokens: the reference's initial alphabet
    is chr(0 .. max_token - min_token), so this recovers max_token - min_token for a folder that does not record
    it (a byte symbol right after the alphabet can make it a few code points larger, never smaller)."""
    vocab = bpe.get_vocab()
    end = 0
    while chr(end) in vocab:
        end += 1
    return end - 1


def load_fast_folder(path: Path) -> FASTTokenizer:
    """Load a FAST folder in the flat Hub layout or the transformers-5 layout (`bpe_tokenizer/` subfolder),
    including folders actok did not write (LeRobot's, without max_token; the universal FAST+ tokenizer with null
    time_horizon/action_dim). Every field is checked; a bad one raises `ActokError` naming the file."""
    config_path = path / PROCESSOR_CONFIG
    if not config_path.is_file():
        raise ActokError(f"{path} is not a FAST tokenizer folder: the file {PROCESSOR_CONFIG} is missing")
    candidates = [path / TOKENIZER_FILE, path / BPE_SUBFOLDER / TOKENIZER_FILE]
    bpe_file = next((p for p in candidates if p.is_file()), None)
    if bpe_file is None:
        raise ActokError(
            f"{path} is not a FAST tokenizer folder: the file {TOKENIZER_FILE} is missing (looked in {path} and {path / BPE_SUBFOLDER})"
        )
    config = read_json_object(config_path)
    scale = config_field(config, config_path, "scale", "a positive finite number")
    min_token = config_field(config, config_path, "min_token", "an integer")
    max_token = config_field(config, config_path, "max_token", "an integer", default=None, nullable=True)
    vocab_size = config_field(config, config_path, "vocab_size", "a positive integer", default=None, nullable=True)
    horizon = config_field(config, config_path, "time_horizon", "a positive integer", default=None, nullable=True)
    action_dim = config_field(config, config_path, "action_dim", "a positive integer", default=None, nullable=True)
    clip = config_field(config, config_path, "clip", "true or false", default=False)
    bpe = read_bpe(bpe_file)
    if max_token is None:
        max_token = min_token + alphabet_end(bpe)
    if not 0 <= max_token - min_token < SURROGATES:
        raise ActokError(
            f"{config_path}: max_token {max_token} must be in [min_token, min_token + {SURROGATES - 1}] "
            f"(min_token is {min_token})"
        )
    try:
        tok = FASTTokenizer(scale=scale, vocab_size=vocab_size or bpe.get_vocab_size(), clip=clip)
    except ActokError as err:
        raise ActokError(f"{config_path}: {err}") from None
    tok.bpe, tok.min_token, tok.max_token = bpe, min_token, max_token
    tok.horizon, tok.action_dim = horizon, action_dim
    try:
        tok._prepare()
    except ActokError as err:
        raise ActokError(f"{bpe_file}: {err}") from None
    return tok


def _check_agrees(tok: FASTTokenizer, path: Path) -> None:
    """actok_tokenizer.json of a FAST folder: well-formed, and saying what processor_config.json says (the file
    every FAST consumer reads); a disagreement means one was edited, and neither may silently win."""
    config = read_json_object(path)
    if config.get("tokenizer") != tok.name:
        raise ActokError(f"{path} names the tokenizer {config.get('tokenizer')!r}, not {tok.name!r}")
    params = config_field(config, path, "params", "a JSON object")
    unknown = sorted(set(params) - set(tok.get_params()))
    if unknown:
        raise ActokError(f"{path}: unknown FAST parameter {unknown[0]!r}; valid: {', '.join(tok.get_params())}")
    state = config_field(config, path, "state", "a JSON object", default={})
    saved = {
        "scale": config_field(params, path, "scale", "a positive finite number"),
        "vocab_size": config_field(params, path, "vocab_size", "a positive integer"),
        "clip": config_field(params, path, "clip", "true or false", default=False),
        "time_horizon": config_field(config, path, "horizon", "a positive integer", nullable=True),
        "action_dim": config_field(config, path, "action_dim", "a positive integer", nullable=True),
        "min_token": config_field(state, path, "min_token", "an integer", default=tok.min_token),
        "max_token": config_field(state, path, "max_token", "an integer", default=tok.max_token),
    }
    if config_field(config, path, "vocab_size", "a positive integer") != tok.vocab_size:
        raise ActokError(f"{path}: vocab_size {config['vocab_size']!r} is not the tokenizer's {tok.vocab_size}")
    loaded = {
        "scale": tok.scale,
        "vocab_size": tok._vocab_size,
        "clip": tok.clip,
        "time_horizon": tok.horizon,
        "action_dim": tok.action_dim,
        "min_token": tok.min_token,
        "max_token": tok.max_token,
    }
    for key, value in saved.items():
        if value != loaded[key]:
            raise ActokError(
                f"{path} and {PROCESSOR_CONFIG} disagree on {key} ({value!r} vs {loaded[key]!r}): one of them was "
                "edited; make them agree"
            )
