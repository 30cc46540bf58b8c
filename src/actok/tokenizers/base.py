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
from typing import Annotated, Any, ClassVar

import numpy as np
from annotated_types import Ge, Interval
from tokenizers import Tokenizer

from actok.errors import ActokError
from actok.outputs import check_replaceable_folder, clear_tokenizer_folder
from actok.tokenizers.params import (
    MAX_VOCAB,
    check_fields,
    check_value,
    checked_init,
    declared_parameters,
    read_json_object,
)

CONFIG_FILE = "actok_tokenizer.json"
ON_INVALID = ("zeros", "relaxed", "raise")
MAX_CHUNK_VALUES = 2**24  # H·D of a chunk decode is asked for (beyond: an allocation error, not an answer)


class InvalidTokensError(ActokError):
    """Raised by `decode(..., on_invalid="raise")` for a sequence that is not a valid encoding."""


def as_chunks(chunks: np.ndarray) -> np.ndarray:
    """Validate and return chunks as a float64 array `[N, H, D]` (a single `[H, D]` chunk is not accepted)."""
    try:
        arr = np.asarray(chunks, dtype=np.float64)
    except (ValueError, TypeError):
        raise ActokError(f"action chunks must be numbers of shape [N, H, D], got {type(chunks).__name__}") from None
    if arr.ndim != 3:
        raise ActokError(f"expected action chunks of shape [N, H, D], got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ActokError("action chunks contain NaN or inf values")
    return arr


def flatten_rows(x: np.ndarray) -> np.ndarray:
    """`[N, ...]` -> `[N, prod(...)]`, also for N = 0 (where `reshape(N, -1)` is ambiguous)."""
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)))


_NUMBER_TYPES = (int, float, np.integer, np.floating)  # what a token id may be given as (bools are not ids)
_BOOL_TYPES = (bool, np.bool_)
_NOT_A_BATCH = (str, bytes, dict, set, frozenset)


def _is_number(x: Any) -> bool:
    return isinstance(x, _NUMBER_TYPES) and not isinstance(x, _BOOL_TYPES)


def _is_id_row(row: Any) -> bool:
    """A row decode can read id by id: a list, a tuple or a 1-D numeric numpy array."""
    if isinstance(row, np.ndarray):
        return row.ndim == 1 and row.dtype.kind in "iuf"
    return isinstance(row, (list, tuple))


def _row_values(row: Any) -> np.ndarray | None:
    """One row as float64 values, or None when it is not a flat sequence of numbers (None, a string, a number,
    nested lists, booleans, objects)."""
    if not isinstance(row, (list, tuple, np.ndarray)) and hasattr(row, "__array__"):
        row = np.asarray(row)  # a tensor
    if isinstance(row, np.ndarray) and row.dtype == object:
        row = row.tolist()
    if not isinstance(row, (list, tuple, np.ndarray)):
        return None
    try:
        arr = np.asarray(row)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, unconvertible elements
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        return None if arr.size or arr.ndim != 1 else np.zeros(0)
    return arr.astype(np.float64)


def _as_ids(values: np.ndarray) -> np.ndarray:
    """Integer or float values -> int64 ids, with -1 for anything that is not a non-negative integer below 2**62
    (negative, fractional, NaN/inf, huge): no tokenizer has such an id, so the row is invalid."""
    ok = (values >= 0) & (values < 2**62)
    if values.dtype.kind == "f":
        ok &= np.isfinite(values)
        ok[ok] = values[ok] == np.floor(values[ok])
    return np.where(ok, values, -1).astype(np.int64)


def _not_a_batch(ids: Any) -> ActokError:
    return ActokError(
        f"ids must be a batch of token-id sequences (a list of lists, or a 2-D array), got {type(ids).__name__}"
    )


