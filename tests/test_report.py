"""`actok report`: from result JSON files only to report.md and a self-contained report.html."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import dataset_root

from actok.bench.metrics import reverse_water_filling
from actok.bench.report import pareto_front
from actok.cli import main


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
    (results / "notes.json").write_text(json.dumps({"not": "a result"}))  # other JSON files are skipped
    before = sorted(p.name for p in results.glob("*.json"))
    assert main(["report", str(results)]) == 0
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


def test_report_renders_in_headless_chromium(tmp_path):
    """Open the self-contained report in headless Chromium (when installed) and check the screenshot is a page."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless Chromium on this machine")
    results = tmp_path / "r"
    assert (
        main(
            [
                "bench",
                "--root",
                str(dataset_root("pusht")),
                "--tokenizer",
                "binning,fast",
                "--output-dir",
                str(results),
                "--report",
            ]
        )
        == 0
    )
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (results / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200) and pixels[..., :3].std() > 0.05  # not a blank page
