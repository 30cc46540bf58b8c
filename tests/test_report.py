"""`actok report`: from result JSON files only to report.md and a self-contained report.html."""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import dataset_root
from matplotlib.figure import Figure

from actok.bench.metrics import reverse_water_filling
from actok.bench.report import (
    FIGURES,
    TABLE_COLUMNS,
    _cells,
    label_log_axes,
    load_results,
    pareto_front,
    prefix_curve_figure,
    rate_distortion_figure,
    series_labels,
    series_styles,
    token_length_figure,
)
from actok.bench.result import OPTIONAL_FIELDS, REQUIRED_FIELDS, SCHEMA_VERSION, BenchResult, ResultFileError
from actok.cli import main
from actok.errors import ActokError, ActokWarning
from actok.tokenizers import available_tokenizers


@pytest.fixture(scope="module")
def pusht_results(tmp_path_factory):
    """A results folder with real bench results on pusht: binning (fixed length), fast (variable length) and klt
    (variable length, with a prefix curve)."""
    results = tmp_path_factory.mktemp("pusht_results")
    root = str(dataset_root("pusht"))
    assert main(["bench", "--root", root, "--tokenizer", "binning,fast,klt", "--output-dir", str(results)]) == 0
    return results


def _result(folder, tokenizer: str) -> BenchResult:
    (path,) = folder.glob(f"*_{tokenizer}_action_tokenizer_results.json")
    return BenchResult.read(path)


def _many_series(folder, n: int = 20) -> list[BenchResult]:
    """`n` results in one data setting: every registered tokenizer name, several runs each (a sweep), alternating
    the real fixed-length (binning) and variable-length (fast, klt with its prefix curve) metrics, spread over 3
    decades of RMSE."""
    bases = [_result(folder, "binning"), _result(folder, "fast"), _result(folder, "klt")]
    names = available_tokenizers()
    rows = []
    for i in range(n):
        r = copy.deepcopy(bases[i % 3])
        r.config["tokenizer"] = names[i % len(names)]
        r.config["tokenizer_params"] = {"scale": float(i)}
        r.metrics["reconstruction_rmse"] *= 1.4**i
        r.metrics["mean_encode_time_sec"] *= 1.5**i
        rows.append(r)
    return rows


def test_pareto_front():
    rmse = np.array([0.1, 0.05, 0.2, 0.05, 0.01])
    cost = np.array([5.0, 8.0, 4.0, 9.0, 20.0])
    assert pareto_front(rmse, cost).tolist() == [4, 1, 0, 2]  # (0.05, 9) is dominated by (0.05, 8)


def test_reverse_water_filling_matches_the_closed_form():
    # One unit-variance component at distortion theta < 1 needs log2(1/theta)/2 bits.
    rmse, bits = reverse_water_filling(np.array([1.0]), n_points=5)
    np.testing.assert_allclose(bits, 0.5 * np.log2(1.0 / rmse**2))
    # Components below the water level get no bits and keep their variance as distortion.
    rmse, bits = reverse_water_filling(np.array([4.0, 0.01]), n_points=200)
    low = bits < 2 * 0.5 * np.log2(4.0 / 0.01)
    assert np.all(np.diff(bits) >= 0) and np.all(np.diff(rmse) <= 0) and low.any()


