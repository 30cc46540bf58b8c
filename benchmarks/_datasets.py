"""The folder of shared datasets the benchmarks read: `--datasets-dir DIR`, default `$ACTOK_SHARED_DATASETS`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ENV = "ACTOK_SHARED_DATASETS"


def add_datasets_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datasets-dir",
        type=Path,
        default=os.environ.get(ENV) or None,
        help=f"folder holding the datasets (default: ${ENV})",
    )


def datasets_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Path:
    """The datasets folder, or a one-line usage error (exit 2) when none is given or it is not a folder."""
    if args.datasets_dir is None:
        parser.error(f"no datasets folder: pass --datasets-dir DIR or set {ENV}=DIR")
    if not args.datasets_dir.is_dir():
        parser.error(f"--datasets-dir {args.datasets_dir} is not a folder")
    return args.datasets_dir
