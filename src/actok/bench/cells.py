"""What one benchmark cell is: a dataset, a tokenizer and the settings, as plain picklable descriptions.

A `Cell` names everything by value (a dataset folder, a registered tokenizer name and its parameters or a saved
tokenizer folder, a `ChunkConfig`), so an executor can run it anywhere the files are: in this process, or in a
worker of a Ray cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from actok.codec import PIPELINE_FILE, read_pipeline
from actok.data.lerobot import LeRobotDatasetReader, resolve_dataset_root
from actok.data.pipeline import ChunkConfig
from actok.errors import ActokError
from actok.tokenizers import load_tokenizer

BUNDLED_REPO_ID = "pusht"


@dataclass(frozen=True)
class DatasetSpec:
    """A LeRobot dataset folder and the id results are filed under."""

    root: str
    repo_id: str

    @classmethod
    def resolve(cls, repo_id: str | None = None, root: str | Path | None = None) -> DatasetSpec:
        """`root` if given, else `repo_id` looked up in the local cache (or downloaded; see
        `resolve_dataset_root`); the id defaults to the folder's name."""
        path = resolve_dataset_root(repo_id, root)
        return cls(str(path), repo_id or path.name)

    @classmethod
    def bundled(cls) -> DatasetSpec:
        """The Push-T dataset shipped with actok."""
        return cls(str(resources.files("actok") / "example_data" / "pusht"), BUNDLED_REPO_ID)

    @classmethod
    def from_flags(cls, roots: list[str], repo_ids: list[str], bundled: bool = False) -> list[DatasetSpec]:
        """The datasets of repeated `--root` and/or `--repo-id` flags, paired in order when both are given; neither:
        the bundled dataset when `bundled`, else an error."""
        if not roots and not repo_ids:
            if not bundled:
                raise ActokError("no dataset given: pass --repo-id ID and/or --root DIR")
            return [cls.bundled()]
        if roots and repo_ids and len(roots) != len(repo_ids):
            raise ActokError(
                f"{len(roots)} --root but {len(repo_ids)} --repo-id: give one --repo-id per --root (they pair in "
                "order), or only one kind"
            )
        pairs = range(max(len(roots), len(repo_ids)))
        return [cls.resolve(repo_ids[i] if repo_ids else None, roots[i] if roots else None) for i in pairs]

    def reader(self) -> LeRobotDatasetReader:
        return LeRobotDatasetReader(Path(self.root), self.repo_id)


@dataclass(frozen=True)
class TokenizerSpec:
    """A registered tokenizer `name` with constructor `params`, fitted on each dataset's training chunks, or (with
    `path`) a saved tokenizer folder scored as it is (`params` then records its parameters). `label` names the
    cell (default: the name)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    path: str | None = None

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @classmethod
    def saved(cls, path: str | Path) -> TokenizerSpec:
        """A saved tokenizer folder (loaded once here, so a folder that cannot be loaded fails before any work)."""
        tokenizer = load_tokenizer(path)
        return cls(tokenizer.name, tokenizer.get_params(), path=str(path))

    @property
    def device(self) -> str | None:
        """The device a learned tokenizer's parameters ask for (None for tokenizers without one)."""
        device = self.params.get("device")
        return device if isinstance(device, str) else None


def saved_pipeline(folder: str | Path) -> dict[str, Any] | None:
    """The pipeline a saved tokenizer folder records (checked), or None when it has no `pipeline.json` (e.g. a
    FAST folder from elsewhere)."""
    path = Path(folder) / PIPELINE_FILE
    return read_pipeline(path) if path.is_file() else None


def chunk_config(
    options: Mapping[str, Any], default_encoded_dims: str, saved: Mapping[str, Any] | None = None
) -> ChunkConfig:
    """A `ChunkConfig` from `options` named like its fields (e.g. `vars()` of the parsed flags; None: not given).
    Options not given come from a saved tokenizer's pipeline (`saved`: horizon, encoded and delta dims,
    normalization mode), else the defaults; encoded dims default to `default_encoded_dims`, cut to the action
    dim (`clip_encoded_dims`)."""
    saved = saved or {}
    given = {f.name: options[f.name] for f in fields(ChunkConfig) if options.get(f.name) is not None}
    from_saved = {
        "action_horizon": saved.get("action_horizon"),
        "encoded_dims": saved.get("encoded_dims"),
        "delta_dims": saved.get("delta_dims"),
        "normalization_mode": (saved.get("normalization") or {}).get("mode"),
    }
    merged = {**{k: v for k, v in from_saved.items() if v is not None}, **given}
    explicit_dims = "encoded_dims" in merged
    merged.setdefault("encoded_dims", default_encoded_dims)
    return ChunkConfig(**{**merged, "clip_encoded_dims": not explicit_dims})


@dataclass(frozen=True)
class BenchSettings:
    """How every cell is scored: the chunks (`chunk_config`; its `seed` also seeds the scored sample and the
    token noise), at most `max_chunks` evaluated chunks (None: all), and `force` to score a saved tokenizer on a
    pipeline other than its own."""

    chunk_config: ChunkConfig = field(default_factory=lambda: ChunkConfig(sample_fraction=0.2))
    max_chunks: int | None = 500
    force: bool = False

    def validate(self) -> None:
        self.chunk_config.validate()
        n = self.max_chunks
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ActokError(f"max_chunks_for_reconstruction must be >= 1, got {n}")


@dataclass(frozen=True)
class Cell:
    """One tokenizer on one dataset under the run's settings."""

    dataset: DatasetSpec
    tokenizer: TokenizerSpec
    settings: BenchSettings

    def resources(self) -> dict[str, float]:
        """What the cell asks a Ray cluster for: one CPU, and a GPU when its tokenizer's device names CUDA
        (`cuda`, `cuda:N`); `auto` and `cpu` ask for none (pass `--device cuda` for GPU cells on a cluster)."""
        device = self.tokenizer.device or ""
        return {"num_cpus": 1, "num_gpus": 1} if device.startswith("cuda") else {"num_cpus": 1}