@dataclass(frozen=True)
class TokenBatch:
    """The id sequences of one `decode` call, sanitized once for every tokenizer.

    `flat` holds every id of every row in order (int64; -1 for a value that is not an id: negative, fractional,
    non-finite or huge), `lengths[i]` the number of ids of row i, and `malformed[i]` says that row i was not a flat
    sequence of numbers at all (None, a string, a number, nested lists, booleans, ...): it is given as an empty row
    and is invalid."""

    flat: np.ndarray
    lengths: np.ndarray
    malformed: np.ndarray

    @classmethod
    def from_ids(cls, ids: Any) -> TokenBatch:
        """Any batch of id sequences (a list of lists, tuples or 1-D arrays; a 2-D array or tensor) -> TokenBatch.

        Raises `ActokError` when `ids` is not a batch at all: None, a number, a string, a dict, or one flat
        sequence of numbers (a single sequence must be wrapped: `[ids]`)."""
        if not isinstance(ids, np.ndarray) and hasattr(ids, "__array__") and not isinstance(ids, Sequence):
            try:
                ids = np.asarray(ids)  # a tensor
            except (ValueError, TypeError, RuntimeError):
                raise _not_a_batch(ids) from None
        if isinstance(ids, np.ndarray):
            if ids.ndim == 2 and ids.dtype.kind in "iuf":
                n, width = ids.shape
                return cls(_as_ids(ids.ravel()), np.full(n, width, np.int64), np.zeros(n, dtype=bool))
            if ids.ndim == 0:
                raise ActokError(f"ids must be a batch of token-id sequences, got a 0-d array of {ids.dtype}")
            ids = list(ids)
        if ids is None or isinstance(ids, _NOT_A_BATCH) or not isinstance(ids, Sequence):
            raise _not_a_batch(ids)
        if len(ids) and all(map(_is_number, ids)):
            raise ActokError(
                f"ids must be a batch of token-id sequences, got one flat sequence of {len(ids)} numbers "
                "(to decode a single sequence, pass [ids])"
            )
        if all(map(_is_id_row, ids)):
            # One numpy conversion of every id: numbers give an integer or float array; anything else (None, a
            # string, a nested list, an int beyond 64 bits, all-boolean values) gives another dtype or shape,
            # and the rows are then read one by one. (A boolean among integers reads as 0/1, as Python's int does.)
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            try:
                values = np.array(list(chain.from_iterable(ids)))
            except (ValueError, TypeError, OverflowError):
                values = None
            if values is not None and values.shape == (int(lengths.sum()),) and values.dtype.kind in "iuf":
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


PositiveInt = Annotated[int, Ge(1)]
# What `save` writes to CONFIG_FILE, and what `load` checks before using it.
CONFIG_FIELDS = {
    "tokenizer": str,
    "params": dict,
    "horizon": Annotated[int, Interval(ge=1, le=MAX_CHUNK_VALUES)],
    "action_dim": Annotated[int, Interval(ge=1, le=MAX_CHUNK_VALUES)],
    "vocab_size": PositiveInt,
    "state": dict,
}


def read_config(directory: Path) -> dict[str, Any]:
    """The checked CONFIG_FILE of a tokenizer folder (every field of CONFIG_FIELDS, of its type)."""
    path = directory / CONFIG_FILE
    return check_fields(path, read_json_object(path), CONFIG_FIELDS)


def state_array(directory: Path, state: dict[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """`state[key]` of a saved tokenizer's config as a float64 array of `shape` with finite values, or
    `ActokError` naming the file and the field."""
    where = directory / CONFIG_FILE
    if key not in state:
        raise ActokError(f"{where} lacks the state field {key!r}")
    try:
        arr = np.asarray(state[key])
    except (ValueError, TypeError):  # ragged nesting
        arr = np.zeros(0, dtype=object)
    if arr.shape != shape or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
        raise ActokError(f"{where}: state.{key} must be a {' x '.join(map(str, shape))} array of finite numbers")
    return arr.astype(np.float64)


def read_bpe_file(path: Path) -> Tokenizer:
    """A BPE `tokenizer.json` read through the `tokenizers` library, checked first: the library can abort the
    process (a Rust panic) on some malformed files, so its model is checked here (BPE, a vocabulary of unique
    non-negative ids, merges of vocabulary entries, no subword prefix or suffix). `ActokError` naming the file."""

    def bad(reason: str) -> ActokError:
        return ActokError(f"{path} is not a readable BPE tokenizer file: {reason}")

    try:
        spec = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise bad(f"not JSON ({type(err).__name__})") from None
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise bad("its 'model' is not a BPE model")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vocab.values()
    ):
        raise bad("'model.vocab' must map tokens to non-negative integer ids")
    if len(set(vocab.values())) != len(vocab):
        raise bad("'model.vocab' gives two tokens the same id")
    if not isinstance(merges, list):
        raise bad("'model.merges' must be a list")
    for merge in merges:
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise bad(f"merge {merge!r} is not a pair of tokens")
        if pair[0] not in vocab or pair[1] not in vocab or pair[0] + pair[1] not in vocab:
            raise bad(f"merge {merge!r} uses tokens that are not in the vocabulary")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key) not in (None, ""):
            raise bad(f"'model.{key}' must be empty (action tokenizers use none)")
    try:
        return Tokenizer.from_file(str(path))
    except BaseException as err:  # the library raises plain Exception, or pyo3's PanicException (a BaseException)
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise bad(reason) from None


