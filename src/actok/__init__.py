"""actok: robot action tokenization — train, benchmark and ship action tokenizers on LeRobot datasets."""

__version__ = "0.1.0"

from actok.codec import ActionCodec  # noqa: E402
from actok.data import ChunkConfig, LeRobotDatasetReader, NormalizationMode, Normalizer, build_chunks  # noqa: E402
from actok.errors import ActokError, ActokWarning  # noqa: E402
from actok.tokenizers import (  # noqa: E402
    ActionTokenizer,
    available_tokenizers,
    create_tokenizer,
    get_tokenizer_class,
    load_tokenizer,
)
from actok.tokenizers.binning import BinningTokenizer  # noqa: E402

__all__ = [
    "ActionCodec",
    "ActionTokenizer",
    "ActokError",
    "ActokWarning",
    "BinningTokenizer",
    "ChunkConfig",
    "LeRobotDatasetReader",
    "NormalizationMode",
    "Normalizer",
    "__version__",
    "available_tokenizers",
    "build_chunks",
    "create_tokenizer",
    "get_tokenizer_class",
    "load_tokenizer",
]
