"""actok: robot action tokenization — train, benchmark and ship action tokenizers on LeRobot datasets."""

__version__ = "0.1.0"

from actok.codec import ActionCodec
from actok.data import ChunkConfig, LeRobotDatasetReader, NormalizationMode, Normalizer, build_chunks
from actok.errors import ActokError, ActokWarning
from actok.tokenizers import (
    ActionTokenizer,
    available_tokenizers,
    create_tokenizer,
    get_tokenizer_class,
    load_tokenizer,
)
from actok.tokenizers.binning import BinningTokenizer
from actok.tokenizers.fast import FASTTokenizer
from actok.tokenizers.quantile_binning import QuantileBinningTokenizer
from actok.vocab import LLMVocabMapping

# The learned tokenizers import torch (the `learned` extra): resolved on first use, not at `import actok`.
_LAZY = {"VQVAETokenizer": "vqvae", "RVQTokenizer": "rvq", "FSQTokenizer": "fsq"}


def __getattr__(name: str):
    if name in _LAZY:
        return get_tokenizer_class(_LAZY[name])
    raise AttributeError(f"module 'actok' has no attribute {name!r}")


__all__ = [
    "ActionCodec",
    "ActionTokenizer",
    "ActokError",
    "ActokWarning",
    "BinningTokenizer",
    "ChunkConfig",
    "FASTTokenizer",
    "FSQTokenizer",
    "LLMVocabMapping",
    "LeRobotDatasetReader",
    "NormalizationMode",
    "Normalizer",
    "QuantileBinningTokenizer",
    "RVQTokenizer",
    "VQVAETokenizer",
    "__version__",
    "available_tokenizers",
    "build_chunks",
    "create_tokenizer",
    "get_tokenizer_class",
    "load_tokenizer",
]