class ActionTokenizer(ABC):
    """Base class: subclasses set `name`, declare their constructor parameters with checkable annotations (see
    `actok.tokenizers.params`; `get_params` and the parameter checks come from them) and implement `fit`,
    `encode`, `_decode` and `vocab_size`."""

    name: ClassVar[str]
    #: whether `fit` uses its `validation` chunks (early stopping); the others ignore them
    uses_validation: ClassVar[bool] = False
    #: whether decode can only produce the fitted chunk shape (checked by the decode template)
    decodes_fitted_shape_only: ClassVar[bool] = False
    #: whether every sequence of in-vocabulary ids is a valid encoding (empty, cut and extended ones included):
    #: only ids outside the vocabulary make a row invalid (checked by the conformance suite)
    every_sequence_decodes: ClassVar[bool] = False
    #: for the conformance checks (`actok.testing`): constructor parameters of a small, fast fit (learned
    #: tokenizers: few epochs, small networks), the round-trip RMSE bound they give on the held-out chunks (the
    #: bundled Push-T chunks `[N, 10, 2]`, normalized units), and how much decoding a batch may differ from
    #: decoding its rows one by one (matrix products may round differently with the batch size)
    conformance_params: ClassVar[dict[str, Any]] = {}
    conformance_rmse_bound: ClassVar[float | None] = None
    conformance_decode_atol: ClassVar[float] = 0.0

    def __init__(self) -> None:
        self.horizon: int | None = None
        self.action_dim: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass constructor checks its arguments against their annotations (one place for all)."""
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            cls.__init__ = checked_init(cls.__init__, finish=ActionTokenizer._check_vocab_size)

    # ----------------------------------------------------------- the protocol
    @abstractmethod
    def fit(self, chunks: np.ndarray, validation: np.ndarray | None = None) -> ActionTokenizer:
        """Learn from normalized chunks `[N, H, D]`; returns self. `validation` `[M, H, D]` (held-out episodes) is
        used by tokenizers that train iteratively (`uses_validation`) and ignored by the others."""

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

        `ids` is a batch: a list of id sequences (lists, tuples or 1-D arrays), a 2-D array or a 2-D tensor. Never
        raises on malformed sequences unless `on_invalid="raise"`: a row that is not a valid encoding (wrong length,
        ids outside the vocabulary, fractional or negative ids, None, a string, a number, nested lists) is marked
        invalid and decodes to zeros (`"zeros"`) or to the tokenizer's best-effort repair (`"relaxed"`). Raises
        `ActokError` when `ids` is not a batch at all (None, a number, a string, a dict, one flat sequence of
        numbers), when `horizon`/`action_dim` are not positive integers, or when the tokenizer is not fitted.

        The template for every tokenizer: subclasses implement only `_decode`."""
        self._check_policy(on_invalid)
        return_valid = check_value("return_valid", bool, return_valid)
        h, d = self._decode_shape(horizon, action_dim)
        batch = TokenBatch.from_ids(ids)
        values, valid = self._decode(batch, h, d, relaxed=on_invalid == "relaxed")
        finite = np.isfinite(values).all(axis=(1, 2))  # e.g. a corrupted saved state: never hand back inf/NaN
        values[~finite] = 0.0
        valid = np.asarray(valid, dtype=bool) & ~batch.malformed & finite
        if on_invalid == "raise" and not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            got = "not a sequence of integer ids" if batch.malformed[bad] else f"{int(batch.lengths[bad])} ids"
            raise InvalidTokensError(
                f"sequence {bad} is not a valid {self.name} encoding ({got}); expected {self._valid_encoding(h, d)}"
            )
        if on_invalid == "zeros":
            values[~valid] = 0.0
        return (values, valid) if return_valid else values

    @abstractmethod
    def _decode(self, batch: TokenBatch, horizon: int, action_dim: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray]:
        """The tokenizer's mathematics: sanitized ids -> (chunks `[N, H, D]` float64, validity `[N]` bool).

        Rows that are valid encodings decode exactly; for invalid rows the values are the best-effort repair used
        under `relaxed=True` (they are zeroed by `decode` otherwise, so they need not be computed when
        `relaxed=False`). Must not raise for any content of `batch`."""

    def _valid_encoding(self, horizon: int, action_dim: int) -> str:
        """What a valid sequence looks like, for `on_invalid="raise"` messages (overridden by tokenizers)."""
        return f"a sequence of ids in [0, {self.vocab_size}) as {self.name}.encode returns for [H={horizon}, D={action_dim}]"

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids; every id `encode` returns is in `[0, vocab_size)`."""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, JSON-serializable: the attributes named like the constructor's parameters, so
        `type(tok)(**tok.get_params())` rebuilds an unfitted copy."""
        return {name: getattr(self, name) for name in declared_parameters(type(self))}

    def diagnostics(self, chunks: np.ndarray, ids: list[list[int]]) -> dict[str, Any]:
        """Facts about this fitted tokenizer's state that bench adds to its result: how the state serves the
        evaluated normalized chunks `[N, H, D]` and their `ids` (`encode(chunks)`), e.g. a learned tokenizer's code
        usage, and what `fit` recorded (e.g. `train_rmse`, from which bench reports the held-out/train ratio).
        JSON-serializable values; never an error between decoded and original chunks (bench computes those the
        same way for every tokenizer, in `actok.bench.metrics`). None by default."""
        return {}

    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write learned state into `directory`; return JSON-serializable state for the config file."""
        return {}

    def _load_state(self, directory: Path, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what `_save_state` wrote (nothing, for tokenizers without learned state); raises `ActokError`
        naming the file and what is wrong when the state or a file does not fit the parameters."""

    # ------------------------------------------------------------ shared code
    def _check_vocab_size(self) -> None:
        if self.vocab_size > MAX_VOCAB:
            raise ActokError(
                f"{self.name} parameters give a vocabulary of {self.vocab_size} ids; at most {MAX_VOCAB} are supported"
            )

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

    def _decode_shape(self, horizon: int | None, action_dim: int | None) -> tuple[int, int]:
        """The chunk shape to decode to: the arguments, else the fitted shape; checked to be positive integers
        (and, through `_check_decode_shape`, one the tokenizer can decode to)."""
        self._check_fitted_state()
        h = horizon if horizon is not None else self.horizon
        d = action_dim if action_dim is not None else self.action_dim
        if h is None or d is None:
            raise ActokError(f"{self.name} tokenizer does not know the chunk shape: pass horizon= and action_dim=")
        h, d = check_value("horizon", PositiveInt, h), check_value("action_dim", PositiveInt, d)
        if h * d > MAX_CHUNK_VALUES:
            raise ActokError(
                f"horizon x action_dim = {h * d} values per chunk, more than the {MAX_CHUNK_VALUES} supported"
            )
        self._check_decode_shape(h, d)
        return h, d

    def _check_fitted_state(self) -> None:  # noqa: B027 - optional hook
        """Raise `ActokError` when the learned state decode needs is missing (overridden by tokenizers)."""

    def _check_decode_shape(self, horizon: int, action_dim: int) -> None:
        """Raise `ActokError` for a shape this tokenizer cannot decode to: any shape by default, only the fitted
        one for tokenizers with `decodes_fitted_shape_only` (a learned basis or network is tied to it)."""
        if self.decodes_fitted_shape_only and (horizon, action_dim) != (self.horizon, self.action_dim):
            raise ActokError(
                f"{self.name} decodes chunks of shape [H={self.horizon}, D={self.action_dim}] only, "
                f"got [H={horizon}, D={action_dim}]"
            )

    @staticmethod
    def _check_policy(on_invalid: str) -> None:
        if not isinstance(on_invalid, str) or on_invalid not in ON_INVALID:
            raise ActokError(f"unknown on_invalid policy {on_invalid!r}; valid: {', '.join(ON_INVALID)}")

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the tokenizer to `directory` (created if needed) and return its path. An existing non-empty
        folder is replaced only with `overwrite=True`, and only when it is a tokenizer folder actok wrote (nothing
        else in it): a user's files are never replaced."""
        self._check_fitted()
        path = Path(directory)
        check_replaceable_folder(path, overwrite, flag="overwrite=True")
        if path.is_dir():
            clear_tokenizer_folder(path)
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
        """Read a folder written by `save`; raises `ActokError` naming the file and what is wrong when the folder
        is not one (missing or corrupted files, a config naming another tokenizer, wrong-typed fields)."""
        path = Path(directory)
        config = read_config(path)
        if config["tokenizer"] != cls.name:
            raise ActokError(
                f"{path / CONFIG_FILE} holds a {config['tokenizer']!r} tokenizer, not {cls.name!r}: "
                f"load it with actok.load_tokenizer"
            )
        try:
            tok = cls(**config["params"])
        except ActokError as exc:
            raise ActokError(f"{path / CONFIG_FILE}: {exc}") from None
        tok.horizon, tok.action_dim = config["horizon"], config["action_dim"]
        try:
            tok._load_state(path, config["state"])
        except ActokError:
            raise
        except Exception as exc:  # a file a library cannot read (the BPE library raises plain Exception)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ActokError(f"{path} is not a readable {cls.name} tokenizer folder: {reason}") from None
        if tok.vocab_size != config["vocab_size"]:
            raise ActokError(
                f"{path / CONFIG_FILE} records vocab_size {config['vocab_size']} but its parameters and state give "
                f"{tok.vocab_size}"
            )
        return tok

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
