"""`BenchResult`: one benchmark result (the settings it ran with and its metrics), and its JSON file format.

A result file is `{"schema_version": 2, "config": {...}, "metrics": {...}}`. Version 1 files (actok before the
version key) have no `schema_version`, and learned tokenizers' results repeat some error metrics under other
names (`heldout_rmse`, `p95_abs_error`, `max_abs_error`); both versions are read. `from_json` checks every field
the report draws, so a file that is not a readable result is refused with one sentence saying why.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actok.bench.runner import write_result
from actok.errors import ActokError

SCHEMA_VERSION = 2

# What a result must hold and the JSON type of each value; optional values may be absent or null.
REQUIRED_FIELDS = {
    "config": {
        "tokenizer": "a string",
        "repo_id": "a string",
        "action_horizon": "an integer",
        "encoded_dims": "a string",
        "normalization_mode": "a string",
    },
    "metrics": {
        "reconstruction_rmse": "a finite number",
        "mean_token_length": "a finite number",
        "bits_per_chunk": "a finite number",
        "mean_encode_time_sec": "a finite number",
        "mean_decode_time_sec": "a finite number",
        "num_chunks_evaluated": "an integer",
        "per_dimension_mae": "a list of numbers",
    },
}
OPTIONAL_FIELDS = {
    "config": {"tokenizer_params": "an object"},
    "metrics": {
        "evaluated_split": "a string",
        "token_length_counts": "a list of [length, count] pairs",
        "train_dct_coefficient_variances": "a list of numbers",
        "train_klt_coefficient_variances": "a list of numbers",
        "klt_bound_gap_tokens": "a number",
        "prefix_token_fractions": "a list of numbers",
        "prefix_rmse": "a list of numbers",
        "vocab_size": "an integer",
        "entropy_coded_bits_per_chunk": "a number",
        "reconstruction_p95_abs_error": "a number",
        "reconstruction_max_abs_error": "a number",
        "invalid_decode_fraction": "a number",
        "noise_5pct_rmse_increase": "a number",
    },
}


class ResultFileError(ActokError):
    """A file that is not a readable bench result: `path` and the `problem`, in one sentence."""

    def __init__(self, path: Path | None, problem: str):
        super().__init__(f"{path} is not a readable bench result: {problem}" if path else problem)
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class BenchResult:
    """A tokenizer scored on one dataset: `config` (dataset, chunk settings, tokenizer and its parameters,
    normalization) and `metrics` (see the README); `path` is the file it was read from or written to."""

    config: dict[str, Any]
    metrics: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    @property
    def tokenizer(self) -> str:
        return self.config["tokenizer"]

    @property
    def tokenizer_params(self) -> dict[str, Any]:
        return self.config.get("tokenizer_params") or {}

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "config": self.config, "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> BenchResult:
        """A result from parsed JSON (any schema version up to `SCHEMA_VERSION`); `ResultFileError` saying what
        is missing or of the wrong type otherwise."""
        problem = _problem(data)
        if problem:
            raise ResultFileError(path, problem)
        return cls(data["config"], data["metrics"], path)

    @classmethod
    def read(cls, path: str | Path) -> BenchResult:
        """The result in a JSON file; `ResultFileError` when it is unreadable, not JSON or not a result."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ResultFileError(path, "not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ResultFileError(path, f"not valid JSON ({exc})") from None
        except OSError as exc:
            raise ResultFileError(path, f"cannot be read ({exc.strerror})") from None
        return cls.from_json(data, path)

    def write(self, output_dir: str | Path, filename: str) -> BenchResult:
        """Write into `output_dir` as `filename`, never replacing a file (a numeric suffix is added); returns the
        result with its `path`."""
        return dataclasses.replace(self, path=write_result(output_dir, filename, self.to_json()))


def _problem(data: Any) -> str | None:
    """What keeps parsed JSON `data` from being a bench result the report can draw, or None when nothing does."""
    if not isinstance(data, dict):
        return f"the JSON is {_json_kind(data)}, not an object with 'config' and 'metrics'"
    missing = [key for key in REQUIRED_FIELDS if key not in data]
    if missing:
        return f"no {' or '.join(map(repr, missing))} key (a bench result has 'config' and 'metrics')"
    version = data.get("schema_version", 1)
    if not _has_type(version, "an integer") or not 1 <= version <= SCHEMA_VERSION:
        return f"schema_version {json.dumps(version)} is not one this actok reads (1 to {SCHEMA_VERSION}; a newer actok wrote it?)"
    for section, required in REQUIRED_FIELDS.items():
        part = data[section]
        if not isinstance(part, dict):
            return f"'{section}' is {_json_kind(part)}, expected an object"
        absent = [key for key in required if key not in part]
        if absent:
            return f"'{section}' has no {absent[0]!r}"
        fields = list(required.items())
        fields += [(key, kind) for key, kind in OPTIONAL_FIELDS[section].items() if part.get(key) is not None]
        for key, expected in fields:
            if not _has_type(part[key], expected):
                shown = json.dumps(part[key])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                return f"{section}.{key} is {shown} ({_json_kind(part[key])}), expected {expected}"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds[type(value)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _has_type(value: Any, expected: str) -> bool:
    checks = {
        "a string": lambda v: isinstance(v, str),
        "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "a number": _is_number,
        "a finite number": lambda v: _is_number(v) and math.isfinite(v),
        "an object": lambda v: isinstance(v, dict),
        "a list of numbers": lambda v: isinstance(v, list) and len(v) > 0 and all(map(_is_number, v)),
        "a list of [length, count] pairs": lambda v: (
            isinstance(v, list)
            and len(v) > 0
            and all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) and p[1] > 0 for p in v)
        ),
    }
    return checks[expected](value)
