"""`actok casestudy` / `python -m actok.casestudy`: the FAST paper's toy case study (Figure 3).

Naive per-step tokens vs FAST (or any registered tokenizer) for an autoregressive model predicting cubic
splines at increasing sampling rates. Writes results.json, marginal_information.json and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from actok.cli_args import OneLineParser, add_flag, module_main
from actok.errors import ActokError

DEFAULT_SAMPLING_RATES = (25, 50, 100, 200, 400, 800)
RESULTS_FILE = "results.json"
MARGINAL_FILE = "marginal_information.json"
# --quick-test: every output file, a few minutes at most on 2 CPU cores (flags given explicitly still win).
QUICK_TEST = {"sampling_rates": [25, 100], "num_sequences": 150, "num_epochs": 10}
QUICK_TEST_NOTE = (
    "QUICK TEST: 150 splines and 10 epochs only check that the pipeline runs; its MSEs and invalid fractions "
    "(FAST decodes are mostly invalid this early) say nothing about the tokenizers"
)
DEFAULTS = {"sampling_rates": list(DEFAULT_SAMPLING_RATES), "num_sequences": 1000, "num_epochs": 100}


def add_arguments(p: argparse.ArgumentParser) -> None:
    def flag(name: str, **kw: Any) -> None:
        add_flag(p, name, **kw)

    flag(
        "sampling_rates",
        type=int,
        nargs="+",
        default=None,
        help="samples per sequence H (default 25 50 100 200 400 800)",
    )
    flag("num_sequences", type=int, default=None, help="splines generated, 20%% held out for testing (default 1000)")
    flag(
        "num_epochs", type=int, default=None, help="training epochs; the same number of steps at every H (default 100)"
    )
    flag("results_dir", default="results", help="output folder (default results)")
    flag(
        "quick_test",
        action="store_true",
        help="reduced run that writes every output (H 25 and 100, 150 splines, 10 epochs)",
    )
    flag("skip_training", action="store_true", help="only redraw the figures from an existing results.json")
    flag(
        "tokenizers",
        default="naive,fast",
        help="comma-separated tokenizers: naive or any registered name (default naive,fast)",
    )
    flag("device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:N or mps")
    flag("batch_size", type=int, default=32, help="training batch size (default 32)")
    flag("seed", type=int, default=0, help="seed of the data, split and model (default 0)")
    flag("overwrite", action="store_true", help="replace results already in --results-dir")
    flag("no_progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="actok casestudy", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    base = QUICK_TEST if args.quick_test else DEFAULTS
    out = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    if any(h < 4 for h in out["sampling_rates"]):
        raise ActokError(f"sampling rates must be >= 4, got {out['sampling_rates']}")
    if out["num_sequences"] < 10:
        raise ActokError(f"--num-sequences must be >= 10, got {out['num_sequences']}")
    if out["num_epochs"] < 1:
        raise ActokError(f"--num-epochs must be >= 1, got {out['num_epochs']}")
    if args.batch_size < 1:
        raise ActokError(f"--batch-size must be >= 1, got {args.batch_size}")
    out["sampling_rates"] = sorted(set(out["sampling_rates"]))
    return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def marginal_information_table(names: list[str], rates: list[int], num_sequences: int, seed: int) -> list[dict]:
    """Marginal information of each tokenizer's tokens on the training splines at each H (no model involved)."""
    from actok.casestudy.analysis import marginal_information
    from actok.casestudy.data import conditioning_points, sample_splines, train_test_split
    from actok.casestudy.experiment import make_tokenizer

    conditions = conditioning_points(num_sequences, seed)
    train_idx, _ = train_test_split(num_sequences, 0.2, seed)
    rows = []
    for horizon in rates:
        values = sample_splines(conditions, horizon).values[train_idx]
        lo, hi = values.min(), values.max()
        normalized = (2.0 * (values - lo) / (hi - lo) - 1.0)[:, :, None]
        for name in names:
            ids = make_tokenizer(name).fit(normalized).encode(normalized)
            rows.append({"tokenizer": name, "sampling_rate": horizon, **marginal_information(ids)})
    return rows


def draw_figures(records: list[dict], marginal: list[dict], results_dir: Path) -> list[Path]:
    from actok.casestudy import plots

    written = [results_dir / "performance_vs_sampling_rate.png", results_dir / "marginal_information_analysis.png"]
    plots.plot_performance(records, written[0])
    plots.plot_marginal_information(marginal, written[1])
    for horizon in sorted({r["sampling_rate"] for r in records}):
        written.append(results_dir / f"predictions_H{horizon}.png")
        plots.plot_predictions(records, horizon, written[-1])
    written.append(results_dir / "figure3_replica.png")
    plots.plot_figure3(records, written[-1])
    return written


