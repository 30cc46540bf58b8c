"""`actok policy` / `python -m actok.policy`: which tokenizer makes the better policy (same model, data, budget).

Trains the same small transformer on each tokenizer's ids (plus a continuous regression head and a noop floor),
scores it open loop on held-out episodes and closed loop in the PushT simulator, and writes results.json and
figures to --output-dir.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from actok.cli_args import OneLineParser, add_flag, module_main
from actok.errors import ActokError
from actok.policy import RESULTS_FILE

DEFAULT_TOKENIZERS = "binning,fast,klt,bspline"
# --quick-test: every output in well under 3 minutes on 2 cores; its numbers only check the pipeline.
QUICK_TEST = {"num_epochs": 1, "episodes": 4, "max_steps": 40, "max_episodes": 24, "open_loop_chunks": 200}
DEFAULTS = {"num_epochs": 30, "episodes": 50, "max_steps": 300, "max_episodes": None, "open_loop_chunks": 1000}
QUICK_TEST_NOTE = (
    "QUICK TEST: 1 epoch on 24 episodes and 4 short rollouts; the numbers only check that the pipeline runs "
    "and say nothing about the tokenizers"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    def flag(name: str, **kw: Any) -> None:
        add_flag(p, name, **kw)

    flag("root", default=None, help="LeRobot dataset folder (default: the bundled pusht_state)")
    flag(
        "tokenizers",
        default=DEFAULT_TOKENIZERS,
        help=f"registered names or saved folders (default {DEFAULT_TOKENIZERS}); continuous and noop are always added",
    )
    flag(
        "sweep",
        action="append",
        default=[],
        help="NAME:KEY=V1,V2[;KEY2=...] grid of a tokenizer, as in bench (repeatable)",
    )
    flag(
        "heads",
        default="autoregressive",
        help="autoregressive and/or parallel (fixed-length tokenizers), comma-separated",
    )
    flag(
        "env",
        default="auto",
        help="pusht (closed loop in gym-pusht), none (open loop only) or auto (pusht for a pusht dataset with a 5-D state)",
    )
    flag("episodes", type=int, default=None, help="closed-loop episodes per policy, seeded resets (default 50)")
    flag("first_seed", type=int, default=0, help="rollout seeds are FIRST_SEED .. FIRST_SEED+EPISODES-1 (default 0)")
    flag("n_action_steps", type=int, default=8, help="actions executed from each predicted chunk (default 8)")
    flag("max_steps", type=int, default=None, help="control steps per episode (default 300)")
    flag(
        "decode_policy",
        default="relaxed",
        help="what an invalid token sequence does: relaxed, zeros or hold (default relaxed)",
    )
    flag("action_horizon", type=int, default=16, help="actions per chunk H (default 16)")
    flag("n_obs", type=int, default=2, help="observations the policy sees (default 2)")
    flag("num_epochs", type=int, default=None, help="training epochs, the same for every policy (default 30)")
    flag("batch_size", type=int, default=256, help="training batch size (default 256)")
    flag("learning_rate", type=float, default=3e-3, help="peak AdamW learning rate, cosine-annealed (default 3e-3)")
    flag("n_layer", type=int, default=2, help="transformer layers (default 2)")
    flag("n_embd", type=int, default=64, help="transformer width, a multiple of 4 heads (default 64)")
    flag("dropout", type=float, default=0.0, help="dropout in attention and MLP (default 0)")
    flag("seeds", default="0", help="training seeds, comma-separated (default 0)")
    flag("holdout_fraction", type=float, default=0.1, help="share of episodes held out (default 0.1)")
    flag("max_episodes", type=int, default=None, help="use only the first N episodes of the dataset")
    flag("open_loop_chunks", type=int, default=None, help="held-out examples scored open loop (default 1000)")
    flag("device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:N or mps")
    flag("engine", default="local", help="local or ray: where the grid of (policy, seed) cells runs")
    flag("ray_address", default=None, help="join this Ray cluster (with --engine ray; default: start one)")
    flag("output_dir", default="outputs/policy", help="output folder (default outputs/policy)")
    flag("overwrite", action="store_true", help="replace the results already in --output-dir")
    flag("quick_test", action="store_true", help="tiny run that writes every output (pipeline check only)")
    flag("skip_training", action="store_true", help="only redraw the figures from an existing results.json")
    flag("no_progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="actok policy", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ActokError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Flags over the default (or --quick-test) values, checked."""
    from actok.policy.policies import DECODE_POLICIES

    base = QUICK_TEST if args.quick_test else DEFAULTS
    out = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    for name in ("episodes", "max_steps", "num_epochs", "max_episodes", "open_loop_chunks"):
        _positive(name, out[name])
    for name in ("n_action_steps", "action_horizon", "n_obs", "batch_size", "n_layer", "n_embd"):
        _positive(name, getattr(args, name))
    if args.first_seed < 0:
        raise ActokError(f"--first-seed must be >= 0 (the simulator's seeds are non-negative), got {args.first_seed}")
    if args.n_action_steps > args.action_horizon:
        raise ActokError(f"--n-action-steps {args.n_action_steps} exceeds --action-horizon {args.action_horizon}")
    if args.decode_policy not in DECODE_POLICIES:
        raise ActokError(f"unknown decode policy {args.decode_policy!r}; choose from: {', '.join(DECODE_POLICIES)}")
    if args.n_embd % 4:
        raise ActokError(f"--n-embd must be a multiple of the 4 attention heads, got {args.n_embd}")
    if not 0.0 <= args.dropout < 1.0 or not args.learning_rate > 0:
        raise ActokError(
            f"--dropout must be in [0, 1) and --learning-rate > 0, got {args.dropout}, {args.learning_rate}"
        )
    if not 0.0 < args.holdout_fraction < 1.0:
        raise ActokError(f"--holdout-fraction must be in (0, 1), got {args.holdout_fraction}")
    try:
        out["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ActokError(f"--seeds must be comma-separated integers such as 0,1,2, got {args.seeds!r}") from None
    if not out["seeds"] or min(out["seeds"]) < 0:
        raise ActokError(f"--seeds must be non-negative integers such as 0,1,2, got {args.seeds!r}")
    twice = sorted({s for s in out["seeds"] if out["seeds"].count(s) > 1})
    if twice:
        raise ActokError(f"--seeds lists seed {twice[0]} more than once ({args.seeds!r}): each seed trains once")
    return out


def _dataset(args: argparse.Namespace):
    from actok.data import LeRobotDatasetReader

    root = Path(args.root) if args.root else Path(str(resources.files("actok") / "example_data" / "pusht_state"))
    return LeRobotDatasetReader(root)


def _environment(args: argparse.Namespace, reader) -> str | None:
    from actok.policy.evaluate import ENVIRONMENTS

    valid = ["auto", "none", *ENVIRONMENTS]
    if args.env not in valid:
        raise ActokError(f"unknown env {args.env!r}; choose from: {', '.join(valid)}")
    shape = list(reader.info.get("features", {}).get("observation.state", {}).get("shape", []))
    if args.env == "auto":
        is_pusht = reader.info.get("robot_type") == "pusht" and shape == [ENVIRONMENTS["pusht"]["state_dim"]]
        return "pusht" if is_pusht else None
    if args.env != "none" and shape != [ENVIRONMENTS[args.env]["state_dim"]]:
        raise ActokError(
            f"--env {args.env} needs a dataset whose observation.state is the simulator's "
            f"{ENVIRONMENTS[args.env]['state_dim']}-D state (e.g. the bundled pusht_state); {reader.repo_id} has "
            f"{shape or 'no state'}"
        )
    return None if args.env == "none" else args.env


def _redraw(output: Path) -> int:
    from actok.bench.report import read_policy_records
    from actok.policy.plots import draw_figures, summary_table

    results = output / RESULTS_FILE
    if not results.is_file():
        raise ActokError(f"--skip-training needs an existing {results}; run without --skip-training first")
    records = read_policy_records(results)
    for path in draw_figures(records, output):
        print(f"wrote {path}")
    print(summary_table(records))
    return 0


def run(args: argparse.Namespace) -> int:
    from actok.executor import check_engine
    from actok.outputs import check_output_location, output_lock
    from actok.policy.benchmark import build_specs

    check_engine(args.engine, args.ray_address)
    for name in ("root", "output_dir"):
        if getattr(args, name) is not None and not getattr(args, name).strip():
            raise ActokError(f"--{name.replace('_', '-')} is empty; give a folder path")
    output = check_output_location(args.output_dir, [args.root] if args.root else [], replaces_folder=False)
    if args.skip_training:
        return _redraw(output)
    settings = _settings(args)
    specs = build_specs(args.tokenizers, args.sweep, [h.strip() for h in args.heads.split(",") if h.strip()])
    _refuse_existing(output, args.overwrite)  # at once, before any work
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ActokError("actok policy needs PyTorch: pip install 'actok[learned]' -c constraints.txt") from None
    with output_lock(output):
        _refuse_existing(output, args.overwrite)  # again under the lock: another run may have finished meanwhile
        return _run(args, output, settings, specs)


def _refuse_existing(output: Path, overwrite: bool) -> None:
    from actok.policy.plots import FIGURES

    existing = [output / name for name in (RESULTS_FILE, *FIGURES) if (output / name).exists()]
    if existing and not overwrite:
        raise ActokError(
            f"{existing[0]} already exists; pass --overwrite to replace it, --skip-training to redraw its "
            "figures, or choose another --output-dir"
        )


def _run(args: argparse.Namespace, output: Path, settings: dict[str, Any], specs: list) -> int:
    from actok.policy.benchmark import Cell, Evaluation
    from actok.policy.data import load_policy_data
    from actok.policy.evaluate import ENVIRONMENTS, make_env
    from actok.policy.policies import TrainSettings, fitted_tokenizer
    from actok.tokenizers.learned import resolve_device

    device = str(resolve_device(args.device))
    reader = _dataset(args)
    env = _environment(args, reader)
    if env is not None:
        make_env(env).close()  # the simulator is installed: fail now, not after training
    angle_dims = ENVIRONMENTS[env]["angle_dims"] if env else []
    data = load_policy_data(
        reader, args.action_horizon, args.n_obs, args.holdout_fraction, 0, angle_dims, settings["max_episodes"]
    )
    for spec in (s for s in specs if s.path is not None):
        fitted_tokenizer(spec, data)  # a saved folder that does not fit these chunks: fail before any training
    train = TrainSettings(
        num_epochs=settings["num_epochs"],
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        n_layer=args.n_layer,
        n_embd=args.n_embd,
        dropout=args.dropout,
    )
    evaluation = Evaluation(
        env=env,
        episodes=settings["episodes"],
        first_seed=args.first_seed,
        n_action_steps=args.n_action_steps,
        max_steps=settings["max_steps"],
        decode_policy=args.decode_policy,
        open_loop_chunks=settings["open_loop_chunks"],
    )
    config = {
        "dataset": str(reader.root),
        "repo_id": reader.repo_id,
        "condition": data.condition_source,
        "n_obs": args.n_obs,
        "action_horizon": args.action_horizon,
        "train_episodes": data.n_train_episodes,
        "holdout_episodes": data.n_holdout_episodes,
        "quick_test": bool(args.quick_test),
    }
    if args.quick_test:
        print(QUICK_TEST_NOTE)
    print(
        f"policy benchmark on {reader.repo_id}: {len(specs)} policies x seeds {settings['seeds']}; "
        f"{data.n_train_episodes} train / {data.n_holdout_episodes} held-out episodes ({len(data.train)} examples); "
        f"H={data.horizon}, conditioned on {data.condition_source}; {train.num_epochs} epochs; "
        f"closed loop: {env or 'none'}; device {device}"
    )
    cells = [
        Cell(spec, seed, data, train, evaluation, device, not args.no_progress, config)
        for seed in settings["seeds"]
        for spec in specs
    ]
    return _run_grid(args, cells, output)


def _run_grid(args: argparse.Namespace, cells: list, output: Path) -> int:
    from tqdm.auto import tqdm

    from actok.executor import run_grid
    from actok.policy.benchmark import run_cell, write_results
    from actok.policy.plots import draw_figures, summary_table

    started = time.perf_counter()
    finished, failed = {}, []  # cell index -> record: results.json keeps the cells' order under Ray too
    bar = tqdm(total=len(cells), desc="policies", disable=args.no_progress, file=sys.stderr)
    for i, outcome in run_grid(run_cell, cells, engine=args.engine, ray_address=args.ray_address):
        cell = cells[i]
        bar.update()
        if isinstance(outcome, ActokError):
            failed.append(f"{cell.spec.label} (seed {cell.seed}): {outcome}")
            print(f"warning: skipped {failed[-1]}", file=sys.stderr)
            continue
        if isinstance(outcome, Exception):
            raise outcome
        finished[i] = outcome
        records = [finished[j] for j in sorted(finished)]
        closed = outcome["closed_loop"]
        shown = f"coverage {closed['coverage_mean']:.2f}" if closed else f"RMSE {outcome['open_loop']['rmse']:.3g}"
        bar.set_postfix_str(f"{cell.spec.label}: {shown}")
        write_results(output / RESULTS_FILE, records)
    bar.close()
    if not finished:
        raise ActokError("no policy could be trained: " + "; ".join(failed))
    for path in [output / RESULTS_FILE, *draw_figures(records, output)]:
        print(f"wrote {path}")
    print(summary_table(records))
    if failed:
        print(f"skipped: {'; '.join(failed)}")
    if args.quick_test:
        print(QUICK_TEST_NOTE)
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return module_main("policy", build_parser, run, argv)
