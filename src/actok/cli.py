"""Command line: `actok train`, `actok bench`, `actok check`, `actok report`, `actok casestudy`.

Every flag accepts both spellings (`--repo-id` / `--repo_id`) and both forms (`--flag value` / `--flag=value`);
booleans are a bare flag or take true/false. A user mistake prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from actok import __version__
from actok.casestudy.main import add_arguments as casestudy_arguments
from actok.casestudy.main import run as cmd_casestudy
from actok.check import check_dataset, fit_baseline, format_report, profile_fit, save_profile
from actok.cli_args import OneLineParser, add_flag
from actok.codec import PIPELINE_FILE, ActionCodec, read_pipeline
from actok.data.chunks import dims_to_spec
from actok.data.lerobot import LeRobotDatasetReader, resolve_dataset_root
from actok.data.normalize import NormalizationMode, Normalizer
from actok.data.pipeline import ChunkConfig, ChunkSet, build_chunks
from actok.errors import ActokError
from actok.outputs import check_output_location, check_replaceable_folder, output_lock, write_folder_atomically
from actok.tokenizers import (
    available_tokenizers,
    constructor_parameters,
    create_tokenizer,
    get_tokenizer_class,
    load_tokenizer,
    tokenizer_extra,
)
from actok.tokenizers.base import ActionTokenizer

DEFAULT_TRAIN_TOKENIZER = "fast"
TRAIN_ENCODED_DIMS = "0:6,7:23"  # lerobot-train-tokenizer's default
BENCH_ENCODED_DIMS = "0:6"  # the benchmark seed's default
BUNDLED_REPO_ID = "pusht"
# Tokenizer constructor parameters that have their own flags; others go through --tokenizer-param KEY=VALUE.
PARAM_FLAGS = ("vocab_size", "scale", "n_bins", "device")


def _dataset_flags(p: argparse.ArgumentParser, sample_fraction: float, several: bool = False) -> None:
    more = {"action": "append", "default": None} if several else {}
    again = " (repeatable: several datasets, paired in order with --root)" if several else ""
    add_flag(
        p, "repo_id", help=f"LeRobot dataset repo id, e.g. lerobot/pusht (looked up in the local cache){again}", **more
    )
    add_flag(p, "root", help=f"dataset folder (a LeRobot dataset root); overrides the cache lookup{again}", **more)
    add_flag(p, "action_horizon", type=int, default=None, help="steps per chunk (default 10)")
    add_flag(p, "encoded_dims", default=None, help="dims to encode as python slices, e.g. 0:6,7:14")
    add_flag(p, "delta_dims", default=None, help="dims made relative to the state at the chunk's first frame")
    add_flag(
        p,
        "use_delta_transform",
        boolean=True,
        default=None,
        help="apply the delta transform (default: on when --delta-dims is given)",
    )
    add_flag(p, "state_key", default="observation.state", help="state column for the delta transform")
    add_flag(
        p,
        "normalization_mode",
        default=None,
        help="IDENTITY, MEAN_STD, MIN_MAX, QUANTILES (default) or QUANTILE10",
    )
    add_flag(p, "max_episodes", type=int, default=None, help="use only the first N episodes")
    add_flag(
        p,
        "sample_fraction",
        type=float,
        default=sample_fraction,
        help=f"fraction of chunks kept per episode (default {sample_fraction})",
    )
    add_flag(
        p,
        "holdout_fraction",
        type=float,
        default=0.1,
        help="fraction of episodes held out from fit (default 0.1; 0 = none)",
    )
    add_flag(p, "seed", type=int, default=0, help="seed of the episode split")


def _tokenizer_flags(p: argparse.ArgumentParser) -> None:
    add_flag(p, "vocab_size", type=int, default=None, help="vocabulary size (tokenizers that learn one)")
    add_flag(p, "scale", type=float, default=None, help="coefficient quantization scale (DCT/wavelet tokenizers)")
    add_flag(p, "n_bins", type=int, default=None, help="bins per value (binning tokenizers)")
    add_flag(p, "device", default=None, help="learned tokenizers: auto (GPU when present, else CPU), cpu, cuda, cuda:N")
    add_flag(
        p,
        "tokenizer_param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other constructor parameter (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="actok", description="Train and benchmark robot action tokenizers on LeRobot datasets.")
    parser.add_argument("--version", action="version", version=f"actok {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser(
        "train",
        help="train a tokenizer on a dataset and save it",
        description="Train a tokenizer on a LeRobot dataset's training episodes and save it with metadata.json.",
    )
    _dataset_flags(train, sample_fraction=0.1)
    add_flag(
        train,
        "tokenizer",
        default=None,
        help=f"tokenizer to train (default {DEFAULT_TRAIN_TOKENIZER}); one of: {', '.join(available_tokenizers())}",
    )
    _tokenizer_flags(train)
    add_flag(train, "output_dir", default=None, help="where to save (default ./{tokenizer}_tokenizer_{repo_id})")
    add_flag(train, "overwrite", boolean=True, default=False, help="replace an existing output folder")

    bench = sub.add_parser(
        "bench",
        help="benchmark tokenizers on a dataset",
        description="Benchmark tokenizers on held-out episodes; writes one results JSON per tokenizer.",
    )
    _dataset_flags(bench, sample_fraction=0.2, several=True)
    add_flag(bench, "action_tokenizer_path", default=None, help="a saved tokenizer folder to benchmark")
    add_flag(
        bench,
        "tokenizer",
        default=None,
        help="comma-separated tokenizers fitted on the training episodes, or 'all' (default: every tokenizer "
        "that needs no optional extra: " + ", ".join(n for n in available_tokenizers() if not tokenizer_extra(n)) + ")",
    )
    _tokenizer_flags(bench)
    add_flag(
        bench,
        "sweep",
        action="append",
        default=[],
        metavar="NAME:KEY=V1,V2[;KEY2=...]",
        help="a parameter grid for one tokenizer, e.g. 'fast:scale=2,5,10' (repeatable; every combination is a cell)",
    )
    add_flag(
        bench,
        "max_chunks_for_reconstruction",
        type=int,
        default=500,
        help="chunks used for reconstruction and timing (default 500)",
    )
    add_flag(bench, "output_dir", default="outputs/action_tokenizer_benchmark", help="results folder")
    add_flag(bench, "report", boolean=True, default=False, help="also write report.md/report.html into --output-dir")
    add_flag(bench, "overwrite", boolean=True, default=False, help="with --report: replace an existing report")
    add_flag(
        bench,
        "force",
        boolean=True,
        default=False,
        help="benchmark a saved tokenizer even if its pipeline differs",
    )

    report = sub.add_parser(
        "report",
        help="report.md + report.html from bench result JSON files",
        description="Read bench result JSON files (never re-runs anything) and write report.md and a "
        "self-contained report.html: comparison table, rate-distortion plot with Pareto frontier and the "
        "reverse water-filling bound, token-length histograms, per-dimension error, timings.",
    )
    report.add_argument("results_dir", help="folder with bench result JSON files")
    add_flag(report, "output_dir", default=None, help="where to write the report (default: the results folder)")
    add_flag(report, "overwrite", boolean=True, default=False, help="replace an existing report")

    check = sub.add_parser(
        "check",
        help="check serving data against a saved tokenizer's fit-time profile (normalization drift)",
        description="Run a dataset through a saved tokenizer folder's pipeline (its recorded normalization, not "
        "stats of this dataset) and compare token lengths, out-of-range values, clipping, invalid decodes and RMSE "
        "with what actok train recorded (fit_profile.json). Exit 0 ok, 1 drift, 2 user error.",
    )
    add_flag(check, "action_tokenizer_path", required=True, help="a saved tokenizer folder (with pipeline.json)")
    add_flag(check, "repo_id", help="LeRobot dataset repo id of the serving data (looked up in the local cache)")
    add_flag(check, "root", help="serving dataset folder (a LeRobot dataset root); overrides the cache lookup")
    add_flag(
        check, "sample_fraction", type=float, default=0.2, help="fraction of chunks kept per episode (default 0.2)"
    )
    add_flag(
        check, "max_chunks", type=int, default=None, help="check a random subset of at most N chunks (default all)"
    )
    add_flag(check, "seed", type=int, default=0, help="seed of the --max-chunks subset")
    add_flag(check, "json", boolean=True, default=False, help="print one JSON object instead of the table")

    casestudy = sub.add_parser(
        "casestudy",
        help="the FAST paper's toy case study (needs the learned extra)",
        description="Naive per-step tokens vs FAST for an autoregressive model across sampling rates "
        "(FAST paper, Figure 3). Needs PyTorch: pip install 'actok[learned]'.",
    )
    casestudy_arguments(casestudy)
    return parser


# ----------------------------------------------------------------- helpers
def _tokenizer_params(name: str, args: argparse.Namespace, others: list[str] | None = None) -> dict[str, Any]:
    """Constructor parameters for tokenizer `name` from the flags it accepts. With several tokenizers
    (`others`), a `--tokenizer-param` goes to those that accept it and must be accepted by at least one."""
    accepted = constructor_parameters(name)
    params: dict[str, Any] = {}
    for key in PARAM_FLAGS:
        value = getattr(args, key, None)
        if value is not None and key in accepted:
            params[key] = value
    for item in args.tokenizer_param:
        key, sep, raw = item.partition("=")
        if sep and key not in accepted and any(key in constructor_parameters(o) for o in others or []):
            continue  # meant for another of the tokenizers benchmarked together
        if not sep or key not in accepted:
            names = sorted({name, *(others or [])})
            valid = ", ".join(dict.fromkeys(k for n in names for k in constructor_parameters(n)))
            raise ActokError(
                f"bad --tokenizer-param {item!r}: expected KEY=VALUE with KEY one of {valid} "
                f"(parameters of {', '.join(names)})"
            )
        params[key] = _json_value(raw)
    return params


def _parse_tokenizer_names(spec: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        get_tokenizer_class(n)  # raises with the valid names (or the missing extra)
    if not names:
        raise ActokError(f"--tokenizer is empty; valid tokenizers: {', '.join(available_tokenizers())}")
    return names


def _dataset(args: argparse.Namespace, allow_bundled: bool) -> tuple[LeRobotDatasetReader, str]:
    if args.root is None and args.repo_id is None:
        if not allow_bundled:
            raise ActokError("no dataset given: pass --repo-id ID and/or --root DIR")
        root = Path(str(resources.files("actok") / "example_data" / "pusht"))
        return LeRobotDatasetReader(root, BUNDLED_REPO_ID), BUNDLED_REPO_ID
    root = resolve_dataset_root(args.repo_id, args.root)
    repo_id = args.repo_id or root.name
    return LeRobotDatasetReader(root, repo_id), repo_id


def _datasets(args: argparse.Namespace) -> list[tuple[LeRobotDatasetReader, str]]:
    """Bench's datasets: repeated --root and/or --repo-id (paired in order when both are repeated)."""
    roots, repo_ids = args.root or [], args.repo_id or []
    if not roots and not repo_ids:
        return [_dataset(argparse.Namespace(root=None, repo_id=None), allow_bundled=True)]
    if roots and repo_ids and len(roots) != len(repo_ids):
        raise ActokError(
            f"{len(roots)} --root but {len(repo_ids)} --repo-id: give one --repo-id per --root (they pair in order), "
            "or only one kind"
        )
    n = max(len(roots), len(repo_ids))
    return [
        _dataset(argparse.Namespace(root=roots[i] if roots else None, repo_id=repo_ids[i] if repo_ids else None), True)
        for i in range(n)
    ]


