"""`actok report DIR`: results JSON files -> report.md + a self-contained report.html (figures inlined).

Reads only the JSON files bench wrote (never re-runs anything; a JSON file that is not a readable bench result is
skipped with a warning naming it), groups them by data setting (dataset, horizon, dims, normalization, delta), and
draws per setting: the rate-distortion plot (mean tokens and bits per chunk vs RMSE, Pareto frontier, Gaussian
reverse water-filling bounds from the training chunks' DCT coefficient variances and from their full covariance),
the token-length distributions, the per-dimension error, the encode/decode time and, where a tokenizer decodes
prefixes, the prefix curve.
"""

from __future__ import annotations

import base64
import html
import json
import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from actok.bench.metrics import reverse_water_filling
from actok.bench.result import BenchResult, ResultFileError
from actok.bench.runner import PREFIX_FRACTIONS
from actok.errors import ActokError, ActokWarning
from actok.figures import figure_png
from actok.outputs import interrupts_deferred, write_file_atomically
from actok.policy import RECORD_KEYS, RESULTS_FILE

REPORT_MD, REPORT_HTML, FIGURE_DIR = "report.md", "report.html", "report_files"

# One colour per tokenizer (none of them red: red is the bound) and one marker per run of that tokenizer, so a
# sweep reads as one family and no two series look alike.
TOKENIZER_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#7b4173",
    "#000000",
]
RUN_MARKERS = "osD^vP*Xph<>"

BOUND_NOTE = (
    "Bounds: Gaussian reverse water-filling — the bits a perfect coder of independent Gaussian components would "
    "need at that RMSE (Cover & Thomas, Elements of Information Theory, 2nd ed., Theorem 10.3.3) — over the "
    "training chunks' DCT coefficient variances (per dim over time: what FAST's transform reaches at best; a "
    "transform that decorrelates dims can cross it) and over the eigenvalues of their full covariance (KLT: the "
    "reference for any orthonormal transform; optimistic when there are few chunks per dimension). The gap column "
    "is a result's bits per chunk minus the KLT bound at its RMSE, in tokens (bits / log2 vocab): how many tokens "
    "per chunk any tokenizer could still save."
)
# The bounds drawn on the bits panel: (metric, label, line style). Both red; the KLT one dark and dotted on top of
# a wide, light DCT line, so that both show where they nearly coincide (dims hardly correlated).
BOUNDS = (
    ("train_dct_coefficient_variances", "Gaussian bound (DCT coefficients)", {"color": "#f4a6a6", "lw": 3.0}),
    ("train_klt_coefficient_variances", "Gaussian bound (KLT: full covariance)", {"color": "#b00000", "ls": ":"}),
)

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
    ("gap to KLT bound (tokens)", "klt_bound_gap_tokens", "{:.1f}"),
    ("enc µs", "mean_encode_time_sec", "{:.1f}"),
    ("dec µs", "mean_decode_time_sec", "{:.1f}"),
]


def read_policy_records(path: Path) -> list[dict]:
    """The records of an `actok policy` results.json; an ActokError naming the file when it is not one."""
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ActokError(f"{path}: not readable JSON ({exc})") from None
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) and r.keys() >= RECORD_KEYS for r in records)
    ):
        raise ActokError(f"{path}: not a list of actok policy records")
    return records


def load_policy_records(directory: Path) -> list[dict]:
    """The records of an `actok policy` run's results.json in `directory` (none when there is no such file; a
    warning naming it when it is not a list of policy records)."""
    path = directory / RESULTS_FILE
    if not path.is_file():
        return []
    try:
        return read_policy_records(path)
    except ActokError as exc:
        warnings.warn(f"skipped {exc}", ActokWarning, stacklevel=2)
        return []


