"""The README's examples run as written, from a clone, offline: every `actok` command of its bash blocks and
every python block, in README order, in one folder (a README promise without a test is not kept).

Commands with a Hub `--repo-id` are run too: offline they must stop with a one-line error (exit 2). The full
case study and the development commands (pip, pytest, ruff, benchmarks) are not run here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)


def readme_steps() -> list[tuple[str, str]]:
    """(kind, code) in README order: one step per `actok` command line, one per python block."""
    steps = []
    for kind, body in BLOCK.findall((REPO / "README.md").read_text()):
        if kind == "python":
            steps.append(("python", body))
            continue
        for line in body.replace("\\\n", " ").splitlines():
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                if words[:1] == ["actok"] and _runnable(words):
                    steps.append(("bash", shlex.join(words)))
    return steps


def _runnable(words: list[str]) -> bool:
    if words[1:2] in (["casestudy"], ["policy"]):  # full runs take long; their quick tests and redraws do not
        return "--quick-test" in words or "--skip-training" in words
    return True


def _uses_hub(command: str) -> bool:
    return "--repo-id" in command or "--repo_id" in command


@pytest.mark.slow
def test_readme_examples_run_from_a_clone(tmp_path):
    (tmp_path / "src").symlink_to(REPO / "src")  # the README's paths are relative to the clone's root
    steps = readme_steps()
    assert sum(kind == "bash" for kind, _ in steps) >= 10 and sum(kind == "python" for kind, _ in steps) >= 4
    namespace: dict = {}
    for kind, code in steps:
        if kind == "python":
            exec(compile(code, "README.md", "exec"), namespace)
            continue
        args = [sys.executable, "-m", "actok", *shlex.split(code)[1:]]
        # one torch thread: on a 2-core machine two threads train the small learned models several times slower
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
        if _uses_hub(code) and proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
            assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, (code, proc.stderr)
            continue
        assert proc.returncode == 0, (code, proc.stderr[-2000:])


@pytest.fixture(autouse=True)
def _readme_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # python blocks write where the bash commands did
