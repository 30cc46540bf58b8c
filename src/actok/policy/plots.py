"""Figures and the summary table of a policy benchmark, made from results.json records alone.

Records of the same policy with different training seeds are pooled: closed-loop episodes of every seed
together (mean coverage and success with 95% intervals over all of them), open-loop numbers averaged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from actok.policy.evaluate import mean_ci95, paired_difference_ci95, wilson_ci95

FIGURES = ("coverage_vs_tokens.png", "open_loop_error.png", "learning_curves.png")


def pooled(records: list[dict]) -> list[dict[str, Any]]:
    """One row per policy (first-seen order): seeds pooled as the module docstring says."""
    rows = []
    for label in dict.fromkeys(r["policy"] for r in records):
        group = [r for r in records if r["policy"] == label]
        row: dict[str, Any] = {
            "policy": label,
            "kind": group[0]["kind"],
            "seeds": [r["seed"] for r in group],
            "mean_tokens": float(np.mean([r["mean_tokens"] for r in group])),
            "train_time_sec": float(np.mean([r["train_time_sec"] for r in group])),
        }
        opened = [r["open_loop"] for r in group if r["open_loop"]]
        for key in (
            "rmse",
            "p95_abs_error",
            "max_abs_error",
            "invalid_decode_fraction",
            "token_accuracy",
            "reconstruction_rmse",
            "inference_ms_per_chunk",
        ):
            values = [o[key] for o in opened if o.get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
        closed = [r["closed_loop"] for r in group if r["closed_loop"]]
        if closed:
            coverage = np.concatenate([c["episode_coverage"] for c in closed])
            successes = int((coverage > 0.95).sum())
            row.update(
                episodes=len(coverage),
                coverage=coverage,
                coverage_mean=float(coverage.mean()),
                coverage_ci95=mean_ci95(coverage),
                seed_coverage=[c["coverage_mean"] for c in closed],
                success_rate=successes / len(coverage),
                success_ci95=wilson_ci95(successes, len(coverage)),
                invalid_per_episode=float(np.mean([c["invalid_per_episode"] for c in closed])),
                step_ms=float(np.mean([c["step_ms"] for c in closed])),
            )
        rows.append(row)
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _versus(row: dict, reference: dict | None) -> str:
    """The paired coverage difference to the reference policy over the same episodes (seeds and rollout seeds
    must match), `*` when its interval excludes 0."""
    if (
        reference is None
        or row is reference
        or "coverage" not in row
        or len(row["coverage"]) != len(reference["coverage"])
    ):
        return "–"
    mean, (lo, hi) = paired_difference_ci95(row["coverage"], reference["coverage"])
    return f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]" + ("*" if lo > 0 or hi < 0 else "")


def table_rows(records: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table (seeds pooled)."""
    header = [
        "policy",
        "seeds",
        "tokens",
        "coverage (95% CI)",
        "success (95% CI)",
        "invalid/ep",
        "step ms",
        "open-loop RMSE",
        "p95",
        "recon. RMSE",
        "token acc.",
        "train s",
        "coverage − continuous (paired 95% CI)",
    ]
    cells = []
    rows = pooled(records)
    reference = next((r for r in rows if r["policy"] == "continuous" and "coverage" in r), None)
    for row in rows:
        if "coverage_mean" in row:
            lo, hi = row["coverage_ci95"]
            slo, shi = row["success_ci95"]
            closed = [
                f"{row['coverage_mean']:.2f} [{lo:.2f}, {hi:.2f}]",
                f"{row['success_rate']:.2f} [{slo:.2f}, {shi:.2f}]",
                f"{row['invalid_per_episode']:.1f}",
                f"{row['step_ms']:.2f}",
            ]
        else:
            closed = ["–"] * 4
        cells.append(
            [
                row["policy"],
                str(len(row["seeds"])),
                f"{row['mean_tokens']:.1f}",
                *closed,
                _fmt(row["rmse"], ".2f"),
                _fmt(row["p95_abs_error"], ".2f"),
                _fmt(row["reconstruction_rmse"], ".2f"),
                _fmt(row["token_accuracy"], ".3f"),
                f"{row['train_time_sec']:.0f}",
                _versus(row, reference),
            ]
        )
    return header, cells


