"""Argument-parsing helpers shared by every command line (`actok`, `actok casestudy`).

Every flag accepts both spellings (`--repo-id` / `--repo_id`) and both forms (`--flag value` / `--flag=value`);
booleans are a bare flag or take true/false; a usage error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from actok.errors import ActokError
from actok.executor import ENGINES

# `--engine`/`--ray-address`, the same on every command that reads datasets or runs a grid (add_flags rows).
ENGINE_FLAGS = (
    ("engine", str, "local", f"where the work runs: {' or '.join(ENGINES)} (Ray; needs actok[ray])"),
    ("ray_address", str, None, "with --engine ray: the cluster to join (default: a new local Ray instance)"),
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (argparse prints the whole usage block by default)."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    low = value.strip().lower()
    if low in ("true", "1", "yes", "y", "on"):
        return True
    if low in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """Add `--name-with-dashes` and `--name_with_underscores` as one option (`boolean=True`: a bare flag or a
    true/false value)."""
    dashed, snake = name.replace("_", "-"), name.replace("-", "_")
    options = [f"--{dashed}"] + ([f"--{snake}"] if snake != dashed else [])
    if kwargs.pop("boolean", False):
        kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
    parser.add_argument(*options, dest=snake, **kwargs)


def add_flags(parser: argparse.ArgumentParser, *rows: tuple) -> None:
    """`add_flag` per row `(name, kind, default, help[, metavar])`; kind: int, float, str, bool (a bare flag or
    true/false) or list (repeatable)."""
    for name, kind, default, text, *metavar in rows:
        kwargs = {"boolean": True} if kind is bool else {"action": "append"} if kind is list else {"type": kind}
        add_flag(parser, name, default=default, help=text, metavar=metavar[0] if metavar else None, **kwargs)


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `engine`/`ray_address` keyword arguments of the library calls, from the `ENGINE_FLAGS` flags."""
    return {"engine": args.engine, "ray_address": args.ray_address}


def module_main(
    command: str, build_parser: Callable[[], argparse.ArgumentParser], run: Callable, argv: list[str] | None
) -> int:
    """`python -m actok.<command>`: parse, run, and print an `ActokError` as one line (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ActokError as exc:
        sys.stderr.write(f"actok {command}: error: {exc}\n")
        return 2
