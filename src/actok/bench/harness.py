"""`actok.bench.run`: datasets x tokenizers -> cells -> the executor scores each -> `BenchResult`s and their files.

`plan` checks everything that can be checked before any work and lays out the cells dataset by dataset;
`run_cell` scores one cell (a plain function of a picklable `Cell`, so a Ray worker can run it);
`execute` maps it over the cells with `actok.executor.run_grid` (`engine="local"` or `"ray"`), hands the outcomes
on in plan order, skips a cell whose tokenizer cannot be fitted (unless it is the only one) and writes one result
file per cell. `actok bench` is `plan` + `execute` + printing (`BenchConsole`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from actok import __version__
from actok.bench.bounds import bound_variances
from actok.bench.cells import BenchSettings, Cell, DatasetSpec, TokenizerSpec
from actok.bench.result import BenchResult
from actok.bench.runner import benchmark_tokenizer, results_filename
from actok.codec import PIPELINE_FILE, read_spec
from actok.data.chunks import dims_to_spec
from actok.data.pipeline import ChunkConfig, ChunkSet, build_chunks
from actok.errors import ActokError
from actok.executor import run_grid
from actok.tokenizers import create_tokenizer, load_tokenizer


@dataclass(frozen=True)
class DatasetSummary:
    """What a cell's chunks were: for the run's log, one per dataset."""

    repo_id: str
    horizon: int
    encoded_slices: str  # e.g. "0:6,7:14"
    normalization_mode: str
    evaluated_split: str  # "held-out" or "training" (a dataset too small to hold episodes out)
    evaluated_episodes: int
    notes: tuple[str, ...]

    @classmethod
    def of(cls, dataset: DatasetSpec, chunks: ChunkSet) -> DatasetSummary:
        held_out = len(chunks.holdout) > 0
        return cls(
            dataset.repo_id,
            chunks.horizon,
            dims_to_spec(chunks.encoded_dims),
            chunks.normalizer.mode.value,
            "held-out" if held_out else "training",
            len(chunks.holdout_episodes) if held_out else len(chunks.train_episodes),
            tuple(chunks.notes),
        )


@dataclass(frozen=True)
class CellOutcome:
    """A cell's `result`, or the `error` that kept its tokenizer from being fitted (the cell is skipped)."""

    cell: Cell
    dataset: DatasetSummary
    result: BenchResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class BenchRun:
    """Every cell's outcome, in plan order."""

    outcomes: list[CellOutcome]

    @property
    def results(self) -> list[BenchResult]:
        return [o.result for o in self.outcomes if o.result is not None]

    @property
    def skipped(self) -> list[str]:
        """`"{repo_id} {label}: {why}"` per skipped cell."""
        return [f"{o.dataset.repo_id} {o.cell.tokenizer.label}: {o.error}" for o in self.outcomes if o.error]


