"""`actok report DIR`: results JSON files -> report.md + a self-contained report.html (figures inlined).

Reads only the JSON files bench wrote (never re-runs anything), groups them by data setting (dataset, horizon,
dims, normalization, delta), and draws per setting: the rate-distortion plot (mean tokens and bits per chunk vs
RMSE, Pareto frontier, Gaussian reverse water-filling bound from the training DCT coefficient variances),
token-length histograms, per-dimension error and encode/decode time.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from actok.bench.metrics import reverse_water_filling
from actok.errors import ActokError

REPORT_MD, REPORT_HTML, FIGURE_DIR = "report.md", "report.html", "report_files"


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Every bench result JSON in `directory` (other JSON files are skipped)."""
    if not directory.is_dir():
        raise ActokError(f"results folder {directory} does not exist")
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"config", "metrics"} <= set(data) and "reconstruction_rmse" in data["metrics"]:
            out.append({**data, "path": path})
    if not out:
        raise ActokError(f"no bench result JSON in {directory} (run `actok bench --output-dir {directory}` first)")
    return out


def _setting(result: dict) -> str:
    c = result["config"]
    delta = f", delta {c['delta_dims']}" if c.get("use_delta_transform") and c.get("delta_dims") else ""
    return f"{c['repo_id']}: H={c['action_horizon']}, dims {c['encoded_dims']}, {c['normalization_mode']}{delta}"


def _labels(results: list[dict]) -> list[str]:
    """Tokenizer name plus the parameters that differ between results of the same tokenizer."""
    labels = []
    for r in results:
        same = [o for o in results if o["config"]["tokenizer"] == r["config"]["tokenizer"]]
        params = r["config"].get("tokenizer_params", {})
        varying = [k for k in params if len({json.dumps(o["config"]["tokenizer_params"].get(k)) for o in same}) > 1]
        extra = ", ".join(f"{k}={params[k]}" for k in varying)
        labels.append(f"{r['config']['tokenizer']}({extra})" if extra else r["config"]["tokenizer"])
    return labels