def load_results(directory: Path, allow_none: bool = False) -> list[BenchResult]:
    """Every bench result JSON in `directory` (`BenchResult.read`; a policy run's results.json aside). Each other
    *.json file is skipped with an ActokWarning that names it and says what is wrong; an ActokError when no valid
    result remains (unless `allow_none`: a folder with a policy benchmark's results only)."""
    if directory.exists() and not directory.is_dir():
        raise ActokError(f"{directory} is a file; actok report takes the folder that holds bench result files")
    if not directory.is_dir():
        raise ActokError(f"results folder {directory} does not exist")
    out, skipped = [], 0
    for path in sorted(directory.glob("*.json")):
        if path.name == RESULTS_FILE:
            continue
        try:
            out.append(BenchResult.read(path))
        except ResultFileError as exc:
            warnings.warn(f"skipped {path}: {exc.problem}", ActokWarning, stacklevel=2)
            skipped += 1
    if not out and allow_none:
        return out
    if not out and skipped:
        raise ActokError(
            f"no valid bench result in {directory}: all {skipped} JSON file(s) were skipped (see the warnings above)"
        )
    if not out:
        raise ActokError(f"no bench result JSON in {directory} (run `actok bench --output-dir {directory}` first)")
    return out


def _setting(result: BenchResult) -> str:
    c = result.config
    delta = f", delta {c['delta_dims']}" if c.get("use_delta_transform") and c.get("delta_dims") else ""
    return f"{c['repo_id']}: H={c['action_horizon']}, dims {c['encoded_dims']}, {c['normalization_mode']}{delta}"