def plan(
    datasets: Sequence[DatasetSpec | str | Path],
    tokenizers: Sequence[TokenizerSpec | str],
    settings: BenchSettings | None = None,
) -> list[Cell]:
    """The cells of datasets x tokenizers, dataset by dataset. Dataset folders are given as `DatasetSpec`s or
    paths, tokenizers as `TokenizerSpec`s or registered names. Raises `ActokError` before any work on a repeated
    cell label, bad tokenizer parameters, bad settings or a dataset that cannot be read."""
    settings = settings or BenchSettings()
    specs = [t if isinstance(t, TokenizerSpec) else TokenizerSpec(t) for t in tokenizers]
    if not specs:
        raise ActokError("no tokenizer to benchmark: give at least one name or saved tokenizer folder")
    labels = [t.label for t in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ActokError(f"the same cell is requested twice ({', '.join(repeated)}); list each tokenizer once")
    for t in specs:
        if t.path is None:
            create_tokenizer(t.name, **t.params)  # fail on bad parameters before any work
    settings.validate()
    folders = [d if isinstance(d, DatasetSpec) else DatasetSpec.resolve(root=d) for d in datasets]
    if not folders:
        raise ActokError("no dataset to benchmark: give at least one dataset folder")
    for d in folders:
        d.reader()  # a folder that is not a readable dataset fails here, before any output is written
    return [Cell(d, t, settings) for d in folders for t in specs]


def run_cell(cell: Cell) -> CellOutcome:
    """Score one cell: its dataset's chunks (built once per process for consecutive cells of a dataset), the
    tokenizer fitted on the training chunks (or loaded), the metrics of `benchmark_tokenizer`."""
    settings, spec = cell.settings, cell.tokenizer
    chunks, variances, summary = _prepared(cell.dataset, astuple(settings.chunk_config), spec.path, settings.force)
    if spec.path is not None:
        tokenizer = load_tokenizer(spec.path)
    else:
        try:
            tokenizer = create_tokenizer(spec.name, **spec.params).fit(chunks.train)
        except ActokError as exc:  # e.g. a scale too fine for its vocabulary: this cell is skipped
            return CellOutcome(cell, summary, error=str(exc))
    seed = settings.chunk_config.seed
    metrics = benchmark_tokenizer(tokenizer, chunks, settings.max_chunks, seed=seed, bound_variances=variances)
    config = {
        **chunks.config_dict(),
        "repo_id": cell.dataset.repo_id,
        "root": cell.dataset.root,
        "action_tokenizer_path": spec.path,
        "tokenizer": tokenizer.name,
        "tokenizer_params": tokenizer.get_params(),
        "max_chunks_for_reconstruction": settings.max_chunks,
        "output_dir": None,  # filled in where the result is written
        "normalization": chunks.normalizer.to_dict(),
        "normalization_stats_source": chunks.stats_source,
        "holdout_episodes": chunks.holdout_episodes,
        "actok_version": __version__,
    }
    return CellOutcome(cell, summary, BenchResult(config, metrics))


def execute(
    cells: Sequence[Cell],
    output_dir: str | Path | None = None,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    on_outcome: Callable[[CellOutcome], None] | None = None,
) -> BenchRun:
    """Score `cells` with `run_grid` (`engine` "local": one after the other in this process; "ray": as Ray tasks,
    on a new local instance or the cluster at `ray_address`; a cell whose tokenizer's device names CUDA asks for
    a GPU). As each cell finishes, its result is written to `output_dir` (when given) as
    `{timestamp}_{repo_id}[_{label}]_action_tokenizer_results.json` (the label when several tokenizers are
    benchmarked; never replacing a file); `on_outcome` sees the outcomes in the order of `cells`. A cell whose
    tokenizer cannot be fitted is skipped, unless it is the only cell: then its error is raised, as it is when every
    cell was skipped; any other error a cell raises stops the run."""
    named = len({c.tokenizer.label for c in cells}) > 1
    done: dict[int, CellOutcome] = {}
    outcomes: list[CellOutcome] = []
    try:
        for i, outcome in run_grid(run_cell, cells, engine=engine, ray_address=ray_address, resources=Cell.resources):
            if isinstance(outcome, Exception):
                raise outcome
            if outcome.error is not None and len(cells) == 1:
                raise ActokError(outcome.error)
            done[i] = _written(outcome, output_dir, named) if output_dir is not None else outcome
            while len(outcomes) in done:  # hand on in plan order (Ray finishes cells in any order)
                outcomes.append(done.pop(len(outcomes)))
                if on_outcome is not None:
                    on_outcome(outcomes[-1])
    finally:
        _prepared.cache_clear()  # the last dataset's chunks are not kept after the run
    run = BenchRun(outcomes)
    if outcomes and not run.results:
        raise ActokError(f"every cell was skipped: {'; '.join(run.skipped)}")
    return run


def _written(outcome: CellOutcome, output_dir: str | Path, named: bool) -> CellOutcome:
    """The outcome with its result written into `output_dir` (nothing to write for a skipped cell)."""
    if outcome.result is None:
        return outcome
    result = dataclasses.replace(outcome.result, config={**outcome.result.config, "output_dir": str(output_dir)})
    label = outcome.cell.tokenizer.label if named else None
    result = result.write(output_dir, results_filename(outcome.cell.dataset.repo_id, label))
    return dataclasses.replace(outcome, result=result)


def run(
    datasets: Sequence[DatasetSpec | str | Path],
    tokenizers: Sequence[TokenizerSpec | str],
    settings: BenchSettings | None = None,
    output_dir: str | Path | None = None,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    on_outcome: Callable[[CellOutcome], None] | None = None,
) -> BenchRun:
    """Benchmark every tokenizer on every dataset: `execute(plan(datasets, tokenizers, settings), ...)`.

    E.g. `run(["src/actok/example_data/pusht"], ["binning", TokenizerSpec("fast", {"scale": 5})],
    output_dir="results")` writes the files `actok report results` reads and returns the `BenchResult`s."""
    cells = plan(datasets, tokenizers, settings)
    return execute(cells, output_dir, engine=engine, ray_address=ray_address, on_outcome=on_outcome)


@lru_cache(maxsize=1)  # cells come dataset by dataset: the chunks of the current one are built once
def _prepared(
    dataset: DatasetSpec, config_fields: tuple, saved_path: str | None, force: bool
) -> tuple[ChunkSet, dict[str, np.ndarray], DatasetSummary]:
    """A dataset's chunks (in a saved tokenizer's own normalization when one is scored), the variances of its
    training chunks' DCT and KLT coefficients (the report's bounds, `bound_variances`) and its summary."""
    chunks = build_chunks(dataset.reader(), ChunkConfig(*config_fields))
    if saved_path is not None:
        chunks = _in_saved_space(chunks, saved_path, force)
    return chunks, bound_variances(chunks.train), DatasetSummary.of(dataset, chunks)


def _in_saved_space(chunks: ChunkSet, folder: str, force: bool) -> ChunkSet:
    """`chunks` checked against the pipeline of the saved tokenizer in `folder` (refused when it differs, unless
    `force`) and normalized with its recorded statistics: scored in the space the tokenizer was trained in."""
    path = Path(folder) / PIPELINE_FILE
    if not path.is_file():
        return chunks
    saved = read_spec(path)
    problems = saved.mismatches(chunks.spec)
    if problems and not force:
        raise ActokError(
            f"the saved tokenizer's pipeline differs from the requested one ({'; '.join(problems)}); "
            "pass --force to benchmark anyway"
        )
    normalizer = saved.normalizer
    if any(len(v) != len(chunks.encoded_dims) for v in normalizer.stats.values()):
        return chunks  # a forced run on other dims: the saved stats do not fit, the computed ones are kept
    return dataclasses.replace(
        chunks,
        config=dataclasses.replace(chunks.config, normalization_mode=normalizer.mode.value),  # what the result says
        spec=dataclasses.replace(
            chunks.spec, normalizer=normalizer, stats_source=dict.fromkeys(normalizer.stats, str(path))
        ),
        train=normalizer.normalize(chunks.train_raw),
        holdout=normalizer.normalize(chunks.holdout_raw),
    )
