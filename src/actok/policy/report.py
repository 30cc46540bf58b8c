"""The policy benchmark's section of `actok report`, from results.json records alone.

`policy_section(records)` returns the markdown, the HTML (figures inlined) and the PNG files the markdown links
to (`report_files/policy_*.png`); the report command writes them with its own pages.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from actok.figures import figure_png
from actok.policy.plots import figures, table_rows

FIGURE_DIR = "report_files"
NOTE = (
    "Coverage = the best overlap of block and goal reached in an episode, averaged over seeded episodes (95% "
    "normal interval); success = coverage > 0.95 (Wilson interval). Seeds pooled per policy. Intervals that "
    "overlap do not separate two policies."
)


@dataclass
class ReportSection:
    markdown: str
    html: str
    figures: dict[str, bytes]  # path relative to the report folder -> PNG


def policy_section(records: list[dict]) -> ReportSection:
    """Summary table, note and figures of a policy benchmark (records as in results.json)."""
    header, cells = table_rows(records)
    config = records[0]["config"]
    setting = (
        f"{config.get('repo_id', '?')}: {config.get('train_episodes', '?')} train / "
        f"{config.get('holdout_episodes', '?')} held-out episodes, H={config.get('action_horizon', '?')}, "
        f"{config['train']['num_epochs']} epochs for every policy"
    )
    if config.get("quick_test"):
        setting += " (QUICK TEST: the numbers only check the pipeline)"
    md = [
        f"## Policy benchmark\n\n{setting}\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    md += ["| " + " | ".join(c) + " |" for c in cells]
    md.append(f"\n{NOTE}\n")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in c) + "</tr>" for c in cells)
    parts = [
        f"<h2>Policy benchmark</h2><p>{html.escape(setting)}</p><table><tr>{head}</tr>{body}</table>",
        f"<p>{html.escape(NOTE)}</p>",
    ]
    files: dict[str, bytes] = {}
    for name, fig in figures(records).items():
        png = figure_png(fig)
        files[f"{FIGURE_DIR}/policy_{name}"] = png
        md.append(f"![{name}]({FIGURE_DIR}/policy_{name})\n")
        parts.append(f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    return ReportSection("\n".join(md), "".join(parts), files)
