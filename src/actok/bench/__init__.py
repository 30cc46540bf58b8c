"""Benchmark harness: datasets x tokenizers -> cells -> metrics -> `BenchResult` JSON files -> report.

`run(datasets, tokenizers, settings, output_dir, engine=...)` is what `actok bench` does; `benchmark_tokenizer`
scores one fitted tokenizer on a `ChunkSet`; `BenchResult.read` / `write` are the result file format
`actok report` reads; `parse_tokenizers` is the `--tokenizer` / `--sweep` grammar.
"""

from actok.bench.cells import BenchSettings, Cell, DatasetSpec, TokenizerSpec, chunk_config, saved_pipeline
from actok.bench.harness import BenchRun, CellOutcome, execute, plan, run, run_cell
from actok.bench.result import SCHEMA_VERSION, BenchResult, ResultFileError
from actok.bench.runner import benchmark_tokenizer, comparison_table, results_filename, write_result
from actok.bench.sweep import parse_tokenizers, sweep_tokenizers, tokenizer_params

__all__ = [
    "SCHEMA_VERSION",
    "BenchResult",
    "BenchRun",
    "BenchSettings",
    "Cell",
    "CellOutcome",
    "DatasetSpec",
    "ResultFileError",
    "TokenizerSpec",
    "benchmark_tokenizer",
    "chunk_config",
    "comparison_table",
    "execute",
    "parse_tokenizers",
    "plan",
    "results_filename",
    "run",
    "run_cell",
    "saved_pipeline",
    "sweep_tokenizers",
    "tokenizer_params",
    "write_result",
]
