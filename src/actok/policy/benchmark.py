"""The policy benchmark as a grid: one cell per (contender, training seed), run by `actok.executor.run_grid`.

`run_cell` is the task function (importable, so Ray can run it): train, score open loop, roll out, and return
the results.json record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actok.errors import ActokError
from actok.outputs import write_file_atomically
from actok.policy.data import PolicyData
from actok.policy.policies import HEADS, PolicySpec, TrainSettings

EXTRA_POLICIES = ("continuous", "noop")


@dataclass
class Evaluation:
    """How every contender is scored (the same for all)."""

    env: str | None = "pusht"  # None: open loop only
    episodes: int = 50
    first_seed: int = 0  # rollouts use seeds first_seed .. first_seed + episodes - 1
    n_action_steps: int = 8
    max_steps: int = 300
    decode_policy: str = "relaxed"
    open_loop_chunks: int = 1000  # held-out examples scored open loop (a seeded subset)


@dataclass
class Cell:
    spec: PolicySpec
    seed: int
    data: PolicyData
    settings: TrainSettings
    evaluation: Evaluation
    device: str = "cpu"
    progress: bool = True
    config: dict[str, Any] = field(default_factory=dict)  # recorded as is


def _sweep_specs(sweep: str) -> list[PolicySpec]:
    """One grammar for --sweep across commands: bench's (`actok.bench.sweep`)."""
    from actok.bench.sweep import sweep_tokenizers

    return [PolicySpec(cell.label, tokenizer=cell.name, params=dict(cell.params)) for cell in sweep_tokenizers(sweep)]


def build_specs(tokenizers: str, sweeps: list[str], heads: list[str]) -> list[PolicySpec]:
    """`--tokenizers` (registered names, saved folders, `continuous`, `noop`), `--sweep` cells and `--heads` ->
    contenders; `continuous` and `noop` are always included, once."""
    from actok.tokenizers import available_tokenizers, get_tokenizer_class

    bad = [h for h in heads if h not in HEADS]
    if bad or not heads:
        raise ActokError(f"unknown head {', '.join(bad) or '(none given)'}; choose from: {', '.join(HEADS)}")
    entries = [t.strip() for t in tokenizers.split(",") if t.strip()]
    if not entries and not sweeps:
        raise ActokError(
            "--tokenizers is empty; give tokenizer names or folders (e.g. fast,klt), continuous or noop, or a --sweep"
        )
    base: list[PolicySpec] = []
    for entry in entries:
        if entry in EXTRA_POLICIES:
            continue
        if entry in available_tokenizers():  # a registered name wins over a folder of the same name
            get_tokenizer_class(entry)  # its optional extra is installed
            base.append(PolicySpec(entry, tokenizer=entry))
        elif Path(entry).is_dir():
            base.append(PolicySpec(Path(entry).name, path=entry))
        else:
            raise ActokError(
                f"{entry!r} is neither a registered tokenizer nor a tokenizer folder; valid names: "
                f"{', '.join([*available_tokenizers(), *EXTRA_POLICIES])}"
            )
    for sweep in sweeps:
        base += _sweep_specs(sweep)
    specs = [PolicySpec(name, kind=name) for name in EXTRA_POLICIES]  # first: cheap, and the reference points
    specs += [
        PolicySpec(s.label if h == HEADS[0] else f"{s.label}/{h}", "tokens", s.tokenizer, s.params, s.path, h)
        for s in base
        for h in heads
    ]
    labels = [s.label for s in specs]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ActokError(f"the same policy is requested twice ({', '.join(repeated)}); list each tokenizer once")
    return specs


def run_cell(cell: Cell) -> dict[str, Any]:
    """Train and score one contender with one seed -> its results.json record."""

    from actok.policy.evaluate import closed_loop, open_loop
    from actok.policy.policies import train_policy

    spec, ev, data = cell.spec, cell.evaluation, cell.data
    policy, log, train_time = train_policy(
        spec, data, cell.settings, cell.seed, cell.device, ev.decode_policy, cell.progress
    )
    rng_idx = np.random.default_rng(cell.seed).permutation(data.holdout)[: ev.open_loop_chunks]
    scores = open_loop(policy, data, np.sort(rng_idx)) if len(rng_idx) else None
    closed = None
    if ev.env is not None:
        seeds = list(range(ev.first_seed, ev.first_seed + ev.episodes))
        closed = closed_loop(policy, data, ev.env, seeds, ev.n_action_steps, ev.max_steps, cell.progress)
    tokenizer = policy.tokenizer
    return {
        "policy": spec.label,
        "kind": spec.kind,
        "head": spec.head if spec.kind == "tokens" else None,
        "tokenizer": spec.tokenizer or spec.path,
        "tokenizer_params": spec.params,
        "seed": cell.seed,
        "vocab_size": tokenizer.vocab_size if tokenizer is not None else None,
        "open_loop": scores,
        "closed_loop": closed,
        "train_time_sec": train_time,
        "mean_tokens": (scores or {}).get("mean_tokens", 0.0),
        "optimization_steps": log.steps if log else 0,
        "num_parameters": sum(p.numel() for p in policy.model.parameters()) if policy.model is not None else 0,
        "learning_curve": log.history if log else [],
        "config": {**cell.config, "train": asdict(cell.settings), "evaluation": asdict(ev), "device": cell.device},
    }


def write_results(path: Path, records: list[dict]) -> None:
    """results.json, replaced whole after every finished cell (an interrupted run keeps what it finished)."""
    write_file_atomically(path, json.dumps(records, indent=1) + "\n", overwrite=True)
