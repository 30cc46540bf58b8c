"""The protocol every action tokenizer implements.

A tokenizer is constructed with its parameters, learns from normalized chunks `[N, H, D]` in `fit`, turns
chunks into variable-length id lists in `encode`, and back in `decode`. `save(dir)` writes a folder that
`actok.load_tokenizer(dir)` reads back. Tokenizers know nothing about datasets or benchmarks.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from actok.errors import ActokError

CONFIG_FILE = "actok_tokenizer.json"
ON_INVALID = ("zeros", "relaxed", "raise")


class InvalidTokensError(ActokError):
    """Raised by `decode(..., on_invalid="raise")` for a sequence that is not a valid encoding."""


def as_chunks(chunks: np.ndarray) -> np.ndarray:
    """Validate and return chunks as a float64 array `[N, H, D]` (a single `[H, D]` chunk is not accepted)."""
    arr = np.asarray(chunks, dtype=np.float64)
    if arr.ndim != 3:
        raise ActokError(f"expected action chunks of shape [N, H, D], got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ActokError("action chunks contain NaN or inf values")
    return arr


def flatten_rows(x: np.ndarray) -> np.ndarray:
    """`[N, ...]` -> `[N, prod(...)]`, also for N = 0 (where `reshape(N, -1)` is ambiguous)."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


_NUMBER_TYPES = (int, float, np.integer, np.floating)  # what a token id may be given as (bool is an int)
_NOT_A_BATCH = (str, bytes, dict, set, frozenset)


def _is_id_row(row: Any) -> bool:
    """A row decode can read id by id: a list, a tuple or a 1-D numeric numpy array."""
    if isinstance(row, np.ndarray):
        return row.ndim == 1 and row.dtype.kind in "biuf"
    return isinstance(row, (list, tuple))


def _row_values(row: Any) -> np.ndarray | None:
    """One row as float64 values, or None when it is not a flat sequence of numbers (None, a string, nested lists,
    objects)."""
    if not isinstance(row, (list, tuple, np.ndarray)):
        return None
    try:
        arr = np.asarray(row)
    except (ValueError, TypeError):  # ragged nesting
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        return None if arr.size or arr.ndim != 1 else np.zeros(0)
    return arr.astype(np.float64)


def _as_ids(values: np.ndarray) -> np.ndarray:
    """float64 values -> int64 ids, with -1 for anything that is not a non-negative integer below 2**62
    (negative, fractional, NaN/inf, huge): no tokenizer has such an id, so the row is invalid."""
    ok = np.isfinite(values) & (values >= 0) & (values < 2**62)
    ok[ok] = values[ok] == np.floor(values[ok])
    return np.where(ok, values, -1).astype(np.int64)