def summary_table(records: list[dict]) -> str:
    """The table as markdown (printed at the end of a run and used by the report)."""
    header, cells = table_rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(c) + " |" for c in cells)])


def _colors(labels: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def coverage_figure(records: list[dict]):
    """Closed-loop mean coverage (95% CI) against mean tokens per chunk; continuous and noop as bands."""
    import matplotlib.pyplot as plt

    rows = [r for r in pooled(records) if "coverage_mean" in r]
    colors = _colors([r["policy"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    seen: dict[int, int] = {}  # points at the same token count (a bin sweep) are spread apart to stay visible
    for row in rows:
        lo, hi = row["coverage_ci95"]
        if row["kind"] == "tokens":
            k = seen[round(row["mean_tokens"])] = seen.get(round(row["mean_tokens"]), -1) + 1
            ax.errorbar(
                row["mean_tokens"] + 0.3 * k,
                row["coverage_mean"],
                yerr=[[row["coverage_mean"] - lo], [hi - row["coverage_mean"]]],
                fmt="o",
                capsize=4,
                color=colors[row["policy"]],
                label=row["policy"],
            )
        else:
            ax.axhspan(lo, hi, color=colors[row["policy"]], alpha=0.2)
            ax.axhline(row["coverage_mean"], color=colors[row["policy"]], ls="--", label=f"{row['policy']} (no tokens)")
    ax.set(xlabel="mean tokens per chunk", ylabel="mean max coverage (95% CI)", ylim=(0, 1))
    ax.set_title("closed loop: policy quality vs tokens per chunk")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    fig.tight_layout()
    return fig


def open_loop_figure(records: list[dict]):
    """Held-out RMSE and p95 absolute error (raw units) per policy, with the tokenizer's own reconstruction RMSE."""
    import matplotlib.pyplot as plt

    rows = [r for r in pooled(records) if r["rmse"] is not None]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    ax.bar(x - 0.27, [r["rmse"] for r in rows], 0.27, label="policy RMSE")
    ax.bar(x, [r["p95_abs_error"] for r in rows], 0.27, label="policy p95 |error|")
    ax.bar(x + 0.27, [r["reconstruction_rmse"] or 0.0 for r in rows], 0.27, label="tokenizer reconstruction RMSE")
    ax.set_xticks(x, [r["policy"] for r in rows], rotation=30, ha="right")
    ax.set(ylabel="raw action units", title="open loop on held-out episodes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curve_figure(records: list[dict]):
    """Training and held-out loss per epoch, one panel per trained policy (every seed drawn)."""
    import matplotlib.pyplot as plt

    trained = [r for r in records if r["learning_curve"]]
    labels = list(dict.fromkeys(r["policy"] for r in trained)) or ["(none trained)"]
    cols = min(3, len(labels))
    nrows = -(-len(labels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=False):
        for r in (r for r in trained if r["policy"] == label):
            epochs = [h["epoch"] for h in r["learning_curve"]]
            ax.plot(epochs, [h["train_loss"] for h in r["learning_curve"]], ".-", color="C0", alpha=0.8)
            if "val_loss" in r["learning_curve"][0]:
                ax.plot(epochs, [h["val_loss"] for h in r["learning_curve"]], ".-", color="C1", alpha=0.8)
        unit = "MSE" if label == "continuous" else "cross-entropy"
        ax.set(title=label, xlabel="epoch", ylabel=unit)
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    axes.flat[0].legend(["train", "held-out"], fontsize=8)
    fig.tight_layout()
    return fig


def figures(records: list[dict]) -> dict[str, Any]:
    """File name -> matplotlib figure (the coverage figure only when there are closed-loop results)."""
    out = {}
    if any(r["closed_loop"] for r in records):
        out[FIGURES[0]] = coverage_figure(records)
    out[FIGURES[1]] = open_loop_figure(records)
    out[FIGURES[2]] = learning_curve_figure(records)
    return out


def draw_figures(records: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, fig in figures(records).items():
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)
        written.append(folder / name)
    return written