def _split_values(text: str) -> list[str]:
    """'2,5,[8,5,5]' -> ['2', '5', '[8,5,5]']: commas inside brackets belong to the value."""
    out, depth, current = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [v.strip() for v in [*out, current] if v.strip()]


def _sweep_cells(spec: str, args: argparse.Namespace, others: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """'fast:scale=2,5;vocab_size=512,1024' -> one (name, params) per combination (on top of the flags)."""
    name, sep, grid = spec.partition(":")
    name = name.strip()
    if not sep or not grid.strip():
        raise ActokError(f"bad --sweep {spec!r}: expected NAME:KEY=V1,V2[;KEY2=...], e.g. 'fast:scale=2,5,10'")
    get_tokenizer_class(name)
    accepted = constructor_parameters(name)
    axes: list[tuple[str, list[Any]]] = []
    for part in grid.split(";"):
        key, eq, values = part.partition("=")
        key = key.strip()
        if not eq or key not in accepted or not _split_values(values):
            raise ActokError(
                f"bad --sweep {spec!r}: {part.strip()!r} is not KEY=V1,V2 with KEY one of {', '.join(accepted)}"
            )
        if key in dict(axes):
            raise ActokError(f"bad --sweep {spec!r}: {key} is given twice; list all its values once, e.g. {key}=1,2,3")
        axes.append((key, [_json_value(v) for v in _split_values(values)]))
    base = _tokenizer_params(name, args, others)
    return [
        (name, {**base, **dict(zip([k for k, _ in axes], combo, strict=True))})
        for combo in itertools.product(*(v for _, v in axes))
    ]


def _json_value(raw: str) -> Any:
    """A flag value as JSON (numbers, lists, true/false); anything else is a plain string (e.g. `device=cpu`),
    except text that starts like JSON but does not parse, which is an error."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if raw.strip()[:1] in '[{"' or raw.strip()[:1].isdigit() or raw.strip()[:1] in "-.":
            raise ActokError(f"value {raw!r} is not valid JSON ({exc.msg}); e.g. 10, 0.5, [8,5,5] or true") from None
        return raw


def _cell_label(name: str, params: dict[str, Any], swept: bool) -> str:
    if not swept:
        return name
    return name + "".join(f"-{k}{json.dumps(v).replace(' ', '')}" for k, v in sorted(params.items()))


def _chunk_config(args: argparse.Namespace, default_dims: str, saved: dict | None = None) -> ChunkConfig:
    saved = saved or {}
    horizon = args.action_horizon if args.action_horizon is not None else saved.get("action_horizon", 10)
    explicit_dims = args.encoded_dims if args.encoded_dims is not None else saved.get("encoded_dims")
    delta = args.delta_dims if args.delta_dims is not None else saved.get("delta_dims")
    mode = args.normalization_mode or (saved.get("normalization") or {}).get("mode") or "QUANTILES"
    return ChunkConfig(
        action_horizon=horizon,
        encoded_dims=explicit_dims if explicit_dims is not None else default_dims,
        clip_encoded_dims=explicit_dims is None,
        delta_dims=delta,
        use_delta_transform=args.use_delta_transform,
        state_key=args.state_key,
        normalization_mode=mode,
        sample_fraction=args.sample_fraction,
        max_episodes=args.max_episodes,
        holdout_fraction=args.holdout_fraction,
        seed=args.seed,
    )


def _overall(x: np.ndarray) -> str:
    return f"Min: {x.min():.4f}, Max: {x.max():.4f}, Mean: {x.mean():.4f}, Std: {x.std():.4f}"


_MODE_TEXT = {
    NormalizationMode.IDENTITY: "No normalization (IDENTITY)",
    NormalizationMode.MEAN_STD: "Applied mean/std normalization (x - mean) / std",
    NormalizationMode.MIN_MAX: "Applied min/max normalization [min, max] → [-1, 1]",
    NormalizationMode.QUANTILES: "Applied quantile normalization [q01, q99] → [-1, 1]",
    NormalizationMode.QUANTILE10: "Applied quantile normalization [q10, q90] → [-1, 1]",
}


def _print_chunk_summary(reader: LeRobotDatasetReader, repo_id: str, chunks: ChunkSet) -> None:
    n_eps = len(chunks.train_episodes) + len(chunks.holdout_episodes) + len(chunks.skipped_episodes)
    print(f"Loading dataset: {repo_id} ({reader.root}, LeRobot {reader.codebase_version})")
    print(f"Dataset loaded: {n_eps} episodes, {chunks.num_frames} frames")
    print(
        f"Encoding {len(chunks.encoded_dims)} dimensions: {dims_to_spec(chunks.encoded_dims)} (action dim {chunks.action_dim})"
    )
    print(f"Delta dimensions: {chunks.delta_dims}" if chunks.delta_dims else "No delta dimensions")
    print(f"Action horizon: {chunks.horizon}")
    print(f"Processing {n_eps} episodes...")
    if chunks.skipped_episodes:
        print(f"Skipped {len(chunks.skipped_episodes)} episodes shorter than the horizon: {chunks.skipped_episodes}")
    print(
        f"Collected {len(chunks.train)} training chunks from {len(chunks.train_episodes)} episodes; "
        f"{len(chunks.holdout)} held-out chunks from {len(chunks.holdout_episodes)} episodes {chunks.holdout_episodes}"
    )
    print(f"Extracted {len(chunks.encoded_dims)} encoded dimensions")
    print("\nBefore normalization - overall stats:")
    print(f"  {_overall(chunks.train_raw)}")
    print(f"\n{_MODE_TEXT[chunks.normalizer.mode]}")
    for name, source in chunks.stats_source.items():
        print(f"  {name}: {source}")
    for note in chunks.notes:
        print(f"  note: {note}")
    print("\nAfter normalization - overall stats:")
    print(f"  {_overall(chunks.train)}")


def _compression_stats(tokenizer: ActionTokenizer, chunks: np.ndarray) -> dict:
    """LeRobot's compression stats: a 1000-chunk sample drawn with RandomState(42)."""
    if len(chunks) == 0:
        return {}
    n = min(1000, len(chunks))
    sample = chunks[np.random.RandomState(42).choice(len(chunks), size=n, replace=False)]
    lengths = np.array([len(s) for s in tokenizer.encode(sample)], dtype=np.float64)
    return {
        "compression_ratio": float(chunks.shape[1] * chunks.shape[2] / lengths.mean()),
        "mean_token_length": float(lengths.mean()),
        "p99_token_length": float(np.percentile(lengths, 99)),
        "min_token_length": float(lengths.min()),
        "max_token_length": float(lengths.max()),
        "num_chunks": n,
    }


# -------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    name = DEFAULT_TRAIN_TOKENIZER if args.tokenizer is None else args.tokenizer.strip()
    if name not in available_tokenizers():
        _parse_tokenizer_names(name)  # the one-line error with the valid names
        raise ActokError(f"--tokenizer takes one tokenizer for train, got {name!r}")
    params = _tokenizer_params(name, args)
    config = _chunk_config(args, TRAIN_ENCODED_DIMS)
    config.validate()
    tokenizer = create_tokenizer(name, **params)
    reader, repo_id = _dataset(args, allow_bundled=False)
    output = Path(args.output_dir or f"./{name}_tokenizer_{repo_id.replace('/', '_')}")
    if args.output_dir is not None and not args.output_dir.strip():
        raise ActokError("--output-dir is empty; give a folder path")
    check_output_location(output, [reader.root])
    with output_lock(output):
        check_replaceable_folder(output, args.overwrite)
        return _train(args, name, tokenizer, config, reader, repo_id, output)


def _train(
    args: argparse.Namespace,
    name: str,
    tokenizer: ActionTokenizer,
    config: ChunkConfig,
    reader: LeRobotDatasetReader,
    repo_id: str,
    output: Path,
) -> int:
    chunks = build_chunks(reader, config)
    _print_chunk_summary(reader, repo_id, chunks)
    print(f"\nTraining {name} tokenizer on {len(chunks.train)} action chunks...")
    print(f"Action chunk shape: {chunks.train.shape}")
    for key, value in tokenizer.get_params().items():
        print(f"{key}: {value}")
    if tokenizer.uses_validation and len(chunks.holdout):
        print(f"Early stopping on the {len(chunks.holdout)} chunks of the held-out episodes")
        tokenizer.fit(chunks.train, validation=chunks.holdout)
    else:
        tokenizer.fit(chunks.train)
    print("✓ Tokenizer training complete!")

    stats = _compression_stats(tokenizer, chunks.train)
    holdout_stats = _compression_stats(tokenizer, chunks.holdout)
    print("\nCompression Statistics:")
    print(f"  Average compression ratio: {stats['compression_ratio']:.2f}x")
    print(f"  Mean token length: {stats['mean_token_length']:.1f}")
    print(f"  P99 token length: {stats['p99_token_length']:.0f}")
    print(f"  Min token length: {stats['min_token_length']:.0f}")
    print(f"  Max token length: {stats['max_token_length']:.0f}")
    if holdout_stats:
        print(
            f"  Held-out episodes: {holdout_stats['mean_token_length']:.1f} mean tokens, {holdout_stats['compression_ratio']:.2f}x"
        )

    codec = ActionCodec.from_chunks(tokenizer, chunks)
    fit_profile = profile_fit(codec, chunks)
    print(
        f"  Recommended max token length: {fit_baseline(fit_profile)['max_token_len']} (fit_profile.json, for actok check)"
    )
    metadata = {
        "repo_id": repo_id,
        "root": str(reader.root),
        "tokenizer": name,
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

    def write(folder: Path) -> None:
        codec.save(folder)
        save_profile(folder, fit_profile)
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")

    write_folder_atomically(output, write, args.overwrite)
    print(f"\n✅ Saved {name} tokenizer to {output}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ActokError(f"seed must be an integer >= 0, got {args.seed}")
    reader, _ = _dataset(args, allow_bundled=False)
    report = check_dataset(
        args.action_tokenizer_path, reader, args.sample_fraction, args.max_chunks, args.seed, progress=True
    )
    print(json.dumps(report) if args.json else format_report(report))
    return 1 if report["verdict"] == "drift" else 0


def _saved_pipeline(path: Path) -> dict | None:
    file = path / PIPELINE_FILE
    return read_pipeline(file) if file.exists() else None


def _pipeline_mismatches(saved: dict, chunks: ChunkSet) -> list[str]:
    current = chunks.pipeline_dict()
    out = []
    for key in ("action_horizon", "encoded_dims", "delta_dims"):
        if saved.get(key) != current[key]:
            out.append(f"{key}: tokenizer has {saved.get(key)!r}, requested {current[key]!r}")
    if saved["normalization"]["mode"] != current["normalization"]["mode"]:
        out.append(
            f"normalization_mode: tokenizer has {saved['normalization']['mode']}, requested {current['normalization']['mode']}"
        )
    return out


def cmd_bench(args: argparse.Namespace) -> int:
    if args.action_tokenizer_path and (args.tokenizer or args.sweep):
        raise ActokError("pass either --action-tokenizer-path or --tokenizer/--sweep, not both")
    if args.max_chunks_for_reconstruction < 1:
        raise ActokError(f"max_chunks_for_reconstruction must be >= 1, got {args.max_chunks_for_reconstruction}")
    saved = None
    if args.action_tokenizer_path:
        path = Path(args.action_tokenizer_path)
        loaded = load_tokenizer(path)
        saved = _saved_pipeline(path)
        entries = [(loaded.name, loaded.name, None, loaded)]
    else:
        names: list[str] = []
        if args.tokenizer is not None or not args.sweep:
            core = [n for n in available_tokenizers() if not tokenizer_extra(n)]
            spec = ",".join(core) if args.tokenizer is None else args.tokenizer
            names = _parse_tokenizer_names(",".join(available_tokenizers()) if spec.strip() == "all" else spec)
        everyone = names + [sweep.partition(":")[0].strip() for sweep in args.sweep]
        entries = [(n, n, _tokenizer_params(n, args, everyone), None) for n in names]
        for sweep in args.sweep:
            entries += [(n, _cell_label(n, p, True), p, None) for n, p in _sweep_cells(sweep, args, everyone)]
        labels = [label for _, label, _, _ in entries]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ActokError(f"the same cell is requested twice ({', '.join(repeated)}); list each tokenizer once")
        for name, _, params, _ in entries:
            create_tokenizer(name, **params)  # fail on bad parameters before any work
    config = _chunk_config(args, BENCH_ENCODED_DIMS, saved)
    config.validate()
    datasets = _datasets(args)
    if not str(args.output_dir).strip():
        raise ActokError("--output-dir is empty; give a folder path")
    output = check_output_location(args.output_dir, [r.root for r, _ in datasets], replaces_folder=False)
    if args.report:
        from actok.bench.report import REPORT_HTML, REPORT_MD

        existing = [output / f for f in (REPORT_MD, REPORT_HTML) if (output / f).exists()]
        if existing and not args.overwrite:
            raise ActokError(f"{existing[0]} already exists; pass --overwrite to replace the report")
    with output_lock(output):
        return _bench(args, entries, datasets, config, saved)


def _bench(args: argparse.Namespace, entries: list, datasets: list, config: ChunkConfig, saved: dict | None) -> int:
    from tqdm.auto import tqdm

    from actok.bench import benchmark_tokenizer, comparison_table, results_filename, write_result
    from actok.bench.metrics import dct_coefficient_variances

    bar = tqdm(
        total=len(entries) * len(datasets), desc="bench", disable=len(entries) * len(datasets) < 2, file=sys.stderr
    )
    skipped: list[str] = []
    for reader, repo_id in datasets:
        chunks = _bench_chunks(reader, config, saved, args.force)
        dct_variances = dct_coefficient_variances(chunks.train)  # once per dataset, shared by its cells
        for note in chunks.notes:
            print(f"note: {note}")
        split = "held-out" if len(chunks.holdout) else "training"
        print(
            f"Benchmarking {len(entries)} tokenizer(s) on {repo_id}: H={chunks.horizon}, "
            f"dims {dims_to_spec(chunks.encoded_dims)}, {chunks.normalizer.mode.value}, scoring {split} episodes "
            f"({len(chunks.holdout_episodes) or len(chunks.train_episodes)} episodes)"
        )
        rows = []
        for name, label, params, tokenizer in entries:
            bar.set_postfix_str(f"{repo_id} {label}")
            if params is not None:
                try:
                    tokenizer = create_tokenizer(name, **params).fit(chunks.train)
                except ActokError as exc:
                    if len(entries) * len(datasets) == 1:
                        raise
                    # One cell of a comparison that cannot be fitted (e.g. a scale too fine for its vocabulary)
                    # is reported and skipped; the others still run.
                    skipped.append(f"{repo_id} {label}: {exc}")
                    sys.stderr.write(f"warning: skipped {repo_id} {label}: {exc}\n")
                    bar.update()
                    continue
            metrics = benchmark_tokenizer(
                tokenizer, chunks, args.max_chunks_for_reconstruction, seed=args.seed, train_dct_variances=dct_variances
            )
            result = {
                "config": {
                    **chunks.config_dict(),
                    "repo_id": repo_id,
                    "root": str(reader.root),
                    "action_tokenizer_path": args.action_tokenizer_path,
                    "tokenizer": name,
                    "tokenizer_params": tokenizer.get_params(),
                    "max_chunks_for_reconstruction": args.max_chunks_for_reconstruction,
                    "output_dir": args.output_dir,
                    "normalization": chunks.normalizer.to_dict(),
                    "normalization_stats_source": chunks.stats_source,
                    "holdout_episodes": chunks.holdout_episodes,
                    "actok_version": __version__,
                },
                "metrics": metrics,
            }
            filename = results_filename(repo_id, label if len(entries) > 1 else None)
            path = write_result(args.output_dir, filename, result)
            rows.append({"name": label, "metrics": metrics, "path": path})
            bar.update()
        bar.clear()
        print()
        print(comparison_table(rows) if rows else f"no results on {repo_id}: every cell was skipped")
        print()
        for row in rows:
            print(f"Results written to {row['path']}")
    bar.close()
    if skipped:
        print(f"{len(skipped)} cell(s) skipped:\n  " + "\n  ".join(skipped))
    if args.report:
        from actok.bench.report import write_report

        md, page = write_report(Path(args.output_dir), overwrite=args.overwrite)
        print(f"wrote {md}\nwrote {page}")
    return 0


def _bench_chunks(reader: LeRobotDatasetReader, config: ChunkConfig, saved: dict | None, force: bool) -> ChunkSet:
    chunks = build_chunks(reader, config)
    if saved is not None:
        problems = _pipeline_mismatches(saved, chunks)
        if problems and not force:
            raise ActokError(
                f"the saved tokenizer's pipeline differs from the requested one ({'; '.join(problems)}); pass --force to benchmark anyway"
            )
        # Score in the space the tokenizer was trained in: its own recorded normalization stats.
        normalizer = Normalizer.from_dict(saved["normalization"])
        widths = {len(v) for v in normalizer.stats.values()}
        if widths <= {len(chunks.encoded_dims)}:  # a --force run on other dims keeps the computed stats
            chunks.normalizer = normalizer
            chunks.train, chunks.holdout = (
                normalizer.normalize(chunks.train_raw),
                normalizer.normalize(chunks.holdout_raw),
            )
    return chunks


def cmd_report(args: argparse.Namespace) -> int:
    from actok.bench.report import write_report

    output = Path(args.output_dir or args.results_dir)
    with output_lock(output):
        md, page = write_report(Path(args.results_dir), output, overwrite=args.overwrite)
    print(f"wrote {md}\nwrote {page}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _close_progress_bars() -> None:
    """Close progress bars still on screen, so an error or "interrupted" is one clean line on stderr."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _fail(command: str, message: str, code: int) -> int:
    _close_progress_bars()
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
    commands = {
        "train": cmd_train,
        "bench": cmd_bench,
        "check": cmd_check,
        "report": cmd_report,
        "casestudy": cmd_casestudy,
    }
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return commands[args.command](args)
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
