"""Figures of the case study, drawn from results.json and the marginal-information table only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from actok.casestudy.analysis import PUBLISHED_DIFF_ENTROPY_BITS, PUBLISHED_SAMPLING_RATES

COLORS = {"naive": "tab:red", "fast": "tab:blue"}


def _by_tokenizer(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["sampling_rate"]):
        out.setdefault(r["tokenizer"], []).append(r)
    return out


def _mse_axes(ax, records: list[dict]) -> None:
    for name, rows in _by_tokenizer(records).items():
        rates = [r["sampling_rate"] for r in rows]
        mse = [r["mse"] for r in rows]
        std = [r["mse_std"] / max(1, r["num_test"]) ** 0.5 for r in rows]
        ax.errorbar(rates, mse, yerr=std, marker="o", capsize=3, label=name, color=COLORS.get(name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["sampling_rate"] for r in records}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("sampling rate H (samples per sequence)")
    ax.set_ylabel("held-out MSE (± s.e.)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()


def plot_performance(records: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    _mse_axes(ax, records)
    ax.set_title("Prediction error vs sampling rate")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_marginal_information(table: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    by_name: dict[str, list[dict]] = {}
    for row in sorted(table, key=lambda r: r["sampling_rate"]):
        by_name.setdefault(row["tokenizer"], []).append(row)
    for name, rows in by_name.items():
        rates = [r["sampling_rate"] for r in rows]
        axes[0].plot(rates, [r["diff_entropy_bits"] for r in rows], "o-", label=name, color=COLORS.get(name))
        axes[1].plot(rates, [r["zero_diff_share"] for r in rows], "o-", label=name, color=COLORS.get(name))
        axes[2].plot(rates, [r["mean_tokens"] for r in rows], "o-", label=name, color=COLORS.get(name))
    axes[0].plot(PUBLISHED_SAMPLING_RATES, PUBLISHED_DIFF_ENTROPY_BITS, "k--", marker="x", label="published (naive)")
    axes[0].set_ylabel("entropy of consecutive-token difference (bits)")
    axes[1].set_ylabel("share of zero differences")
    axes[2].set_ylabel("tokens per sequence")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["sampling_rate"] for r in table}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("sampling rate H")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Marginal information per token")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _example_axes(ax, record: dict, index: int) -> None:
    ex = record["examples"]
    cond = ex["conditions"][index]
    ax.plot(ex["times"], ex["true"][index], "k-", lw=1.5, label="true spline")
    style = "-" if ex["valid"][index] else ":"
    ax.plot(ex["times"], ex["predicted"][index], style, color=COLORS.get(record["tokenizer"]), label="predicted")
    ax.plot([c[0] for c in cond], [c[1] for c in cond], "ko", ms=5, label="conditioning points")


def plot_predictions(records: list[dict], horizon: int, path: Path) -> None:
    rows = [r for r in records if r["sampling_rate"] == horizon]
    n_examples = min(len(r["examples"]["true"]) for r in rows)
    fig, axes = plt.subplots(len(rows), n_examples, figsize=(3.2 * n_examples, 2.8 * len(rows)), squeeze=False)
    for i, record in enumerate(rows):
        for j in range(n_examples):
            _example_axes(axes[i, j], record, j)
            axes[i, j].set_title(f"{record['tokenizer']}, H={horizon}, example {j}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_figure3(records: list[dict], path: Path) -> None:
    """Figure 3 of the FAST paper: one example at a low and the highest rate per tokenizer, and MSE vs H."""
    rates = sorted({r["sampling_rate"] for r in records})
    shown = [rates[0], rates[-1]] if len(rates) > 1 else rates
    names = list(_by_tokenizer(records))
    fig = plt.figure(figsize=(4 * len(shown) + 5, 2.8 * len(names)))
    grid = fig.add_gridspec(len(names), len(shown) + 1, width_ratios=[1] * len(shown) + [1.4])
    for i, name in enumerate(names):
        for j, horizon in enumerate(shown):
            record = next(r for r in records if r["tokenizer"] == name and r["sampling_rate"] == horizon)
            ax = fig.add_subplot(grid[i, j])
            _example_axes(ax, record, 0)
            ax.set_title(f"{name}, H={horizon}: MSE {record['mse']:.3g}", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    _mse_axes(fig.add_subplot(grid[:, -1]), records)
    fig.suptitle("Naive per-step tokens vs FAST across sampling rates (replica of FAST paper Fig. 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
