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

__all__ = [
    "ActionCodec",
    "ActionTokenizer",
    "ActokError",
    "ActokWarning",
    "BinningTokenizer",
    "ChunkConfig",
    "FASTTokenizer",
    "LLMVocabMapping",
    "LeRobotDatasetReader",
    "NormalizationMode",
    "Normalizer",
    "QuantileBinningTokenizer",
    "__version__",
    "available_tokenizers",
    "build_chunks",
    "create_tokenizer",
    "get_tokenizer_class",
    "load_tokenizer",
]