def pareto_front(rmse: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both RMSE and cost, sorted by RMSE."""
    order = np.lexsort((cost, rmse))
    front, best = [], np.inf
    for i in order:
        if cost[i] < best:
            front.append(i)
            best = cost[i]
    return np.array(front, dtype=int)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def rate_distortion_figure(results: list[dict], labels: list[str]) -> bytes:
    rmse = np.array([r["metrics"]["reconstruction_rmse"] for r in results])
    tokens = np.array([r["metrics"]["mean_token_length"] for r in results])
    bits = np.array([r["metrics"]["bits_per_chunk"] for r in results])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    names = sorted({r["config"]["tokenizer"] for r in results})
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(names)}
    for ax, cost, ylabel in ((axes[0], tokens, "mean tokens per chunk"), (axes[1], bits, "bits per chunk")):
        for i, r in enumerate(results):
            ax.scatter(rmse[i], cost[i], color=colors[r["config"]["tokenizer"]], s=30, zorder=3)
            ax.annotate(labels[i], (rmse[i], cost[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = pareto_front(rmse, cost)
        ax.step(rmse[front], cost[front], where="post", color="k", lw=1, ls="--", label="Pareto frontier")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("held-out RMSE (normalized units)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    variances = results[0]["metrics"].get("train_dct_coefficient_variances")
    if variances:
        bound_rmse, bound_bits = reverse_water_filling(np.array(variances))
        keep = (bound_bits > 0) & (bound_rmse >= rmse.min() / 3)
        axes[1].plot(
            bound_rmse[keep], bound_bits[keep], color="tab:red", lw=1.5, label="Gaussian reverse water-filling bound"
        )
    for n in names:
        axes[0].scatter([], [], color=colors[n], label=n)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle("Rate vs distortion")
    return _png(fig)


def token_length_figure(results: list[dict], labels: list[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for r, label in zip(results, labels, strict=True):
        counts = np.array(r["metrics"].get("token_length_counts") or [[r["metrics"]["mean_token_length"], 1]])
        share = counts[:, 1] / counts[:, 1].sum()
        ax.step(counts[:, 0], share, where="mid", label=label)
    ax.set_xlabel("tokens per chunk")
    ax.set_ylabel("share of chunks")
    ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Token-length distribution (held-out chunks)")
    return _png(fig)


def per_dimension_figure(results: list[dict], labels: list[str]) -> bytes:
    mae = [r["metrics"]["per_dimension_mae"] for r in results]
    n_dims = max(len(m) for m in mae)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * n_dims * max(1, len(results)) / 3), 3.8))
    width = 0.8 / len(results)
    for i, (m, label) in enumerate(zip(mae, labels, strict=True)):
        ax.bar(np.arange(len(m)) + i * width, m, width=width, label=label)
    ax.set_xticks(np.arange(n_dims) + 0.4 - width / 2, [str(i) for i in range(n_dims)], fontsize=7)
    ax.set_xlabel("encoded dimension")
    ax.set_ylabel("MAE (normalized units)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Per-dimension error")
    return _png(fig)


def timing_figure(results: list[dict], labels: list[str]) -> bytes:
    enc = [r["metrics"]["mean_encode_time_sec"] * 1e6 for r in results]
    dec = [r["metrics"]["mean_decode_time_sec"] * 1e6 for r in results]
    y = np.arange(len(results))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(results) + 1.5))
    ax.barh(y - 0.2, enc, height=0.4, label="encode")
    ax.barh(y + 0.2, dec, height=0.4, label="decode")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("µs per chunk (batch call / chunks)")
    ax.legend()
    ax.set_title("Encode / decode time")
    return _png(fig)


TABLE_COLUMNS = [
    ("tokenizer", None, "{}"),
    ("vocab", "vocab_size", "{:d}"),
    ("mean tokens", "mean_token_length", "{:.1f}"),
    ("bits/chunk", "bits_per_chunk", "{:.0f}"),
    ("entropy-coded bits", "entropy_coded_bits_per_chunk", "{:.0f}"),
    ("RMSE", "reconstruction_rmse", "{:.4f}"),
    ("p95 err", "reconstruction_p95_abs_error", "{:.4f}"),
    ("max err", "reconstruction_max_abs_error", "{:.4f}"),
    ("invalid", "invalid_decode_fraction", "{:.3f}"),
    ("5% noise: ΔRMSE", "noise_5pct_rmse_increase", "{:.4f}"),
    ("enc µs", "mean_encode_time_sec", "{:.1f}"),
    ("dec µs", "mean_decode_time_sec", "{:.1f}"),
]


def _cells(result: dict, label: str) -> list[str]:
    out = []
    for _, key, fmt in TABLE_COLUMNS:
        if key is None:
            out.append(label)
            continue
        value = result["metrics"].get(key)
        if value is None:
            out.append("–")
        else:
            out.append(fmt.format(value * 1e6 if key.endswith("time_sec") else value))
    return out


def write_report(directory: Path, output: Path | None = None, overwrite: bool = False) -> tuple[Path, Path]:
    """Write report.md (+ report_files/*.png) and report.html into `output` (default: `directory`)."""
    results = load_results(directory)
    output = output or directory
    md_path, html_path = output / REPORT_MD, output / REPORT_HTML
    existing = [p for p in (md_path, html_path) if p.exists()]
    if existing and not overwrite:
        raise ActokError(f"{existing[0]} already exists; pass --overwrite to replace the report")
    (output / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(_setting(r), []).append(r)
    md = [f"# actok benchmark report\n\n{len(results)} results from `{directory}`, {len(groups)} data setting(s).\n"]
    body = [
        f"<h1>actok benchmark report</h1><p>{len(results)} results from <code>{html.escape(str(directory))}</code>, {len(groups)} data setting(s).</p>"
    ]
    for g, (setting, rows) in enumerate(sorted(groups.items())):
        rows.sort(key=lambda r: (r["config"]["tokenizer"], r["metrics"]["reconstruction_rmse"]))
        labels = _labels(rows)
        m0 = rows[0]["metrics"]
        split = f"{m0.get('evaluated_split', '?')} split, {m0['num_chunks_evaluated']} chunks evaluated"
        md += [
            f"\n## {setting}\n\n{split}\n",
            "| " + " | ".join(h for h, _, _ in TABLE_COLUMNS) + " |",
            "|" + "---|" * len(TABLE_COLUMNS),
        ]
        md += ["| " + " | ".join(_cells(r, label)) + " |" for r, label in zip(rows, labels, strict=True)]
        table = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in TABLE_COLUMNS)
        table_rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, label)) + "</tr>"
            for r, label in zip(rows, labels, strict=True)
        )
        body.append(
            f"<h2>{html.escape(setting)}</h2><p>{html.escape(split)}</p><table><tr>{table}</tr>{table_rows}</table>"
        )
        figures = {
            "rate_distortion": rate_distortion_figure(rows, labels),
            "token_lengths": token_length_figure(rows, labels),
            "per_dimension_error": per_dimension_figure(rows, labels),
            "timing": timing_figure(rows, labels),
        }
        for name, png in figures.items():
            file = output / FIGURE_DIR / f"{g}_{name}.png"
            file.write_bytes(png)
            md.append(f"\n![{name}]({FIGURE_DIR}/{file.name})")
            body.append(
                f'<h3>{name.replace("_", " ")}</h3><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            )
    md.append(
        "\n\nBound: Gaussian reverse water-filling over the training chunks' DCT coefficient variances — the bits a "
        "perfect coder of independent Gaussian coefficients would need at that RMSE (REFERENCES §8).\n"
    )
    md_path.write_text("\n".join(md) + "\n")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:8px 0}"
    )
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>actok report</title><style>{style}</style></head>"
        f"<body>{''.join(body)}<p>{html.escape(md[-1].strip())}</p></body></html>\n"
    )
    return md_path, html_path