def series_labels(results: list[BenchResult]) -> list[str]:
    """Tokenizer name plus the parameters that differ between results of the same tokenizer; a label that would
    repeat gets ` #2`, ` #3`, ... (the same configuration benchmarked again)."""
    labels, seen = [], {}
    for r in results:
        params = r.config.get("tokenizer_params") or {}
        same = [o for o in results if o.config["tokenizer"] == r.config["tokenizer"]]
        values = [{json.dumps((o.config.get("tokenizer_params") or {}).get(k)) for o in same} for k in params]
        extra = ", ".join(f"{k}={params[k]}" for k, v in zip(params, values, strict=True) if len(v) > 1)
        label = f"{r.config['tokenizer']}({extra})" if extra else r.config["tokenizer"]
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def series_styles(results: list[BenchResult]) -> list[tuple[str, str]]:
    """(colour, marker) per result: one colour per tokenizer, one marker per run of that tokenizer, so no two
    series of a setting look alike (tokenizers beyond the palette also shift their markers)."""
    names = sorted({r.config["tokenizer"] for r in results})
    runs = dict.fromkeys(names, 0)
    styles = []
    for r in results:
        name = r.config["tokenizer"]
        k = names.index(name)
        marker = RUN_MARKERS[(runs[name] + k // len(TOKENIZER_COLORS)) % len(RUN_MARKERS)]
        styles.append((TOKENIZER_COLORS[k % len(TOKENIZER_COLORS)], marker))
        runs[name] += 1
    return styles


def pareto_front(rmse: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both RMSE and cost, sorted by RMSE."""
    order = np.lexsort((cost, rmse))
    front, best = [], np.inf
    for i in order:
        if cost[i] < best:
            front.append(i)
            best = cost[i]
    return np.array(front, dtype=int)


def label_log_axes(ax) -> None:
    """Plain-number labels on each log axis of `ax`, at decades, else 1-2-5, 1-2-3-5 or 1-to-9 steps: the first
    that puts four ticks in view without two closer than a tenth of the axis (their labels would overlap), at most
    10 labels, no minor labels; evenly spaced values when no step puts two ticks in view."""
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(limits)
        span = np.log10(hi / lo)
        decades = 10.0 ** np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        best = np.zeros(0)
        for steps in ([1], [1, 2, 5], [1, 2, 3, 5], list(range(1, 10))):
            ticks = np.outer(decades, steps).ravel()
            ticks = ticks[(ticks >= lo) & (ticks <= hi)]
            ticks = ticks[:: max(1, math.ceil(len(ticks) / 10))]
            if len(ticks) > 1 and np.diff(np.log10(ticks)).min() < span / 10:
                break
            best = ticks
            if len(best) >= 4:
                break
        if len(best) < 2:
            best = MaxNLocator(4).tick_values(lo, hi)
            best = best[(best >= lo) & (best <= hi) & (best > 0)]
        axis.set_major_locator(FixedLocator(best))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def rate_distortion_figure(results: list[BenchResult], labels: list[str]) -> Figure:
    """Mean tokens (left) and bits (right) per chunk vs RMSE, log-log: one point per result, the runs of one
    tokenizer joined in RMSE order, the Pareto frontier, and on the bits panel the reverse water-filling bound."""
    rmse = np.array([r.metrics["reconstruction_rmse"] for r in results])
    tokens = np.array([r.metrics["mean_token_length"] for r in results])
    bits = np.array([r.metrics["bits_per_chunk"] for r in results])
    names = np.array([r.config["tokenizer"] for r in results])
    styles = series_styles(results)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, cost, ylabel in ((axes[0], tokens, "mean tokens per chunk"), (axes[1], bits, "bits per chunk")):
        for name in np.unique(names):
            runs = np.flatnonzero(names == name)
            runs = runs[np.argsort(rmse[runs])]
            ax.plot(rmse[runs], cost[runs], color=styles[runs[0]][0], lw=1, alpha=0.5, zorder=2)
        for i, (color, marker) in enumerate(styles):
            ax.scatter(rmse[i], cost[i], color=color, marker=marker, s=45, edgecolors="k", linewidths=0.4, zorder=3)
        front = pareto_front(rmse, cost)
        ax.step(rmse[front], cost[front], where="post", color="k", lw=1, ls="--", zorder=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("held-out RMSE (normalized units)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    handles = [
        Line2D([], [], color=c, marker=m, ls="", mec="k", mew=0.4, ms=7, label=label)
        for (c, m), label in zip(styles, labels, strict=True)
    ]
    handles.append(Line2D([], [], color="k", lw=1, ls="--", label="Pareto frontier"))
    for key, label, style in BOUNDS:
        variances = results[0].metrics.get(key)
        if variances:
            bound_rmse, bound_bits = reverse_water_filling(np.array(variances))
            keep = (bound_bits > 0) & (bound_rmse >= rmse.min() / 3)
            style = {"lw": 1.5, **style}
            axes[1].plot(bound_rmse[keep], bound_bits[keep], zorder=1, label=label, **style)
            handles.append(Line2D([], [], label=label, **style))
    for ax in axes:
        label_log_axes(ax)
    fig.suptitle("Rate vs distortion")
    fig.tight_layout()
    # Below both panels, so it never covers a point.
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False)
    return fig


def token_length_figure(results: list[BenchResult], labels: list[str]) -> Figure:
    """One row per result: the share of held-out chunks at each token count as a histogram scaled to the row's
    peak; a fixed-length tokenizer is a single marked spike. The column at the right gives the fixed length, or
    the mean and range."""
    n = len(results)
    fig, ax = plt.subplots(figsize=(8, 0.42 * n + 1.4))
    shortest, longest = np.inf, 0.0
    for i, (r, (color, marker)) in enumerate(zip(results, series_styles(results), strict=True)):
        row = n - 1 - i  # the first result on top, as in the table
        m = r.metrics
        counts = np.array(m.get("token_length_counts") or [[m["mean_token_length"], 1]], dtype=float)
        lengths, share = counts[:, 0], counts[:, 1] / counts[:, 1].max()
        shortest, longest = min(shortest, lengths.min()), max(longest, lengths.max())
        # Lengths are whole numbers: one bar each, as wide as 6% of the length (so bars look alike on the log
        # axis) but never wider than 1 (neighbours would overlap).
        width = np.minimum(1.0, 0.06 * lengths)
        ax.bar(lengths, 0.8 * share, width=width, bottom=row - 0.4, color=color, edgecolor=color, lw=0.5, alpha=0.7)
        if len(lengths) > 1:
            note = f"mean {m['mean_token_length']:.1f}, {lengths.min():g}–{lengths.max():g}"
        else:  # one bar can be thinner than a pixel on the log axis: mark it
            ax.plot(lengths, [row + 0.4], marker=marker, color=color, mec="k", mew=0.4, ms=7, ls="")
            note = f"{lengths[0]:g} (fixed)" if m.get("token_length_counts") else f"mean {lengths[0]:.1f}"
        ax.text(1.01, row, note, transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_yticks(np.arange(n)[::-1], labels, fontsize=8)
    ax.set_ylim(-0.6, n - 0.2)
    ax.set_xscale("log")
    ax.set_xlim(min(shortest / 1.25, longest / 4), max(longest * 1.25, shortest * 4))  # a factor 4 at least
    ax.grid(True, axis="x", which="both", alpha=0.3)
    label_log_axes(ax)
    ax.set_xlabel("tokens per chunk")
    ax.set_title("Token-length distribution (held-out chunks; each row scaled to its most common length)")
    return fig


def per_dimension_figure(results: list[BenchResult], labels: list[str]) -> Figure:
    """Held-out mean absolute error per encoded dimension (columns) and result (rows), log-coloured, with the
    value written in each cell when the cells are wide enough (up to 12 dims)."""
    n = len(results)
    n_dims = max(len(r.metrics["per_dimension_mae"]) for r in results)
    mae = np.full((n, n_dims), np.nan)
    for i, r in enumerate(results):
        mae[i, : len(r.metrics["per_dimension_mae"])] = r.metrics["per_dimension_mae"]
    positive = mae[mae > 0]
    vmin, vmax = (positive.min(), positive.max()) if len(positive) else (1e-3, 1.0)
    norm = LogNorm(vmin, vmax) if vmax > vmin else LogNorm(vmin / 2, vmax * 2)
    annotate = n_dims <= 12
    fig, ax = plt.subplots(figsize=(max(6.0, (0.75 if annotate else 0.3) * n_dims + 3.5), 0.36 * n + 1.6))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")  # a zero error has no log colour: grey
    image = ax.imshow(np.where(mae > 0, mae, np.nan), aspect="auto", cmap=cmap, norm=norm)
    if annotate:
        for (i, d), value in np.ndenumerate(mae):
            if np.isfinite(value):
                dark = value > 0 and norm(value) < 0.5
                ax.text(d, i, f"{value:.2g}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
    ax.set_yticks(np.arange(n), labels, fontsize=8)
    ax.set_xticks(np.arange(0, n_dims, max(1, math.ceil(n_dims / 30))))
    ax.set_xlabel("encoded dimension")
    bar = fig.colorbar(image, ax=ax, label="MAE (normalized units)")
    label_log_axes(bar.ax)
    ax.set_title("Per-dimension error (held-out mean absolute error)")
    return fig


def timing_figure(results: list[BenchResult], labels: list[str]) -> Figure:
    """Encode and decode time per chunk, one pair of bars per result (first result on top), log scale."""
    enc = np.array([r.metrics["mean_encode_time_sec"] for r in results]) * 1e6
    dec = np.array([r.metrics["mean_decode_time_sec"] for r in results]) * 1e6
    y = np.arange(len(results))[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(results) + 1.4))
    ax.barh(y + 0.2, enc, height=0.4, color="tab:blue", label="encode")
    ax.barh(y - 0.2, dec, height=0.4, color="tab:orange", label="decode")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.6, len(results) - 0.4)
    ax.set_xscale("log")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    label_log_axes(ax)
    ax.set_xlabel("µs per chunk (batch call / chunks)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # outside: covers no bar
    ax.set_title("Encode / decode time")
    return fig


def prefix_curve_figure(results: list[BenchResult], labels: list[str]) -> Figure | None:
    """Held-out RMSE when only the first share of each encoding's tokens is decoded, one line per result that
    reports it (`prefix_rmse`: tokenizers whose every id sequence decodes); None when no result does."""
    styles = series_styles(results)
    curves = [
        (r, label, style)
        for r, label, style in zip(results, labels, styles, strict=True)
        if r.metrics.get("prefix_rmse")
    ]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for r, label, (color, marker) in curves:
        share = 100 * np.array(r.metrics.get("prefix_token_fractions") or PREFIX_FRACTIONS)
        ax.plot(share, r.metrics["prefix_rmse"], color=color, marker=marker, mec="k", mew=0.4, ms=7, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("share of each chunk's tokens decoded (%)")
    ax.set_ylabel("held-out RMSE (normalized units)")
    ax.set_xticks(100 * np.array(PREFIX_FRACTIONS))
    ax.grid(True, which="both", alpha=0.3)
    label_log_axes(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # outside: covers no line
    ax.set_title("Prefix curve: a cut sequence decodes to a coarser chunk")
    return fig


FIGURES = {
    "rate_distortion": rate_distortion_figure,
    "token_lengths": token_length_figure,
    "per_dimension_error": per_dimension_figure,
    "timing": timing_figure,
    "prefix_curve": prefix_curve_figure,
}


def _cells(result: BenchResult, label: str) -> list[str]:
    out = []
    for _, key, fmt in TABLE_COLUMNS:
        if key is None:
            out.append(label)
            continue
        value = result.metrics.get(key)
        if value is None:
            out.append("–")
        else:
            out.append(fmt.format(value * 1e6 if key.endswith("time_sec") else value))
    return out


def check_report_free(output: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """The report's two pages in `output`; `ActokError` when one exists and `overwrite` is off."""
    pages = output / REPORT_MD, output / REPORT_HTML
    existing = [p for p in pages if p.exists()]
    if existing and not overwrite:
        raise ActokError(f"{existing[0]} already exists; pass --overwrite to replace the report")
    return pages


def write_report(directory: Path, output: Path | None = None, overwrite: bool = False) -> tuple[Path, Path]:
    """Write report.md (+ report_files/*.png) and report.html into `output` (default: `directory`)."""
    policy = load_policy_records(directory)
    results = load_results(directory, allow_none=bool(policy))
    output = output or directory
    md_path, html_path = check_report_free(output, overwrite)
    figures: dict[Path, bytes] = {}  # written with the pages at the end, so an interrupted run writes nothing
    groups: dict[str, list[BenchResult]] = {}
    for r in results:
        groups.setdefault(_setting(r), []).append(r)
    md = [f"# actok benchmark report\n\n{len(results)} results from `{directory}`, {len(groups)} data setting(s).\n"]
    body = [
        f"<h1>actok benchmark report</h1><p>{len(results)} results from <code>{html.escape(str(directory))}</code>, {len(groups)} data setting(s).</p>"
    ]
    for g, (setting, rows) in enumerate(sorted(groups.items())):
        rows.sort(key=lambda r: (r.config["tokenizer"], r.metrics["reconstruction_rmse"]))
        labels = series_labels(rows)
        m0 = rows[0].metrics
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
        for name, draw in FIGURES.items():
            fig = draw(rows, labels)
            if fig is None:  # nothing of this kind in this setting
                continue
            png = figure_png(fig)
            file = output / FIGURE_DIR / f"{g}_{name}.png"
            figures[file] = png
            md.append(f"\n![{name}]({FIGURE_DIR}/{file.name})")
            body.append(
                f'<h3>{name.replace("_", " ")}</h3><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            )
    if policy:
        from actok.policy.report import policy_section

        section = policy_section(policy)
        md.append("\n" + section.markdown)
        body.append(section.html)
        figures.update({output / name: png for name, png in section.figures.items()})
    md.append(f"\n\n{BOUND_NOTE}\n")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:8px 0}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>actok report</title><style>{style}</style></head>"
        f"<body>{''.join(body)}<p>{html.escape(BOUND_NOTE)}</p></body></html>\n"
    )
    with interrupts_deferred():  # a few fast writes that land whole
        write_file_atomically(md_path, "\n".join(md) + "\n", overwrite)
        write_file_atomically(html_path, page, overwrite)
        for file, png in figures.items():
            write_file_atomically(file, png, overwrite=True)  # report_files/ is the report's own folder
    return md_path, html_path
