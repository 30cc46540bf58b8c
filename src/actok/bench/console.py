"""`BenchConsole`: a bench run on screen, as `actok bench` shows it (pass `on_outcome=console.show` to `execute`).

One progress bar over every cell (on stderr); per dataset, its notes and a header line before its first cell's
outcome, then the comparison table and the files written after its last; a skipped cell is one warning line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tqdm.auto import tqdm

from actok.bench.cells import Cell
from actok.bench.harness import CellOutcome
from actok.bench.runner import comparison_table


class BenchConsole:
    """Prints the outcomes of `cells` (laid out dataset by dataset, as `plan` does) as they arrive."""

    def __init__(self, cells: Sequence[Cell]):
        self.cells, self.per_dataset = cells, len({c.tokenizer.label for c in cells})
        self.bar = tqdm(total=len(cells), desc="bench", disable=len(cells) < 2, file=sys.stderr)
        self.done, self.rows = 0, []
        self._next_label()

    def __enter__(self) -> BenchConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def _next_label(self) -> None:
        if self.done < len(self.cells):
            cell = self.cells[self.done]
            self.bar.set_postfix_str(f"{cell.dataset.repo_id} {cell.tokenizer.label}")

    def show(self, outcome: CellOutcome) -> None:
        data, label = outcome.dataset, outcome.cell.tokenizer.label
        if self.done % self.per_dataset == 0:  # the dataset's first cell
            for note in data.notes:
                print(f"note: {note}")
            print(
                f"Benchmarking {self.per_dataset} tokenizer(s) on {data.repo_id}: H={data.horizon}, "
                f"dims {data.encoded_slices}, {data.normalization_mode}, scoring {data.evaluated_split} episodes "
                f"({data.evaluated_episodes} episodes)"
            )
        if outcome.result is None:
            sys.stderr.write(f"warning: skipped {data.repo_id} {label}: {outcome.error}\n")
        else:
            self.rows.append({"name": label, "metrics": outcome.result.metrics, "path": outcome.result.path})
        self.done += 1
        self.bar.update()
        self._next_label()
        if self.done % self.per_dataset == 0:  # the dataset's last cell
            self.bar.clear()
            empty = f"no results on {data.repo_id}: every cell was skipped"
            print(f"\n{comparison_table(self.rows) if self.rows else empty}\n")
            for row in self.rows:
                print(f"Results written to {row['path']}")
            self.rows = []
