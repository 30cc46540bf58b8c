"""Benchmark harness: tokenizer + chunks -> metrics -> JSON."""

from actok.bench.runner import benchmark_tokenizer, comparison_table, results_filename, write_result

__all__ = ["benchmark_tokenizer", "comparison_table", "results_filename", "write_result"]
