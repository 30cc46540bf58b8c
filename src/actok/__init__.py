"""actok: robot action tokenization — train, benchmark and ship action tokenizers on LeRobot datasets.

The public names below are imported on first use (PEP 562), so `import actok` and the `actok` command start
fast, and the learned tokenizers (torch, the `learned` extra) load only when asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "ActionCodec": "actok.codec",
    "ChunkConfig": "actok.data",
    "LeRobotDatasetReader": "actok.data",
    "NormalizationMode": "actok.data",
    "Normalizer": "actok.data",
    "build_chunks": "actok.data",
    "ActokError": "actok.errors",
    "ActokWarning": "actok.errors",
    "ActionTokenizer": "actok.tokenizers",
    "available_tokenizers": "actok.tokenizers",
    "create_tokenizer": "actok.tokenizers",
    "get_tokenizer_class": "actok.tokenizers",
    "load_tokenizer": "actok.tokenizers",
    "BinningTokenizer": "actok.tokenizers.binning",
    "FASTTokenizer": "actok.tokenizers.fast",
    "QuantileBinningTokenizer": "actok.tokenizers.quantile_binning",
    "LLMVocabMapping": "actok.vocab",
}
# The learned tokenizers import torch (the `learned` extra): resolved through the registry on first use.
_LAZY = {"VQVAETokenizer": "vqvae", "RVQTokenizer": "rvq", "FSQTokenizer": "fsq"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _LAZY:
        from actok.tokenizers import get_tokenizer_class

        value = get_tokenizer_class(_LAZY[name])
    else:
        raise AttributeError(f"module 'actok' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted([*_EXPORTS, *_LAZY, "__version__"])