def print_summary(records: list[dict], marginal: list[dict]) -> None:
    from actok.casestudy.analysis import PUBLISHED_DIFF_ENTROPY_BITS, PUBLISHED_SAMPLING_RATES

    published = dict(zip(PUBLISHED_SAMPLING_RATES, PUBLISHED_DIFF_ENTROPY_BITS, strict=True))
    print(f"{'tokenizer':<12}{'H':>6}{'MSE':>12}{'invalid':>9}{'tokens':>9}{'train s':>9}")
    for r in sorted(records, key=lambda r: (r["tokenizer"], r["sampling_rate"])):
        print(
            f"{r['tokenizer']:<12}{r['sampling_rate']:>6}{r['mse']:>12.4g}{r['invalid_fraction']:>9.1%}"
            f"{r['mean_tokens']:>9.1f}{r['train_time_sec']:>9.1f}"
        )
    print("marginal information of naive tokens (entropy of consecutive differences, bits; ours vs published):")
    for row in marginal:
        if row["tokenizer"] == "naive":
            ref = published.get(row["sampling_rate"])
            ref_text = f"{ref:.2f}" if ref is not None else "n/a"
            print(
                f"  H={row['sampling_rate']:<5} {row['diff_entropy_bits']:.2f} vs {ref_text}"
                f"   zero differences {row['zero_diff_share']:.3f}"
            )


def run(args: argparse.Namespace) -> int:
    results_dir = Path(args.results_dir)
    results_path = results_dir / RESULTS_FILE
    if args.skip_training:
        if not results_path.is_file():
            raise ActokError(f"--skip-training needs an existing {results_path}; run without --skip-training first")
        records = json.loads(results_path.read_text())
        marginal_path = results_dir / MARGINAL_FILE
        if marginal_path.is_file():
            marginal = json.loads(marginal_path.read_text())
        else:
            cfg = records[0]["config"]
            names = sorted({r["tokenizer"] for r in records})
            rates = sorted({r["sampling_rate"] for r in records})
            marginal = marginal_information_table(names, rates, cfg["num_sequences"], cfg["seed"])
        for path in draw_figures(records, marginal, results_dir):
            print(f"wrote {path}")
        print_summary(records, marginal)
        return 0

    try:
        import torch  # noqa: F401
    except ImportError:
        raise ActokError(
            "the case study needs PyTorch: pip install 'actok[learned]' -c constraints.txt (pins the CPU build)"
        ) from None
    from actok.casestudy.data import conditioning_points, sample_splines, train_test_split
    from actok.casestudy.experiment import TrainConfig, resolve_tokenizer_names, run_one
    from actok.tokenizers.learned import resolve_device

    settings = _settings(args)
    names = resolve_tokenizer_names(args.tokenizers)
    device = resolve_device(args.device)
    if results_path.exists() and not args.overwrite:
        raise ActokError(
            f"{results_path} already exists; pass --overwrite to replace it, --skip-training to redraw its "
            "figures, or choose another --results-dir"
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(num_epochs=settings["num_epochs"], batch_size=args.batch_size, seed=args.seed)
    conditions = conditioning_points(settings["num_sequences"], args.seed)
    train_idx, test_idx = train_test_split(settings["num_sequences"], 0.2, args.seed)
    run_config = {**asdict(config), "num_sequences": settings["num_sequences"], "device": str(device)}
    print(
        f"case study: tokenizers {', '.join(names)}; H {settings['sampling_rates']}; {len(train_idx)} train / "
        f"{len(test_idx)} test splines; {config.num_epochs} epochs of batch {config.batch_size}; device {device}"
    )
    if args.quick_test:
        print(QUICK_TEST_NOTE)
    records: list[dict] = []
    started = time.perf_counter()
    for horizon in settings["sampling_rates"]:
        splines = sample_splines(conditions, horizon)
        for name in names:
            result = run_one(
                name, splines.subset(train_idx), splines.subset(test_idx), config, device, not args.no_progress
            )
            records.append({**result.to_dict(), "config": run_config})
            print(
                f"  {name:<10} H={horizon:<4} MSE {result.mse:.4g}  invalid {result.invalid_fraction:.1%}  "
                f"tokens {result.mean_tokens:.1f}  train {result.train_time_sec:.0f}s",
                flush=True,
            )
            _write_json(results_path, records)  # after every run: an interrupted study keeps what it finished
    marginal = marginal_information_table(names, settings["sampling_rates"], settings["num_sequences"], args.seed)
    _write_json(results_dir / MARGINAL_FILE, marginal)
    for path in [results_path, results_dir / MARGINAL_FILE, *draw_figures(records, marginal, results_dir)]:
        print(f"wrote {path}")
    print_summary(records, marginal)
    if args.quick_test:
        print(QUICK_TEST_NOTE)
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return module_main("casestudy", build_parser, run, argv)
