"""`train_tokenizer`: fit a tokenizer on a dataset's training episodes and save the folder `actok train` writes.

The folder holds the tokenizer's own files, `pipeline.json` (the `PipelineSpec`), `fit_profile.json` (what
`actok check` compares serving data with) and `metadata.json` (training config, LeRobot's compression stats on
a 1000-chunk sample drawn with RandomState(42), dataset info, the normalization used). It is written whole or not
at all, under the output's lock, and replaces an existing folder only with `overwrite` (see `actok.outputs`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actok import __version__
from actok.bench.metrics import compression_sample, compression_stats
from actok.check import fit_baseline, profile_fit, save_profile
from actok.codec import ActionCodec
from actok.data.chunks import dims_to_spec
from actok.data.lerobot import LeRobotDatasetReader
from actok.data.normalize import NormalizationMode
from actok.data.pipeline import ChunkConfig, ChunkSet, build_chunks
from actok.executor import check_engine
from actok.outputs import check_output_location, check_replaceable_folder, output_lock, write_folder_atomically
from actok.tokenizers import create_tokenizer
from actok.tokenizers.base import ActionTokenizer

METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class TrainResult:
    """What `train_tokenizer` fitted and wrote."""

    output: Path
    codec: ActionCodec  # the fitted tokenizer and its pipeline
    chunks: ChunkSet
    compression_stats: dict  # on the training chunks ({} when there are none)
    holdout_compression_stats: dict  # on the held-out episodes' chunks ({} without held-out episodes)
    fit_profile: dict
    metadata: dict

    @property
    def max_token_len(self) -> int:
        """The max token length to configure, from the fit-time profile (`actok check` reports the same rule)."""
        return fit_baseline(self.fit_profile)["max_token_len"]


def fit_tokenizer(tokenizer: ActionTokenizer, chunks: ChunkSet) -> ActionTokenizer:
    """`tokenizer` fitted on the training chunks `[N, H, D]`, early-stopping on the held-out episodes' chunks when
    there are some (tokenizers that do not train iteratively ignore them: `uses_validation`)."""
    return tokenizer.fit(chunks.train, validation=chunks.holdout if len(chunks.holdout) else None)


def lerobot_compression_stats(tokenizer: ActionTokenizer, chunks: np.ndarray) -> dict:
    """LeRobot's compression stats of a fitted tokenizer on chunks `[N, H, D]` (a 1000-chunk RandomState(42)
    sample; `{}` for no chunk)."""
    if len(chunks) == 0:
        return {}
    ids = tokenizer.encode(chunks[compression_sample(len(chunks))])
    return compression_stats(ids, chunks.shape[1], chunks.shape[2])


def train_tokenizer(
    dataset: LeRobotDatasetReader | str | Path,
    tokenizer: ActionTokenizer | str,
    config: ChunkConfig,
    output_dir: str | Path,
    overwrite: bool = False,
    on_chunks: Callable[[ChunkSet], None] | None = None,
    *,
    engine: str = "local",
    ray_address: str | None = None,
) -> TrainResult:
    """Cut the episodes of `dataset` (a reader or a LeRobot dataset folder) into chunks (`config`), fit the
    unfitted `tokenizer` (an instance or a registered name, default parameters) on the training episodes
    (early-stopping on the held-out ones when it can), profile it and write its folder to `output_dir`.

    `on_chunks(chunks)` is called once the chunks exist, before fitting (the CLI prints its summary there);
    `engine`/`ray_address` choose where the dataset is read and chunked (`build_chunks`).
    Raises `ActokError` for bad settings, data or output location before anything is written.
    E.g. `train_tokenizer("src/actok/example_data/pusht", "fast", ChunkConfig(), "fast_pusht").codec`."""
    config.validate()
    check_engine(engine, ray_address)
    reader = dataset if isinstance(dataset, LeRobotDatasetReader) else LeRobotDatasetReader(Path(dataset))
    tokenizer = create_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    output = Path(output_dir)
    check_output_location(output, [reader.root])
    with output_lock(output):
        check_replaceable_folder(output, overwrite)
        chunks = build_chunks(reader, config, engine=engine, ray_address=ray_address)
        if on_chunks is not None:
            on_chunks(chunks)
        tokenizer = fit_tokenizer(tokenizer, chunks)
        codec = ActionCodec.from_chunks(tokenizer, chunks)
        stats = lerobot_compression_stats(tokenizer, chunks.train)
        holdout_stats = lerobot_compression_stats(tokenizer, chunks.holdout)
        fit_profile = profile_fit(codec, chunks)
        metadata = _metadata(reader, tokenizer, chunks, stats, holdout_stats)

        def write(folder: Path) -> None:
            codec.save(folder)
            save_profile(folder, fit_profile)
            (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")

        write_folder_atomically(output, write, overwrite)
    return TrainResult(output, codec, chunks, stats, holdout_stats, fit_profile, metadata)


def _metadata(
    reader: LeRobotDatasetReader, tokenizer: ActionTokenizer, chunks: ChunkSet, stats: dict, holdout_stats: dict
) -> dict:
    return {
        "repo_id": reader.repo_id,
        "root": str(reader.root),
        "tokenizer": tokenizer.name,
        "tokenizer_params": tokenizer.get_params(),
        "vocab_size": tokenizer.vocab_size,
        **chunks.config_dict(),
        "total_encoded_dims": len(chunks.encoded_dims),
        "delta_dim_list": chunks.delta_dims or None,
        "num_training_chunks": len(chunks.train),
        "num_holdout_chunks": len(chunks.holdout),
        "compression_stats": stats,
        "holdout_compression_stats": holdout_stats,
        "dataset_info": {
            "codebase_version": reader.codebase_version,
            "fps": reader.fps,
            "action_dim": chunks.action_dim,
            "num_frames": chunks.num_frames,
            "train_episodes": chunks.train_episodes,
            "holdout_episodes": chunks.holdout_episodes,
            "skipped_episodes": chunks.skipped_episodes,
        },
        "normalization": chunks.normalizer.to_dict(),
        "normalization_stats_source": chunks.stats_source,
        "actok_version": __version__,
    }


# ---------------------------------------------------------------- what `actok train` prints
_MODE_TEXT = {
    NormalizationMode.IDENTITY: "No normalization (IDENTITY)",
    NormalizationMode.MEAN_STD: "Applied mean/std normalization (x - mean) / std",
    NormalizationMode.MIN_MAX: "Applied min/max normalization [min, max] → [-1, 1]",
    NormalizationMode.QUANTILES: "Applied quantile normalization [q01, q99] → [-1, 1]",
    NormalizationMode.QUANTILE10: "Applied quantile normalization [q10, q90] → [-1, 1]",
}


def _overall(x: np.ndarray) -> str:
    return f"Min: {x.min():.4f}, Max: {x.max():.4f}, Mean: {x.mean():.4f}, Std: {x.std():.4f}"


def describe_chunks(reader: LeRobotDatasetReader, chunks: ChunkSet) -> str:
    """The dataset, chunking and normalization summary `actok train` prints (in the words of LeRobot's script)."""
    n_eps = len(chunks.train_episodes) + len(chunks.holdout_episodes) + len(chunks.skipped_episodes)
    dims = f"{len(chunks.encoded_dims)} dimensions: {dims_to_spec(chunks.encoded_dims)}"
    lines = [
        f"Loading dataset: {reader.repo_id} ({reader.root}, LeRobot {reader.codebase_version})",
        f"Dataset loaded: {n_eps} episodes, {chunks.num_frames} frames",
        f"Encoding {dims} (action dim {chunks.action_dim})",
        f"Delta dimensions: {chunks.delta_dims}" if chunks.delta_dims else "No delta dimensions",
        f"Action horizon: {chunks.horizon}",
        f"Processing {n_eps} episodes...",
    ]
    if chunks.skipped_episodes:
        skipped = chunks.skipped_episodes
        lines.append(f"Skipped {len(skipped)} episodes shorter than the horizon: {skipped}")
    lines += [
        f"Collected {len(chunks.train)} training chunks from {len(chunks.train_episodes)} episodes; "
        f"{len(chunks.holdout)} held-out chunks from {len(chunks.holdout_episodes)} episodes {chunks.holdout_episodes}",
        f"Extracted {len(chunks.encoded_dims)} encoded dimensions",
        "\nBefore normalization - overall stats:",
        f"  {_overall(chunks.train_raw)}",
        f"\n{_MODE_TEXT[chunks.normalizer.mode]}",
        *(f"  {name}: {source}" for name, source in chunks.stats_source.items()),
        *(f"  note: {note}" for note in chunks.notes),
        "\nAfter normalization - overall stats:",
        f"  {_overall(chunks.train)}",
    ]
    return "\n".join(lines)


def describe_training(reader: LeRobotDatasetReader, tokenizer: ActionTokenizer, chunks: ChunkSet) -> str:
    """What `actok train` prints before fitting: `describe_chunks`, the chunk shape and the tokenizer's parameters."""
    lines = [
        describe_chunks(reader, chunks),
        f"\nTraining {tokenizer.name} tokenizer on {len(chunks.train)} action chunks...",
        f"Action chunk shape: {chunks.train.shape}",
        *(f"{key}: {value}" for key, value in tokenizer.get_params().items()),
    ]
    if tokenizer.uses_validation and len(chunks.holdout):
        lines.append(f"Early stopping on the {len(chunks.holdout)} chunks of the held-out episodes")
    return "\n".join(lines)


def describe_compression(result: TrainResult) -> str:
    """The compression statistics `actok train` prints after fitting."""
    stats, held = result.compression_stats, result.holdout_compression_stats
    lines = [
        "\nCompression Statistics:",
        f"  Average compression ratio: {stats['compression_ratio']:.2f}x",
        f"  Mean token length: {stats['mean_token_length']:.1f}",
        f"  P99 token length: {stats['p99_token_length']:.0f}",
        f"  Min token length: {stats['min_token_length']:.0f}",
        f"  Max token length: {stats['max_token_length']:.0f}",
    ]
    if held:
        lines.append(
            f"  Held-out episodes: {held['mean_token_length']:.1f} mean tokens, {held['compression_ratio']:.2f}x"
        )
    lines.append(f"  Recommended max token length: {result.max_token_len} (fit_profile.json, for actok check)")
    return "\n".join(lines)
