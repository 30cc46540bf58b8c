"""Where the commands write: nothing a user has is lost, runs never race, Ctrl-C leaves nothing half-written.

Runs on the bundled dataset only, so a bare clone tests all of it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

import actok.codec
from actok.outputs import output_lock, write_file_atomically

BUNDLED = Path(str(resources.files("actok") / "example_data" / "pusht"))


def train(out, capsys, *extra):
    return run_cli(["train", "--root", BUNDLED, "--tokenizer", "binning", "--output-dir", out, *extra], capsys)


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        (".", "working directory"),
        ("..", "working directory"),
        ("HOME", "home folder"),
        ("/", "root folder"),
        ("DATASET", "overlaps the dataset folder"),
        ("DATASET/meta", "overlaps the dataset folder"),
        ("FILE", "is not a folder"),
        ("FILE/sub", "is a file, not a folder"),
    ],
)
def test_train_refuses_outputs_that_could_destroy_user_data(where, pattern, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("mine")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    target = {"HOME": str(tmp_path / "home")}.get(where, where).replace("FILE", "precious.txt")
    target = target.replace("DATASET", str(BUNDLED))
    code, _, err = train(target, capsys, "--overwrite")
    assert_one_line_error(code, err, pattern)
    assert (work / "precious.txt").read_text() == "mine"
    assert sorted(p.name for p in work.iterdir()) == ["precious.txt"]


def test_overwrite_replaces_only_folders_actok_wrote(tmp_path, capsys):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert_one_line_error(*train(user, capsys, "--overwrite")[::2], "not written by actok")
    assert (user / "notes.txt").read_text() == "mine"

    out = tmp_path / "tok"
    assert train(out, capsys)[0] == 0
    assert_one_line_error(*train(out, capsys)[::2], "pass --overwrite")
    assert train(out, capsys, "--overwrite")[0] == 0
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(*train(out, capsys, "--overwrite")[::2], "notes.txt")
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary or lock files left


def test_a_second_run_into_a_held_output_stops_at_once(tmp_path, capsys):
    out = tmp_path / "tok"
    with output_lock(out):
        code, _, err = train(out, capsys)
        assert_one_line_error(code, err, "another actok run is writing")
        code, _, err = run_cli(["bench", "--tokenizer", "binning", "--output-dir", out], capsys)
        assert_one_line_error(code, err, "another actok run is writing")
    assert not out.exists()
    assert train(out, capsys)[0] == 0  # the lock is gone with the run that held it


@pytest.mark.slow
def test_concurrent_train_runs_one_wins_the_others_exit_2(tmp_path):
    out = tmp_path / "tok"
    cmd = [sys.executable, "-m", "actok", "train", "--root", str(BUNDLED), "--output-dir", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2, 2], results
    for code, err in results:
        if code == 2:
            assert ("another actok run" in err or "already exists" in err) and "Traceback" not in err, err
    assert json.loads((out / "actok_tokenizer.json").read_text())["tokenizer"] == "fast"


def test_interrupt_mid_write_keeps_the_previous_folder_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    out = tmp_path / "tok"
    assert train(out, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def interrupted_save(self, path):
        (Path(path) / "partial.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(actok.codec.ActionCodec, "save", interrupted_save)
    code, _, err = train(out, capsys, "--overwrite")
    assert_one_line_error(code, err, "interrupted", exit_code=130)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 1.5, 3.0])  # after the interpreter itself has started
def test_ctrl_c_at_any_moment_of_a_real_run_is_one_line_and_exit_130(delay, tmp_path):
    """SIGINT at several moments (while importing, reading, fitting, writing, or after): either the run had
    finished (exit 0, a complete folder) or it says "interrupted" on one line, exits 130 and leaves nothing."""
    out = tmp_path / "tok"
    cmd = [sys.executable, "-m", "actok", "train", "--root", str(BUNDLED), "--output-dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    if proc.returncode == 0:
        assert (out / "actok_tokenizer.json").is_file()
        return
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines()[-1] in ("actok: interrupted", "actok train: interrupted"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bench_report_never_replaces_a_report_without_overwrite(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "--tokenizer", "binning", "--output-dir", out, "--report"]
    assert run_cli(args, capsys)[0] == 0
    results = sorted(out.glob("*.json"))
    (out / "report.md").write_text("my edits")
    code, _, err = run_cli(args, capsys)
    assert_one_line_error(code, err, "pass --overwrite")
    assert sorted(out.glob("*.json")) == results  # refused before any work
    assert (out / "report.md").read_text() == "my edits"
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0
    assert (out / "report.md").read_text() != "my edits"


def test_write_file_atomically_never_replaces_without_overwrite(tmp_path):
    path = tmp_path / "a.txt"
    write_file_atomically(path, "one", overwrite=False)
    with pytest.raises(actok.errors.ActokError, match="already exists"):
        write_file_atomically(path, "two", overwrite=False)
    assert path.read_text() == "one"
    write_file_atomically(path, "two", overwrite=True)
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["train", "--tokenizer", ""], "--tokenizer is empty"),
        (["train", "--tokenizer", "fast,binning"], "one tokenizer"),
        (["bench", "--tokenizer", ""], "--tokenizer is empty"),
        (["bench", "--tokenizer", "binning,binning"], "requested twice"),
        (["bench", "--sweep", "fast:scale=2;scale=5"], "scale is given twice"),
        (["bench", "--sweep", "fast:scale=2,2"], "requested twice"),
        (["bench", "--sweep", "fast:scale=[1,"], "not valid JSON"),
        (["bench", "--tokenizer", "fast", "--tokenizer-param", "scale=[1,"], "not valid JSON"),
        (["bench", "--output-dir", ""], "--output-dir is empty"),
        (["train", "--encoded-dims", ""], "encoded_dims"),
        (["bench", "--encoded-dims", " "], "encoded_dims"),
    ],
)
def test_ambiguous_flags_are_refused_not_defaulted(args, pattern, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    extra = ["--root", BUNDLED] if args[0] == "train" else []
    code, _, err = run_cli([*args, *extra], capsys)
    assert_one_line_error(code, err, pattern)
    assert list(tmp_path.iterdir()) == []


def test_api_save_never_replaces_a_users_files(tmp_path):
    import numpy as np

    from actok import create_tokenizer, load_tokenizer

    chunks = np.random.default_rng(0).uniform(-1, 1, (50, 10, 2))
    fast = create_tokenizer("fast", scale=2.0, vocab_size=256).fit(chunks)
    binning = create_tokenizer("binning").fit(chunks)
    user = tmp_path / "user"
    user.mkdir()
    (user / "tokenizer.json").write_text("mine")
    with pytest.raises(actok.errors.ActokError, match="pass overwrite=True"):
        fast.save(user)
    with pytest.raises(actok.errors.ActokError, match="not written by actok"):
        fast.save(user, overwrite=True)
    assert (user / "tokenizer.json").read_text() == "mine"

    folder = fast.save(tmp_path / "tok")
    with pytest.raises(actok.errors.ActokError, match="already exists"):
        binning.save(folder)
    binning.save(folder, overwrite=True)  # actok's own folder: replaced whole, no stale FAST files left
    assert load_tokenizer(folder).name == "binning" and not (folder / "tokenizer.json").exists()


def test_overwrite_looks_inside_actoks_own_subfolders(tmp_path, capsys):
    out = tmp_path / "tok"
    assert run_cli(["train", "--root", BUNDLED, "--output-dir", out], capsys)[0] == 0  # fast: writes bpe_tokenizer/
    (out / "bpe_tokenizer" / "NOTES.txt").write_text("mine")
    code, _, err = run_cli(["train", "--root", BUNDLED, "--output-dir", out, "--overwrite"], capsys)
    assert_one_line_error(code, err, "bpe_tokenizer/NOTES.txt")
    assert (out / "bpe_tokenizer" / "NOTES.txt").read_text() == "mine"


def test_symlinks_and_other_datasets_cannot_lead_a_write_into_a_dataset(tmp_path, capsys):
    import shutil

    data = tmp_path / "ds"
    shutil.copytree(BUNDLED, data)
    other = tmp_path / "other"
    shutil.copytree(BUNDLED, other)
    (tmp_path / "link").symlink_to(data)
    before = sorted(p.name for p in data.iterdir())
    for root, target in [
        (data, tmp_path / "link" / "new"),  # a link into the dataset
        (tmp_path / "link", data / "sub"),  # the dataset given through a link
        (data, other / "sub"),  # inside another dataset
    ]:
        code, _, err = (
            train(target, capsys)
            if root == data
            else run_cli(["train", "--root", root, "--tokenizer", "binning", "--output-dir", target], capsys)
        )
        assert_one_line_error(code, err, "dataset folder")
        code, _, err = run_cli(["bench", "--root", root, "--tokenizer", "binning", "--output-dir", target], capsys)
        assert_one_line_error(code, err, "dataset folder")
    assert sorted(p.name for p in data.iterdir()) == before and not (other / "sub").exists()


def test_report_on_a_file_says_it_is_a_file(tmp_path, capsys):
    (tmp_path / "r.json").write_text("{}")
    code, _, err = run_cli(["report", tmp_path / "r.json"], capsys)
    assert_one_line_error(code, err, "is a file")
