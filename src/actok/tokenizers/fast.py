"""FAST: DCT over time, scaled and rounded coefficients, byte-level BPE (REFERENCES §3).

Ids are identical to the reference processor's for the same `tokenizer.json` and config, and `fit` builds the
same BPE with the same library calls. Beyond the reference, everything is batch-first and never fails silently:
- encode clips coefficients into the fitted [min_token, max_token] range (and onto symbols the BPE can emit),
  so no symbol is ever dropped; `count_clipped` says how many were changed;
- decode checks every sequence (unknown ids, wrong length, code points outside the fitted range such as the
  U+FFFD a lone UTF-8 lead byte decodes to) and applies the `on_invalid` policy instead of printing.
Encode and decode run in compiled loops (`_fast_kernels`) that give the library's results exactly; without numba,
or for a tokenizer file those loops do not cover, the same steps go through the library and numpy.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer, Tokenizer
from tokenizers.trainers import BpeTrainer

from actok.errors import ActokError, ActokWarning
from actok.tokenizers import _fast_kernels as _kernels
from actok.tokenizers.base import ActionTokenizer, InvalidTokensError, as_chunks, flat_ids, flatten_rows, pad_ids
from actok.tokenizers.params import Scale, VocabSize

PROCESSOR_CONFIG = "processor_config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
PROCESSOR_MODULE = "processing_action_tokenizer.py"
BPE_SUBFOLDER = "bpe_tokenizer"  # where transformers >= 5 writes the BPE files


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


def symbols_to_strings(codes: np.ndarray) -> list[str]:
    """Code points `[N, L]` (all rows the same length) -> N strings, via one UTF-32 decode."""
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


class FASTTokenizer(ActionTokenizer):
    """DCT + BPE action tokenizer.

    Args:
        scale: multiplier applied to DCT coefficients before rounding (larger = finer, more tokens).
        vocab_size: BPE vocabulary size; must be at least the coefficient range seen in `fit`.
    """

    name = "fast"
    conformance_rmse_bound = 0.05

    def __init__(self, scale: Scale = 10.0, vocab_size: VocabSize = 1024):
        super().__init__()
        self.scale = float(scale)
        self._vocab_size = int(vocab_size)
        self.min_token: int | None = None
        self.max_token: int | None = None
        self.bpe: Tokenizer | None = None
        self._encode_tables: _kernels.EncodeTables | None = None

    # ------------------------------------------------------------ protocol
    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def get_params(self) -> dict[str, Any]:
        return {"scale": self.scale, "vocab_size": self._vocab_size}

    def fit(self, chunks: np.ndarray) -> FASTTokenizer:
        chunks = as_chunks(chunks)
        if len(chunks) == 0:
            raise ActokError("cannot fit FAST on zero chunks")
        self._set_shape(chunks)
        raw = self.transform(chunks)
        codes = np.around(raw * self.scale).astype(np.int64)
        lo, hi = int(codes.min()), int(codes.max())
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
        self.bpe = train_bpe(symbols_to_strings(codes - lo), self._vocab_size, span + 1)
        self._prepare()
        return self

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalized chunks `[N, H, D]` -> BPE ids per chunk (no BOS/EOS)."""
        chunks = self._check_shape(chunks)
        self._check_bpe()
        if self._encode_tables is None:
            return [e.ids for e in self.bpe.encode_batch_fast(symbols_to_strings(self._symbols(chunks)[0]))]
        return _kernels.encode_chunks(
            chunks, self.transform, self.scale, self.min_token, self._emit_code, self._encode_tables
        )

    def count_clipped(self, chunks: np.ndarray) -> int:
        """How many coefficients of `chunks` encode would change (outside the fitted range, or a symbol the
        BPE vocabulary cannot emit)."""
        return int(self._symbols(self._check_shape(chunks))[1])

    def decode(
        self,
        ids: Sequence[Sequence[int]],
        horizon: int | None = None,
        action_dim: int | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ):
        """Ids -> chunks `[N, H, D]`. A sequence is valid when every id is in the vocabulary and it decodes to
        exactly H·D symbols inside the fitted range. Invalid ones become zeros (`"zeros"`, the reference's
        behaviour), are padded/truncated with zero coefficients (`"relaxed"`, as LeRobot does), or raise."""
        self._check_policy(on_invalid)
        self._check_bpe()
        h, d = self._decode_shape(horizon, action_dim)
        n_coeff = self.n_coefficients(h) * d
        out = np.empty((len(ids), h, d))

        def finish(rows, coeff, n_chars, ids_ok, range_ok, workers=None) -> None:
            """Coefficients of some rows -> their chunks in `out`, with the zeros policy applied."""
            if on_invalid == "zeros":  # the inverse DCT of zeros is exactly zero, as the reference returns
                coeff[~(ids_ok & (n_chars == n_coeff) & range_ok)] = 0.0
            out[rows] = self.inverse_transform(coeff, h, d, workers=workers)

        if _kernels.numba_available():
            # compiled id -> coefficient loop and inverse transform, block by block on the CPU cores
            flat, lengths = flat_ids(ids)
            coeff, n_chars, ids_ok, range_ok, library = _kernels.decode_ids(
                flat, lengths, self._decode_tables, n_coeff, lambda rows, *block: finish(rows, *block[:4], workers=1)
            )
            rows = np.flatnonzero(library)
            if len(rows):  # tokens holding part of a UTF-8 character: the library's byte-level decoder
                sub = self._coefficients_numpy(*pad_ids([ids[i] for i in rows]), n_coeff)
                n_chars[rows], ids_ok[rows], range_ok[rows] = sub[1:]
                finish(rows, *sub)
        else:
            coeff, n_chars, ids_ok, range_ok = self._coefficients_numpy(*pad_ids(ids), n_coeff)
            finish(slice(None), coeff, n_chars, ids_ok, range_ok)
        valid = ids_ok & (n_chars == n_coeff) & range_ok
        if on_invalid == "raise" and not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            raise InvalidTokensError(
                f"sequence {bad} is not a valid FAST encoding: it decodes to {int(n_chars[bad])} symbols "
                f"(expected {n_coeff} for H {h} x D {d}) "
                + ("with ids outside the vocabulary" if not ids_ok[bad] else "or symbols outside the fitted range")
            )
        return (out, valid) if return_valid else out

    def _coefficients_numpy(
        self, padded: np.ndarray, lengths: np.ndarray, n_coeff: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Padded ids -> (scaled coefficients `[N, n_coeff]`, symbols per row, rows with only known ids, rows with
        only in-range symbols), vectorized with numpy: without numba, and for rows with partial-character tokens.
        Longer rows are cut, shorter ones padded with zeros, out-of-range symbols read as zero coefficients."""
        n = len(padded)
        known = (padded >= 0) & (padded < self._n_vocab)
        known |= np.arange(padded.shape[1]) >= lengths[:, None]
        n_chars, row, pos, symbols = self._symbols_of(padded, lengths, known)
        in_range = symbols <= self.max_token - self.min_token
        coeff = np.zeros((n, n_coeff))
        keep = pos < n_coeff
        coeff[row[keep], pos[keep]] = np.where(in_range, symbols + self.min_token, 0)[keep]
        return coeff / self.scale, n_chars, known.all(axis=1), np.bincount(row[~in_range], minlength=n) == 0

    def _symbols_of(
        self, padded: np.ndarray, lengths: np.ndarray, known: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ids -> code points: (count per row, row and position of each code point, the code points).

        Rows made only of tokens that are whole UTF-8 characters (nearly all) go through a per-token table,
        vectorized over the batch; the rest (unknown ids, tokens holding part of a character) through the BPE
        library's byte-level decoder, whose lossy UTF-8 handling they need. Both give what the library gives."""
        n, width = padded.shape
        present = np.arange(width) < lengths[:, None]
        safe = np.where(present & known, padded, 0)
        table_rows = known.all(axis=1) & (self._token_whole[safe] | ~present).all(axis=1)
        tokens = safe[table_rows][present[table_rows]]
        token_row = np.repeat(np.flatnonzero(table_rows), lengths[table_rows])
        per_token = self._token_length[tokens]
        ends = np.cumsum(per_token)
        gather = np.repeat(self._token_start[tokens] - (ends - per_token), per_token) + np.arange(
            int(ends[-1]) if len(ends) else 0
        )
        rows, symbols = [np.repeat(token_row, per_token)], [self._token_points[gather]]
        slow = np.flatnonzero(~table_rows)
        if len(slow):
            # Rebuilt from the validated int64 array, so whatever the caller passed (floats, numpy ints,
            # unknown ids) reaches the BPE library as in-vocabulary Python ints.
            texts = self.bpe.decode_batch(
                [padded[i, : lengths[i]][known[i, : lengths[i]]].tolist() for i in slow], skip_special_tokens=False
            )
            counts = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(slow))
            rows.append(np.repeat(slow, counts))
            symbols.append(np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.int64))
        row, symbol = np.concatenate(rows), np.concatenate(symbols)
        if len(slow):
            order = np.argsort(row, kind="stable")  # table rows and library rows interleave back in row order
            row, symbol = row[order], symbol[order]
        n_chars = np.bincount(row, minlength=n)
        pos = np.arange(len(row)) - np.repeat(np.cumsum(n_chars) - n_chars, n_chars)
        return n_chars, row, pos, symbol

    # ------------------------------------------------- the transform (a hook)
    transform_name = "DCT"

    def transform(self, chunks: np.ndarray, workers: int | None = None) -> np.ndarray:
        """Chunks `[N, H, D]` -> unscaled coefficients `[N, C·D]`, frequency-major (DCT-II, orthonormal);
        `workers`: threads for the transform (default: `ACTOK_NUM_THREADS` or the usable cores)."""
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
        """FAST-specific bench metrics."""
        return {"clipped_coefficient_fraction": self.count_clipped(chunks) / chunks.size}

    # -------------------------------------------------------------- internals
    def _check_bpe(self) -> None:
        if self.bpe is None or self.min_token is None:
            raise ActokError("FAST tokenizer is not fitted: call fit(chunks) first or load a saved one")

    def _prepare(self) -> None:
        """Tables for encode/decode: vocabulary size and, for every code point in the fitted range, the
        nearest code point whose UTF-8 bytes all have a byte-level symbol in the vocabulary."""
        self._n_vocab = self.bpe.get_vocab_size()
        vocab = self.bpe.get_vocab()
        table = byte_symbols()
        span = self.max_token - self.min_token
        codes = np.arange(span + 1)
        emit = np.array([all(table[b] in vocab for b in chr(c).encode("utf-8")) for c in codes])
        if not emit.any():
            raise ActokError("the BPE vocabulary cannot emit any symbol of the fitted range")
        ok = codes[emit]
        nearest = np.clip(np.searchsorted(ok, codes), 1, len(ok) - 1) if len(ok) > 1 else np.zeros_like(codes)
        left, right = ok[np.maximum(nearest - 1, 0)], ok[nearest]
        self._emit_code = np.where(np.abs(codes - left) <= np.abs(right - codes), left, right).astype(np.int32)
        self._emit_code[emit] = codes[emit]
        self._encode_tables = (
            _kernels.EncodeTables.build(self.bpe.to_str(), self.bpe.pre_tokenizer, span + 1)
            if _kernels.numba_available()
            else None
        )
        # Decode table: the code points of every token that is a sequence of whole UTF-8 characters.
        inverse = {symbol: b for b, symbol in enumerate(byte_symbols())}
        points, starts, sizes = [], np.zeros(self._n_vocab, np.int64), np.zeros(self._n_vocab, np.int64)
        whole, offset = np.zeros(self._n_vocab, dtype=bool), 0
        for token, i in vocab.items():
            try:
                text = bytes(inverse[c] for c in token).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                continue  # part of a character (or not byte-level): decoded by the library
            whole[i], starts[i], sizes[i] = True, offset, len(text)
            points.append(text)
            offset += len(text)
        self._token_whole, self._token_start, self._token_length = whole, starts, sizes
        self._token_points = np.frombuffer("".join(points).encode("utf-32-le"), dtype="<u4").astype(np.int64)
        self._decode_tables = _kernels.DecodeTables.build(
            whole, starts, sizes, self._token_points, span, self.min_token, self.scale
        )

    def _symbols(self, chunks: np.ndarray) -> tuple[np.ndarray, int]:
        """Chunks -> (code points `[N, H·D]` the BPE can encode, number of coefficients changed)."""
        coeff = self.transform(chunks)
        if self._encode_tables is not None:
            return _kernels.quantize(coeff, self.scale, self.min_token, self._emit_code)
        raw = np.around(coeff * self.scale) - self.min_token  # clipped as floats: huge values must not wrap
        codes = self._emit_code[np.clip(raw, 0, self.max_token - self.min_token).astype(np.int64)]
        return codes, int(np.count_nonzero(codes != raw))

    # ------------------------------------------------------------- save/load
    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._check_bpe()
        self.bpe.save(str(directory / TOKENIZER_FILE))
        processor = {
            "action_dim": self.action_dim,
            "auto_map": {"AutoProcessor": "processing_action_tokenizer.UniversalActionProcessor"},
            "max_token": self.max_token,
            "min_token": self.min_token,
            "processor_class": "UniversalActionProcessor",
            "scale": self.scale,
            "time_horizon": self.horizon,
            "vocab_size": self._vocab_size,
        }
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(processor, indent=2) + "\n")
        tokenizer_config = {
            "added_tokens_decoder": {},
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1000000000000000019884624838656,
            "processor_class": "UniversalActionProcessor",
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        (directory / TOKENIZER_CONFIG).write_text(json.dumps(tokenizer_config, indent=2) + "\n")
        # transformers >= 5 looks for a non-primary tokenizer in its own subfolder (the flat files above are
        # the Hub layout older versions and other tools read); writing both loads everywhere without warnings.
        (directory / BPE_SUBFOLDER).mkdir(exist_ok=True)
        self.bpe.save(str(directory / BPE_SUBFOLDER / TOKENIZER_FILE))
        (directory / BPE_SUBFOLDER / TOKENIZER_CONFIG).write_text(json.dumps(tokenizer_config, indent=2) + "\n")
        module = Path(__file__).with_name("_hub") / PROCESSOR_MODULE
        (directory / PROCESSOR_MODULE).write_text(module.read_text())
        return {"min_token": self.min_token, "max_token": self.max_token}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:
        loaded = load_fast_folder(directory)
        self.min_token, self.max_token, self.bpe = loaded.min_token, loaded.max_token, loaded.bpe
        self._prepare()

    @classmethod
    def load(cls, directory: str | Path) -> FASTTokenizer:
        return load_fast_folder(Path(directory))


def _max_code_point(bpe: Tokenizer) -> int:
    """Largest code point a BPE's vocabulary can spell (used when a folder does not record max_token)."""
    table = {s: b for b, s in enumerate(byte_symbols())}
    best = 0
    for token in bpe.get_vocab():
        raw = bytes(table[c] for c in token if c in table)
        best = max(best, *(ord(c) for c in raw.decode("utf-8", errors="ignore")), 0)
    return best


def load_fast_folder(path: Path) -> FASTTokenizer:
    """Load a FAST folder in the flat Hub layout or the transformers-5 layout (`bpe_tokenizer/` subfolder),
    including folders actok did not write (e.g. the universal FAST+ tokenizer with null horizon/dim)."""
    config_path = path / PROCESSOR_CONFIG
    if not config_path.is_file():
        raise ActokError(f"{path} is not a FAST tokenizer folder: the file {PROCESSOR_CONFIG} is missing")
    candidates = [path / TOKENIZER_FILE, path / BPE_SUBFOLDER / TOKENIZER_FILE]
    bpe_file = next((p for p in candidates if p.is_file()), None)
    if bpe_file is None:
        raise ActokError(
            f"{path} is not a FAST tokenizer folder: the file {TOKENIZER_FILE} is missing (looked in {path} and {path / BPE_SUBFOLDER})"
        )
    config = json.loads(config_path.read_text())
    missing = [k for k in ("scale", "min_token") if k not in config]
    if missing:
        raise ActokError(f"{config_path} lacks {', '.join(missing)}")
    bpe = Tokenizer.from_file(str(bpe_file))
    tok = FASTTokenizer(scale=config["scale"], vocab_size=config.get("vocab_size") or bpe.get_vocab_size())
    tok.bpe = bpe
    tok.min_token = int(config["min_token"])
    tok.max_token = (
        int(config["max_token"]) if config.get("max_token") is not None else tok.min_token + _max_code_point(bpe)
    )
    tok.horizon = config.get("time_horizon")
    tok.action_dim = config.get("action_dim")
    tok._prepare()
    return tok
