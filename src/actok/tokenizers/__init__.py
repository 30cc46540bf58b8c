"""Tokenizer registry: name -> class. A new tokenizer is one module plus one line in `_REGISTRY`."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from actok.errors import ActokError
from actok.tokenizers.base import CONFIG_FILE, ActionTokenizer, InvalidTokensError

# Lazy "module:Class" references keep optional dependencies (torch) out of the import path.
_REGISTRY: dict[str, str] = {
    "binning": "actok.tokenizers.binning:BinningTokenizer",
    "fast": "actok.tokenizers.fast:FASTTokenizer",
    "quantile-binning": "actok.tokenizers.quantile_binning:QuantileBinningTokenizer",
}


def available_tokenizers() -> list[str]:
    """Names accepted by `--tokenizer`, in registry order."""
    return list(_REGISTRY)


def get_tokenizer_class(name: str) -> type[ActionTokenizer]:
    if name not in _REGISTRY:
        raise ActokError(f"unknown tokenizer {name!r}; valid tokenizers: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_tokenizer(name: str, **params: Any) -> ActionTokenizer:
    """Instantiate a registered tokenizer with constructor parameters."""
    cls = get_tokenizer_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ActokError(f"bad parameters for tokenizer {name!r}: {exc}") from None


def load_tokenizer(path: str | Path) -> ActionTokenizer:
    """Load any tokenizer folder written by `save` (or `actok train`)."""
    path = Path(path)
    if not path.is_dir():
        raise ActokError(f"tokenizer folder {path} does not exist")
    config_path = path / CONFIG_FILE
    if config_path.is_file():
        name = json.loads(config_path.read_text()).get("tokenizer")
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
    "create_tokenizer",
    "get_tokenizer_class",
    "load_tokenizer",
]