def _labelled_ticks(fig: Figure, axis) -> list:
    """The visible, non-empty major tick labels of `axis` inside its view, with their window extents."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    return [
        (label.get_text(), label.get_window_extent(renderer))
        for loc, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
        if lo <= loc <= hi and label.get_visible() and label.get_text()
    ]


def _assert_readable(fig: Figure, axis, name: str) -> None:
    ticks = _labelled_ticks(fig, axis)
    if axis.get_scale() == "log":
        assert len(ticks) >= 2, f"{name}: a log axis with {len(ticks)} labelled ticks"
        assert not any(t.get_text() for t in axis.get_minorticklabels()), f"{name}: minor labels (they overlap)"
    horizontal = axis.axis_name == "x"
    spans = sorted((box.x0, box.x1) if horizontal else (box.y0, box.y1) for _, box in ticks)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 0.5, f"{name}: tick labels overlap ({[t for t, _ in ticks]})"


@pytest.mark.parametrize("limits", [(20, 45), (0.0023, 0.035), (1e-3, 1e4), (19.5, 20.5), (0.2, 3.0), (3, 780)])
def test_log_axes_get_plain_labels_that_do_not_overlap(limits):
    # (20, 45): mean tokens inside one decade, the left rate-distortion panel that had no y labels at all.
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    label_log_axes(ax)
    for axis in (ax.xaxis, ax.yaxis):
        _assert_readable(fig, axis, f"{axis.axis_name} {limits}")
        assert all(re.fullmatch(r"[0-9.e+-]+", text) for text, _ in _labelled_ticks(fig, axis))
    plt.close(fig)


def test_twenty_series_look_distinct(pusht_results):
    rows = _many_series(pusht_results)
    styles = series_styles(rows)
    assert len(set(styles)) == len(rows) == 20
    colour = {r.config["tokenizer"]: c for r, (c, _) in zip(rows, styles, strict=True)}
    assert len(set(colour.values())) == len(colour) == len(available_tokenizers())  # one colour per tokenizer
    assert colour["binning"] != colour["wavelet"]  # both were tab10 blue with 11 tokenizers
    assert "#d62728" not in colour.values()  # red is the bound's


def test_repeated_configuration_gets_a_distinct_label(pusht_results):
    binning = _result(pusht_results, "binning")
    sweep = [copy.deepcopy(binning) for _ in range(3)]
    sweep[2].config["tokenizer_params"]["n_bins"] = 64
    assert series_labels(sweep) == ["binning(n_bins=256)", "binning(n_bins=256) #2", "binning(n_bins=64)"]


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_with_twenty_series_are_readable(pusht_results, name):
    rows = _many_series(pusht_results)
    fig = FIGURES[name](rows, series_labels(rows))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for i, ax in enumerate(fig.axes):
        for axis in (ax.xaxis, ax.yaxis):
            _assert_readable(fig, axis, f"{name} axes {i} {axis.axis_name}")
    for i, ax in enumerate(fig.axes):  # a legend sits outside every plotting area
        for legend in [*fig.legends, *filter(None, [a.get_legend() for a in fig.axes])]:
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), f"{name} {i}"
    plt.close(fig)


def test_fixed_length_tokenizer_is_marked_in_the_token_length_figure(pusht_results):
    rows = [_result(pusht_results, "binning"), _result(pusht_results, "fast")]
    assert rows[0].metrics["token_length_counts"] == [[20, rows[0].metrics["num_chunks_evaluated"]]]
    fig = token_length_figure(rows, series_labels(rows))
    (ax,) = fig.axes
    marked = [line for line in ax.lines if line.get_marker() not in ("None", "", None)]
    assert [list(line.get_xdata()) for line in marked] == [[20.0]]
    assert "20 (fixed)" in [t.get_text() for t in ax.texts]
    plt.close(fig)


def test_the_bits_panel_draws_the_dct_and_the_klt_bound(pusht_results):
    rows = [_result(pusht_results, name) for name in ("binning", "fast", "klt")]

    def bound_styles(rows) -> list[str]:
        fig = rate_distortion_figure(rows, series_labels(rows))
        styles = [line.get_linestyle() for line in fig.axes[1].lines if line.get_label().startswith("Gaussian bound")]
        plt.close(fig)
        return styles

    assert bound_styles(rows) == ["-", ":"]
    older = copy.deepcopy(rows)  # results written before the KLT bound: the DCT one alone
    for r in older:
        del r.metrics["train_klt_coefficient_variances"]
    assert bound_styles(older) == ["-"]


def test_the_table_gives_each_result_its_gap_to_the_klt_bound_in_tokens(pusht_results):
    klt = _result(pusht_results, "klt")
    column = [key for _, key, _ in TABLE_COLUMNS].index("klt_bound_gap_tokens")
    assert _cells(klt, "klt")[column] == f"{klt.metrics['klt_bound_gap_tokens']:.1f}"
    del klt.metrics["klt_bound_gap_tokens"]  # an older result
    assert _cells(klt, "klt")[column] == "–"


def test_the_prefix_curve_figure_has_a_line_per_result_that_decodes_prefixes(pusht_results):
    rows = [_result(pusht_results, name) for name in ("binning", "fast", "klt")]
    assert prefix_curve_figure(rows[:2], series_labels(rows[:2])) is None  # neither decodes a cut sequence
    fig = prefix_curve_figure(rows, series_labels(rows))
    (ax,) = fig.axes
    (line,) = ax.lines
    assert list(line.get_xdata()) == [25, 50, 75, 100] and list(line.get_ydata()) == rows[2].metrics["prefix_rmse"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["klt"]
    plt.close(fig)


def _corrupt(valid: dict) -> dict[str, tuple[bytes, str]]:
    """File name -> (content, the problem its warning must name)."""

    def variant(change) -> bytes:
        data = copy.deepcopy(valid)
        change(data)
        return json.dumps(data).encode()

    return {
        "truncated.json": (b'{"config": {', "not valid JSON (Expecting property name"),
        "binary.json": (b"\xff\xfe\x00\x01", "not UTF-8 text"),
        "list.json": (b"[1, 2]", "the JSON is a list, not an object with 'config' and 'metrics'"),
        "notes.json": (b'{"not": "a result"}', "no 'config' or 'metrics' key"),
        "no_metrics.json": (variant(lambda d: d.pop("metrics")), "no 'metrics' key"),
        "config_text.json": (variant(lambda d: d.update(config="x")), "'config' is a string, expected an object"),
        "no_rmse.json": (
            variant(lambda d: d["metrics"].pop("reconstruction_rmse")),
            "'metrics' has no 'reconstruction_rmse'",
        ),
        "rmse_text.json": (
            variant(lambda d: d["metrics"].update(reconstruction_rmse="abc")),
            'metrics.reconstruction_rmse is "abc" (a string), expected a finite number',
        ),
        "rmse_nan.json": (
            variant(lambda d: d["metrics"].update(reconstruction_rmse=float("nan"))),
            "metrics.reconstruction_rmse is NaN (a number), expected a finite number",
        ),
        "chunks_bool.json": (
            variant(lambda d: d["metrics"].update(num_chunks_evaluated=True)),
            "metrics.num_chunks_evaluated is true (true), expected an integer",
        ),
        "vocab_float.json": (
            variant(lambda d: d["metrics"].update(vocab_size=2.5)),
            "metrics.vocab_size is 2.5 (a number), expected an integer",
        ),
        "mae_text.json": (
            variant(lambda d: d["metrics"].update(per_dimension_mae=["a"] * 30)),
            'metrics.per_dimension_mae is ["a", "a", "a", "a", "a", "a", "a", "... (a list), expected a list of numbers',
        ),
        "counts_triples.json": (
            variant(lambda d: d["metrics"].update(token_length_counts=[[20, 5, 1]])),
            "metrics.token_length_counts is [[20, 5, 1]] (a list), expected a list of [length, count] pairs",
        ),
        "prefix_text.json": (
            variant(lambda d: d["metrics"].update(prefix_rmse="abc")),
            'metrics.prefix_rmse is "abc" (a string), expected a list of numbers',
        ),
        "params_list.json": (
            variant(lambda d: d["config"].update(tokenizer_params=[1])),
            "config.tokenizer_params is [1] (a list), expected an object",
        ),
        "tokenizer_null.json": (
            variant(lambda d: d["config"].update(tokenizer=None)),
            "config.tokenizer is null (null), expected a string",
        ),
        "future.json": (
            variant(lambda d: d.update(schema_version=3)),
            "schema_version 3 is not one this actok reads (1 to 2; a newer actok wrote it?)",
        ),
        "version_text.json": (
            variant(lambda d: d.update(schema_version="2")),
            'schema_version "2" is not one this actok reads',
        ),
    }


def test_each_corrupt_result_file_is_skipped_with_a_warning_naming_it(pusht_results, tmp_path):
    for path in pusht_results.glob("*.json"):
        shutil.copy(path, tmp_path)
    corrupt = _corrupt(_result(pusht_results, "binning").to_json())
    for name, (content, _) in corrupt.items():
        (tmp_path / name).write_bytes(content)
    with pytest.warns(ActokWarning) as caught:
        results = load_results(tmp_path)
    assert sorted(r.config["tokenizer"] for r in results) == ["binning", "fast", "klt"]  # the valid ones remain
    messages = sorted(str(w.message) for w in caught)
    expected = sorted(f"skipped {tmp_path / name}: {problem}" for name, (_, problem) in corrupt.items())
    assert len(messages) == len(expected)
    for message, start in zip(messages, expected, strict=True):
        assert message.startswith(start), (message, start)


def test_report_cli_warns_per_corrupt_file_and_fails_when_none_is_valid(pusht_results, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(pusht_results, mixed)
    (mixed / "broken.json").write_text('{"config": ')
    assert main(["report", str(mixed), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped {mixed / 'broken.json'}: not valid JSON" in err
    md = (mixed / "report.md").read_text()
    assert "3 results from" in md and "REFERENCES" not in md and "Theorem 10.3.3" in md  # a citation that exists

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.json").write_text("[]")
    (broken / "b.json").write_text("not json")
    assert main(["report", str(broken)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and err[0].startswith("warning: skipped") and err[1].startswith("warning: skipped")
    assert (
        err[2]
        == f"actok report: error: no valid bench result in {broken}: all 2 JSON file(s) were skipped (see the warnings above)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ActokError, match=r"no bench result JSON in .*empty \(run `actok bench"):
        load_results(empty)


@pytest.mark.slow
def test_report_from_bench_results(tmp_path, capsys):
    results = tmp_path / "results"
    root = str(dataset_root("pusht"))
    assert (
        main(
            [
                "bench",
                "--root",
                root,
                "--sweep",
                "fast:scale=5,20",
                "--tokenizer",
                "binning",
                "--output-dir",
                str(results),
            ]
        )
        == 0
    )
    (results / "notes.json").write_text(json.dumps({"not": "a result"}))  # another JSON file: skipped, with a warning
    before = sorted(p.name for p in results.glob("*.json"))
    capsys.readouterr()
    assert main(["report", str(results)]) == 0
    assert f"warning: skipped {results / 'notes.json'}: no 'config' or 'metrics' key" in capsys.readouterr().err
    assert sorted(p.name for p in results.glob("*.json")) == before  # nothing re-run or rewritten
    md = (results / "report.md").read_text()
    assert "pusht: H=10" in md and "fast(scale=5.0)" in md and "fast(scale=20.0)" in md and "binning" in md
    assert len(re.findall(r"!\[\w+\]\(report_files/0_\w+\.png\)", md)) == 4
    page = (results / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # self-contained: figures inlined
    assert "http" not in page.replace("https://", "").lower() or 'src="http' not in page
    assert main(["report", str(results)]) == 2  # an existing report is not replaced silently
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty_or_missing")]) == 2


def _png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_report_renders_in_headless_chromium(pusht_results, tmp_path):
    """Open the self-contained report in headless Chromium (when installed): every figure decodes at its PNG's
    size and is laid out with a non-zero size, and the screenshot is a page, not a blank."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium on this machine")
    results = tmp_path / "r"
    shutil.copytree(pusht_results, results)
    assert main(["report", str(results)]) == 0
    figures = sorted((results / "report_files").glob("*.png"))
    assert len(figures) == len(FIGURES) == 5  # klt's prefix curve included
    # A probe copy of the page records what the browser made of each <img> once the page has loaded.
    probe = tmp_path / "probe.html"
    script = (
        "<script>addEventListener('load', () => { document.body.dataset.images = JSON.stringify("
        "[...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight, i.width, i.height]))"
        "})</script>"
    )
    probe.write_text((results / "report.html").read_text().replace("</body>", script + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(
        [*flags, "--dump-dom", "--virtual-time-budget=10000", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, "Chromium did not load the page"
    images = json.loads(found.group(1).replace("&quot;", '"'))
    sizes = {path.name.split("_", 1)[1][: -len(".png")]: _png_size(path.read_bytes()) for path in figures}
    assert [alt for alt, *_ in images] == list(FIGURES)
    for alt, complete, natural_w, natural_h, width, height in images:
        assert complete and (natural_w, natural_h) == sizes[alt], alt  # decoded, at the figure's own size
        assert width > 0 and height > 0, alt
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,2000", (results / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200) and pixels[..., :3].std() > 0.05  # not a blank page


def test_version_1_result_files_still_load(pusht_results, tmp_path):
    """Files written before `schema_version` existed (version 1: the same config and metrics) are read as they are."""
    current = _result(pusht_results, "fast").to_json()
    assert current["schema_version"] == SCHEMA_VERSION == 2
    old = {key: value for key, value in current.items() if key != "schema_version"}
    (tmp_path / "old_action_tokenizer_results.json").write_text(json.dumps(old))
    (result,) = load_results(tmp_path)
    assert result.config == current["config"] and result.metrics == current["metrics"]  # what the report draws


def test_every_value_the_report_draws_is_checked_when_a_result_is_read():
    checked = {**REQUIRED_FIELDS["metrics"], **OPTIONAL_FIELDS["metrics"]}
    assert {key for _, key, _ in TABLE_COLUMNS if key} <= set(checked)
    with pytest.raises(ResultFileError, match=r"^x.json is not a readable bench result: no 'config' or 'metrics' key"):
        BenchResult.from_json({}, Path("x.json"))
