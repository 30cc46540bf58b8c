"""Command line: `actok train`, `actok bench`, `actok check`, `actok report`, `actok casestudy`.

Every flag accepts both spellings (`--repo-id` / `--repo_id`) and both forms (`--flag value` / `--flag=value`);
booleans are a bare flag or take true/false. A user mistake prints one line on stderr and exits with code 2.
The commands parse, call the library (`actok.train`, `actok.bench`, `actok.check`) and print. A command is one
row of `COMMANDS`; one that lives in its own module gives `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actok import __version__, bench
from actok.bench.sweep import SHARED_PARAMS, tokenizer_names, tokenizer_params
from actok.check import check_dataset, format_report
from actok.cli_args import ENGINE_FLAGS, OneLineParser, add_flag, add_flags, engine_options
from actok.errors import ActokError
from actok.executor import check_engine
from actok.outputs import check_output_location, output_lock
from actok.tokenizers import available_tokenizers, create_tokenizer, tokenizer_extra
from actok.train import describe_compression, describe_training, train_tokenizer

DEFAULT_TRAIN_TOKENIZER = "fast"
TRAIN_ENCODED_DIMS = "0:6,7:23"  # lerobot-train-tokenizer's default
BENCH_ENCODED_DIMS = "0:6"  # the benchmark seed's default


def _shared_params(args: argparse.Namespace) -> dict:
    return {key: getattr(args, key) for key in SHARED_PARAMS}


def _datasets(args: argparse.Namespace, bundled: bool = False) -> list[bench.DatasetSpec]:
    listed = ([] if x is None else x if isinstance(x, list) else [x] for x in (args.root, args.repo_id))
    return bench.DatasetSpec.from_flags(*listed, bundled=bundled)


def _output_dir(text: str | None) -> None:
    if text is not None and not str(text).strip():
        raise ActokError("--output-dir is empty; give a folder path")


def cmd_train(args: argparse.Namespace) -> int:
    """train a tokenizer on a dataset and save it

    Train a tokenizer on a LeRobot dataset's training episodes and save it with metadata.json."""
    name = DEFAULT_TRAIN_TOKENIZER if args.tokenizer is None else args.tokenizer.strip()
    if name not in available_tokenizers():
        tokenizer_names(name)  # the one-line error with the valid names
        raise ActokError(f"--tokenizer takes one tokenizer for train, got {name!r}")
    tokenizer = create_tokenizer(name, **tokenizer_params(name, _shared_params(args), args.tokenizer_param))
    config = bench.chunk_config(vars(args), TRAIN_ENCODED_DIMS)
    config.validate()
    reader = _datasets(args)[0].reader()
    _output_dir(args.output_dir)
    output = Path(args.output_dir or f"./{name}_tokenizer_{reader.repo_id.replace('/', '_')}")
    show = lambda chunks: print(describe_training(reader, tokenizer, chunks))  # noqa: E731 - before fitting
    result = train_tokenizer(reader, tokenizer, config, output, args.overwrite, show, **engine_options(args))
    print("✓ Tokenizer training complete!")
    print(describe_compression(result))
    print(f"\n✅ Saved {name} tokenizer to {output}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """benchmark tokenizers on a dataset

    Benchmark tokenizers on held-out episodes; writes one results JSON per tokenizer."""
    from actok.bench.console import BenchConsole
    from actok.bench.report import check_report_free, write_report

    check_engine(args.engine, args.ray_address)
    path = args.action_tokenizer_path
    tokenizers = bench.parse_tokenizers(args.tokenizer, args.sweep, _shared_params(args), args.tokenizer_param, path)
    config = bench.chunk_config(vars(args), BENCH_ENCODED_DIMS, bench.saved_pipeline(path) if path else None)
    cells = bench.plan(
        _datasets(args, bundled=True),
        tokenizers,
        bench.BenchSettings(config, args.max_chunks_for_reconstruction, args.force),
    )
    _output_dir(args.output_dir)
    output = check_output_location(args.output_dir, [c.dataset.root for c in cells], replaces_folder=False)
    if args.report:
        check_report_free(output, args.overwrite)
    with output_lock(output):
        with BenchConsole(cells) as console:
            run = bench.execute(cells, args.output_dir, **engine_options(args), on_outcome=console.show)
        if run.skipped:
            print(f"{len(run.skipped)} cell(s) skipped:\n  " + "\n  ".join(run.skipped))
        if args.report:
            md, page = write_report(Path(args.output_dir), overwrite=args.overwrite)
            print(f"wrote {md}\nwrote {page}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """check serving data against a saved tokenizer's fit-time profile (normalization drift)

    Run a dataset through a saved tokenizer folder's pipeline (its recorded normalization, not stats of this
    dataset) and compare token lengths, out-of-range values, clipping, invalid decodes and RMSE with what actok
    train recorded (fit_profile.json). Exit 0 ok, 1 drift, 2 user error."""
    if args.seed < 0:
        raise ActokError(f"seed must be an integer >= 0, got {args.seed}")
    reader = _datasets(args)[0].reader()
    path, options = args.action_tokenizer_path, engine_options(args)
    report = check_dataset(path, reader, args.sample_fraction, args.max_chunks, args.seed, progress=True, **options)
    print(json.dumps(report) if args.json else format_report(report))
    return 1 if report["verdict"] == "drift" else 0


def cmd_report(args: argparse.Namespace) -> int:
    """report.md + report.html from bench result JSON files

    Read bench result JSON files (never re-runs anything) and write report.md and a self-contained report.html:
    comparison table, rate-distortion plot with Pareto frontier and the reverse water-filling bound, token-length
    histograms, per-dimension error, timings."""
    from actok.bench.report import write_report

    output = Path(args.output_dir or args.results_dir)
    with output_lock(output):
        md, page = write_report(Path(args.results_dir), output, overwrite=args.overwrite)
    print(f"wrote {md}\nwrote {page}")
    return 0


# ---------------------------------------------------------------------------------------------- flags
def _dataset_flags(p: argparse.ArgumentParser, sample_fraction: float, several: bool = False) -> None:
    kind, again = (list, " (repeatable: several datasets, paired in order with --root)") if several else (str, "")
    add_flags(
        p,
        ("repo_id", kind, None, f"LeRobot dataset repo id, e.g. lerobot/pusht (found in the local cache){again}"),
        ("root", kind, None, f"dataset folder (a LeRobot dataset root); overrides the cache lookup{again}"),
        ("action_horizon", int, None, "steps per chunk (default 10)"),
        ("encoded_dims", str, None, "dims to encode as python slices, e.g. 0:6,7:14"),
        ("delta_dims", str, None, "dims made relative to the state at the chunk's first frame"),
        ("use_delta_transform", bool, None, "apply the delta transform (default: on when --delta-dims is given)"),
        ("state_key", str, "observation.state", "state column for the delta transform"),
        ("normalization_mode", str, None, "IDENTITY, MEAN_STD, MIN_MAX, QUANTILES (default) or QUANTILE10"),
        ("max_episodes", int, None, "use only the first N episodes"),
        ("sample_fraction", float, sample_fraction, "fraction of chunks kept per episode (default %(default)s)"),
        ("holdout_fraction", float, 0.1, "fraction of episodes held out from fit (default 0.1; 0 = none)"),
        ("seed", int, 0, "seed of the episode split"),
    )


def _tokenizer_flags(p: argparse.ArgumentParser, what: str) -> None:
    rows = [("tokenizer", str, None, what), *((k, kind, None, text) for k, (kind, text) in SHARED_PARAMS.items())]
    add_flags(p, *rows, ("tokenizer_param", list, [], "any other constructor parameter (repeatable)", "KEY=VALUE"))


def _train_flags(p: argparse.ArgumentParser) -> None:
    _dataset_flags(p, sample_fraction=0.1)
    names = ", ".join(available_tokenizers())
    _tokenizer_flags(p, f"tokenizer to train (default {DEFAULT_TRAIN_TOKENIZER}); one of: {names}")
    add_flags(
        p,
        ("output_dir", str, None, "where to save (default ./{tokenizer}_tokenizer_{repo_id})"),
        ("max_chunks", int, None, "fit on a seeded uniform subset of at most N training chunks (default all)"),
        *ENGINE_FLAGS,
        ("overwrite", bool, False, "replace an existing output folder"),
    )


def _bench_flags(p: argparse.ArgumentParser) -> None:
    _dataset_flags(p, sample_fraction=0.2, several=True)
    core = ", ".join(n for n in available_tokenizers() if not tokenizer_extra(n))
    what = "comma-separated tokenizers fitted on the training episodes, or 'all' (default: every tokenizer that needs"
    _tokenizer_flags(p, f"{what} no optional extra: {core})")
    sweep = "a parameter grid for one tokenizer, e.g. 'fast:scale=2,5,10' (repeatable; every combination is a cell)"
    add_flags(
        p,
        ("action_tokenizer_path", str, None, "a saved tokenizer folder to benchmark"),
        ("sweep", list, [], sweep, "NAME:KEY=V1,V2[;KEY2=...]"),
        ("max_chunks_for_reconstruction", int, 500, "chunks used for reconstruction and timing (default 500)"),
        ("output_dir", str, "outputs/action_tokenizer_benchmark", "results folder"),
        ("report", bool, False, "also write report.md/report.html into --output-dir"),
        ("overwrite", bool, False, "with --report: replace an existing report"),
        ("force", bool, False, "benchmark a saved tokenizer even if its pipeline differs"),
        *ENGINE_FLAGS,
    )


def _report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="folder with bench result JSON files")
    add_flags(
        p,
        ("output_dir", str, None, "where to write the report (default: the results folder)"),
        ("overwrite", bool, False, "replace an existing report"),
    )


def _check_flags(p: argparse.ArgumentParser) -> None:
    add_flag(p, "action_tokenizer_path", required=True, help="a saved tokenizer folder (with pipeline.json)")
    add_flags(
        p,
        ("repo_id", str, None, "LeRobot dataset repo id of the serving data (looked up in the local cache)"),
        ("root", str, None, "serving dataset folder (a LeRobot dataset root); overrides the cache lookup"),
        ("sample_fraction", float, 0.2, "fraction of chunks kept per episode (default 0.2)"),
        ("max_chunks", int, None, "check a random subset of at most N chunks (default all)"),
        ("seed", int, 0, "seed of the --max-chunks subset"),
        ("json", bool, False, "print one JSON object instead of the table"),
        *ENGINE_FLAGS,
    )


# -------------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Command:
    """A subcommand: `add_arguments(parser)` and `run(args) -> int`, or the `module` that defines both; its `help`
    line and `description` (default: the first paragraph of `run`'s docstring and the rest)."""

    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run: Callable[[argparse.Namespace], int] | None = None
    module: str | None = None
    help: str = ""
    description: str = ""

    def parts(self) -> tuple[Callable, Callable, str, str]:
        if self.module is not None:
            module = importlib.import_module(self.module)
            return module.add_arguments, module.run, self.help, self.description or " ".join(module.__doc__.split())
        summary, _, description = inspect.cleandoc(self.run.__doc__).partition("\n\n")
        return self.add_arguments, self.run, summary, description.replace("\n", " ")


COMMANDS = {
    "train": Command(_train_flags, cmd_train),
    "bench": Command(_bench_flags, cmd_bench),
    "report": Command(_report_flags, cmd_report),
    "check": Command(_check_flags, cmd_check),
    "casestudy": Command(
        module="actok.casestudy.main",
        help="the FAST paper's toy case study (needs the learned extra)",
        description="Naive per-step tokens vs FAST for an autoregressive model across sampling rates (FAST paper, "
        "Figure 3). Needs PyTorch: pip install 'actok[learned]'.",
    ),
    "policy": Command(module="actok.policy.main", help="which tokenizer makes the better policy (learned, sim extras)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="actok", description="Train and benchmark robot action tokenizers on LeRobot datasets.")
    parser.add_argument("--version", action="version", version=f"actok {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, command in COMMANDS.items():
        add_arguments, _, summary, description = command.parts()
        add_arguments(sub.add_parser(name, help=summary, description=description))
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _fail(command: str, message: str, code: int) -> int:
    """Print `message` as one line on stderr, after closing the progress bars still on screen (so it is clean)."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    sys.stdout.flush()
    sys.stderr.write(f"actok {command}: {message}\n" if command else f"actok: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported on one line
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return _fail("", "interrupted", 130)
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.command].parts()[1](args)
    except ActokError as exc:
        return _fail(args.command, f"error: {exc}", 2)
    except KeyboardInterrupt:  # temporary files are removed on the way out; nothing half-written stays
        return _fail(args.command, "interrupted", 130)
    except SystemError as exc:  # a Ctrl-C inside compiled (numba) code surfaces wrapped in a SystemError
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            return _fail(args.command, "interrupted", 130)
        raise
    except OSError as exc:  # the file system said no (unwritable folder, disk full, ...)
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(args.command, f"error: cannot access{where}: {exc.strerror or exc}", 2)
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
