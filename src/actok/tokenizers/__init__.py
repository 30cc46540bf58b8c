"""Tokenizer registry: name -> class. A new tokenizer is one module plus one line in `_REGISTRY`."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from actok.errors import ActokError
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, InvalidTokensError, read_config
from actok.tokenizers.params import declared_parameters

# Lazy "module:Class" references keep optional dependencies (torch) out of the import path.
_REGISTRY: dict[str, str] = {
    "binning": "actok.tokenizers.binning:BinningTokenizer",
    "fast": "actok.tokenizers.fast:FASTTokenizer",
    "quantile-binning": "actok.tokenizers.quantile_binning:QuantileBinningTokenizer",
    "bspline": "actok.tokenizers.bspline:BSplineTokenizer",
    "wavelet": "actok.tokenizers.wavelet:WaveletTokenizer",
    "klt": "actok.tokenizers.klt:KLTTokenizer",
    "vqvae": "actok.tokenizers.vqvae:VQVAETokenizer",
    "rvq": "actok.tokenizers.rvq:RVQTokenizer",
    "fsq": "actok.tokenizers.fsq:FSQTokenizer",
}
# Tokenizers that need an optional extra (their modules import torch).
_EXTRA: dict[str, str] = {"vqvae": "learned", "rvq": "learned", "fsq": "learned"}


def available_tokenizers() -> list[str]:
    """Names accepted by `--tokenizer`, in registry order."""
    return list(_REGISTRY)


def get_tokenizer_class(name: str) -> type[ActionTokenizer]:
    if name not in _REGISTRY:
        raise ActokError(f"unknown tokenizer {name!r}; valid tokenizers: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        if name not in _EXTRA:
            raise
        raise ActokError(
            f"tokenizer {name!r} needs the {_EXTRA[name]} extra ({exc.name} is missing): "
            f"pip install 'actok[{_EXTRA[name]}]' -c constraints.txt"
        ) from None


def constructor_parameters(name: str) -> list[str]:
    """Constructor parameter names of a registered tokenizer, including those a subclass forwards with
    `**kwargs` to its base class (the learned tokenizers' training arguments)."""
    return list(declared_parameters(get_tokenizer_class(name)))


def tokenizer_extra(name: str) -> str | None:
    """The optional extra a registered tokenizer needs (None for the core ones)."""
    return _EXTRA.get(name)


def create_tokenizer(name: str, **params: Any) -> ActionTokenizer:
    """Instantiate a registered tokenizer with constructor parameters; a parameter it does not have, or a value
    outside what the constructor's annotation allows, raises `ActokError`."""
    return get_tokenizer_class(name)(**params)


def load_tokenizer(path: str | Path) -> ActionTokenizer:
    """Load any tokenizer folder written by `save` (or `actok train`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ActokError(f"load_tokenizer takes a folder path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_dir():
        raise ActokError(f"tokenizer folder {path} does not exist")
    if (path / CONFIG_FILE).exists():
        name = read_config(path)["tokenizer"]
        if name not in _REGISTRY:
            raise ActokError(
                f"{path / CONFIG_FILE} names the unknown tokenizer {name!r}; valid tokenizers: {', '.join(_REGISTRY)}"
            )
        return get_tokenizer_class(name).load(path)
    if (path / "processor_config.json").is_file():  # a FAST folder actok did not write (e.g. from the Hub)
        from actok.tokenizers.fast import load_fast_folder

        return load_fast_folder(path)
    raise ActokError(
        f"{path} is not a tokenizer folder: expected {CONFIG_FILE} (actok) or processor_config.json (FAST)"
    )


__all__ = [
    "ActionTokenizer",
    "InvalidTokensError",
    "available_tokenizers",
    "constructor_parameters",
    "create_tokenizer",
    "get_tokenizer_class",
    "load_tokenizer",
]
