"""Dataset on disk -> episodes -> chunks -> normalized chunks."""

from actok.data.chunks import episode_chunks, parse_delta_dims, parse_encoded_dims
from actok.data.lerobot import Episode, LeRobotDatasetReader, resolve_dataset_root
from actok.data.normalize import NormalizationMode, Normalizer
from actok.data.pipeline import ChunkConfig, ChunkSet, build_chunks

__all__ = [
    "ChunkConfig",
    "ChunkSet",
    "Episode",
    "LeRobotDatasetReader",
    "NormalizationMode",
    "Normalizer",
    "build_chunks",
    "episode_chunks",
    "parse_delta_dims",
    "parse_encoded_dims",
    "resolve_dataset_root",
]