@dataclass(frozen=True)
class TokenBatch:
    """The id sequences of one `decode` call, sanitized once for every tokenizer.

    `flat` holds every id of every row in order (int64; -1 for a value that is not an id: negative, fractional,
    non-finite or huge), `lengths[i]` the number of ids of row i, and `malformed[i]` says that row i was not a flat
    sequence of numbers at all (None, a string, nested lists, ...): it is given as an empty row and is invalid."""

    flat: np.ndarray
    lengths: np.ndarray
    malformed: np.ndarray

    @classmethod
    def from_ids(cls, ids: Any) -> TokenBatch:
        """Any batch of id sequences (a list of lists, a list of arrays, a 2-D array) -> TokenBatch; raises
        `ActokError` when `ids` is not a batch at all."""
        if isinstance(ids, np.ndarray):
            if ids.ndim == 2 and ids.dtype.kind in "biuf":
                n, width = ids.shape
                return cls(
                    _as_ids(ids.astype(np.float64).ravel()), np.full(n, width, np.int64), np.zeros(n, dtype=bool)
                )
            if ids.ndim == 0:
                raise ActokError(f"ids must be a batch of token-id sequences, got a 0-d array of {ids.dtype}")
            ids = list(ids)
        if ids is None or isinstance(ids, _NOT_A_BATCH) or not isinstance(ids, Sequence):
            raise ActokError(
                f"ids must be a batch of token-id sequences (a list of lists, or a 2-D array), got {type(ids).__name__}"
            )
        if all(map(_is_id_row, ids)):
            elements = chain.from_iterable(ids)
            if all(isinstance(t, _NUMBER_TYPES) for t in set(map(type, elements))):
                lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
                values = np.fromiter(chain.from_iterable(ids), dtype=np.float64, count=int(lengths.sum()))
                return cls(_as_ids(values), lengths, np.zeros(len(ids), dtype=bool))
        rows = [_row_values(row) for row in ids]  # the slow path, only for batches holding malformed rows
        malformed = np.array([r is None for r in rows], dtype=bool)
        rows = [np.zeros(0) if r is None else r for r in rows]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        values = np.concatenate(rows) if rows else np.zeros(0)
        return cls(_as_ids(values), lengths, malformed)

    def __len__(self) -> int:
        return len(self.lengths)

    def padded(self, fill: int = -1) -> np.ndarray:
        """`[N, max length]` int64, each row's ids then `fill`."""
        out = np.full((len(self), int(self.lengths.max(initial=0))), fill, dtype=np.int64)
        out[np.arange(out.shape[1]) < self.lengths[:, None]] = self.flat
        return out

    def fixed(self, n_tokens: int) -> np.ndarray:
        """`[N, n_tokens]` int64: each row's ids cut or padded with -1 (for fixed-length tokenizers)."""
        body = np.full((len(self), n_tokens), -1, dtype=np.int64)
        padded = self.padded()
        width = min(n_tokens, padded.shape[1])
        body[:, :width] = padded[:, :width]
        return body

    def rows(self) -> list[list[int]]:
        """Python lists of ids, one per row (for libraries that take lists)."""
        return [r.tolist() for r in np.split(self.flat, np.cumsum(self.lengths)[:-1])] if len(self) else []


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ActokError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def flat_ids(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged id lists -> (every id in one float64 array, lengths `[N]`).

    float64, so that huge, fractional or non-finite values stay visible as such (an int64 conversion would overflow
    or silently truncate them); callers treat anything that is not an integer id as unknown."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.float64, count=int(lengths.sum()))
    return flat, lengths


def pad_ids(ids: Sequence[Sequence[int]], fill: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Ragged id lists -> (`[N, L]` int64 array padded with `fill`, lengths `[N]`); a value that is not an integer
    id (fractional, non-finite, beyond ±2**62) becomes -1."""
    flat, lengths = flat_ids(ids)
    out = np.full((len(lengths), int(lengths.max(initial=0))), fill, dtype=np.int64)
    integral = np.isfinite(flat) & (np.abs(flat) < 2**62)
    integral[integral] = flat[integral] == np.floor(flat[integral])
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.where(integral, flat, -1).astype(np.int64)
    return out, lengths


def fixed_length_ids(ids: Sequence[Sequence[int]], n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids of a fixed-length tokenizer -> (`[N, n_tokens]` int64, cut or padded with -1, original lengths `[N]`)."""
    padded, lengths = pad_ids(ids)
    body = np.full((len(padded), n_tokens), -1, dtype=np.int64)
    width = min(n_tokens, padded.shape[1])
    body[:, :width] = padded[:, :width]
    return body, lengths


class ActionTokenizer(ABC):
    """Base class: subclasses set `name`, implement the abstract methods, and list their constructor
    parameters in `get_params()` so the folder `save` writes can rebuild them."""

    name: ClassVar[str]
    #: whether `fit` learns anything beyond the chunk shape (used by docs and the conformance suite)
    learns_from_data: ClassVar[bool] = True

    def __init__(self) -> None:
        self.horizon: int | None = None
        self.action_dim: int | None = None

    # ----------------------------------------------------------- the protocol
    @abstractmethod
    def fit(self, chunks: np.ndarray) -> ActionTokenizer:
        """Learn from normalized chunks `[N, H, D]`; returns self."""

    @abstractmethod
    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalized chunks `[N, H, D]` -> one list of token ids per chunk."""

    def decode(
        self,
        ids: Sequence[Sequence[int]],
        horizon: int | None = None,
        action_dim: int | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Token ids -> normalized chunks `[N, H, D]` float64 (and a validity mask `[N]` with `return_valid=True`).

        `ids` is a batch: a list of id sequences (lists, tuples or 1-D arrays) or a 2-D array. Never raises on
        malformed sequences unless `on_invalid="raise"`: a row that is not a valid encoding (wrong length, ids
        outside the vocabulary, fractional or negative ids, None, a string, nested lists) is marked invalid and
        decodes to zeros (`"zeros"`) or to the tokenizer's best-effort repair (`"relaxed"`). Raises `ActokError`
        when `ids` is not a batch at all, when `horizon`/`action_dim` are not positive integers, or when the
        tokenizer is not fitted.

        The template for every tokenizer: subclasses implement only `_decode`."""
        self._check_policy(on_invalid)
        h, d = self._decode_shape(horizon, action_dim)
        batch = TokenBatch.from_ids(ids)
        values, valid = self._decode(batch, h, d, relaxed=on_invalid == "relaxed")
        valid = np.asarray(valid, dtype=bool) & ~batch.malformed
        if on_invalid == "raise" and not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            got = "not a sequence of integer ids" if batch.malformed[bad] else f"{int(batch.lengths[bad])} ids"
            raise InvalidTokensError(
                f"sequence {bad} is not a valid {self.name} encoding ({got}); expected {self._valid_encoding(h, d)}"
            )
        if on_invalid == "zeros":
            values[~valid] = 0.0
        return (values, valid) if return_valid else values

    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """The tokenizer's mathematics: sanitized ids -> (chunks `[N, H, D]` float64, validity `[N]` bool).

        Rows that are valid encodings decode exactly; for invalid rows the values are the best-effort repair used
        under `relaxed=True` (they are zeroed by `decode` otherwise, so they need not be computed when
        `relaxed=False`). Must not raise for any content of `batch`."""
        raise NotImplementedError  # TODO(template migration): abstract once fast, wavelet and klt implement it

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        """What a valid sequence looks like, for `on_invalid="raise"` messages (overridden by tokenizers)."""
        return f"a sequence of ids in [0, {self.vocab_size}) as {self.name}.encode returns for [H={horizon}, D={action_dim}]"

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids; every id `encode` returns is in `[0, vocab_size)`."""

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, JSON-serializable."""

    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write learned state into `directory`; return JSON-serializable state for the config file."""
        return {}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what `_save_state` wrote (nothing, for tokenizers without learned state)."""

    # ------------------------------------------------------------ shared code
    def _set_shape(self, chunks: np.ndarray) -> None:
        self.horizon, self.action_dim = int(chunks.shape[1]), int(chunks.shape[2])

    def _check_fitted(self) -> None:
        if self.horizon is None or self.action_dim is None:
            raise ActokError(f"{self.name} tokenizer is not fitted: call fit(chunks) first")

    def _check_shape(self, chunks: np.ndarray) -> np.ndarray:
        chunks = as_chunks(chunks)
        self._check_fitted()
        if chunks.shape[1:] != (self.horizon, self.action_dim):
            raise ActokError(
                f"{self.name} tokenizer was fitted on chunks of shape [H={self.horizon}, D={self.action_dim}], "
                f"got [H={chunks.shape[1]}, D={chunks.shape[2]}]"
            )
        return chunks

    def _fixed_length_body(
        self, ids: Sequence[Sequence[int]], n_tokens: int, n_values: int, on_invalid: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids of a tokenizer with `n_tokens` ids per chunk, each in [0, n_values) -> (`[N, n_tokens]` ids cut or
        padded with -1, validity `[N]`); raises for the first invalid sequence under `on_invalid="raise"`."""
        body, lengths = fixed_length_ids(ids, n_tokens)
        valid = (lengths == n_tokens) & ((body >= 0) & (body < n_values)).all(axis=1)
        if on_invalid == "raise" and not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            raise InvalidTokensError(
                f"sequence {bad} is not a valid {self.name} encoding: {int(lengths[bad])} ids "
                f"(expected {n_tokens}, each in [0, {n_values}))"
            )
        return body, valid

    def _decode_shape(self, horizon: int | None, action_dim: int | None) -> tuple[int, int]:
        """The chunk shape to decode to: the arguments, else the fitted shape; checked to be positive integers
        (and, through `_check_decode_shape`, one the tokenizer can decode to)."""
        self._check_fitted_state()
        h = horizon if horizon is not None else self.horizon
        d = action_dim if action_dim is not None else self.action_dim
        if h is None or d is None:
            raise ActokError(f"{self.name} tokenizer does not know the chunk shape: pass horizon= and action_dim=")
        h, d = _positive_int(h, "horizon"), _positive_int(d, "action_dim")
        self._check_decode_shape(h, d)
        return h, d

    def _check_fitted_state(self) -> None:  # noqa: B027 - optional hook
        """Raise `ActokError` when the learned state decode needs is missing (overridden by tokenizers)."""

    def _check_decode_shape(self, horizon: int, action_dim: int) -> None:  # noqa: B027 - optional hook
        """Raise `ActokError` for a shape this tokenizer cannot decode to (default: any shape)."""

    @staticmethod
    def _check_policy(on_invalid: str) -> None:
        if on_invalid not in ON_INVALID:
            raise ActokError(f"unknown on_invalid policy {on_invalid!r}; valid: {', '.join(ON_INVALID)}")

    def save(self, directory: str | Path) -> Path:
        """Write the tokenizer to `directory` (created if needed) and return its path."""
        self._check_fitted()
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        state = self._save_state(path)
        config = {
            "tokenizer": self.name,
            "params": self.get_params(),
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "vocab_size": self.vocab_size,
            "state": state,
        }
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ActionTokenizer:
        """Read a folder written by `save`."""
        path = Path(directory)
        config = json.loads((path / CONFIG_FILE).read_text())
        tok = cls(**config["params"])
        tok.horizon, tok.action_dim = config["horizon"], config["action_dim"]
        tok._load_state(path, config.get("state", {}))
        return tok

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
