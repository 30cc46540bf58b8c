"""The protocol every action tokenizer implements.

A tokenizer is constructed with its parameters, learns from normalized chunks `[N, H, D]` in `fit`, turns
chunks into variable-length id lists in `encode`, and back in `decode`. `save(dir)` writes a folder that
`actok.load_tokenizer(dir)` reads back. Tokenizers know nothing about datasets or benchmarks.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
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

    @abstractmethod
    def decode(
        self,
        ids: Sequence[Sequence[int]],
        horizon: int | None = None,
        action_dim: int | None = None,
        return_valid: bool = False,
        on_invalid: str = "zeros",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Token ids -> normalized chunks `[N, H, D]` float64 (and a validity mask `[N]` with
        `return_valid=True`). Never raises on malformed ids unless `on_invalid="raise"`: invalid sequences
        decode to zeros (`"zeros"`) or to a best-effort repair (`"relaxed"`)."""

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
        h = horizon if horizon is not None else self.horizon
        d = action_dim if action_dim is not None else self.action_dim
        if h is None or d is None:
            raise ActokError(f"{self.name} tokenizer does not know the chunk shape: pass horizon= and action_dim=")
        return int(h), int(d)

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
