"""Where actok writes, and how: one rule for every command.

- Nothing that exists is replaced without `overwrite=True` (`--overwrite`), and `--overwrite` replaces only what
  actok wrote: a tokenizer folder that holds actok's own config and nothing else, or actok's report files.
- A folder that cannot be an output is refused up front: the working directory or one of its ancestors, the
  home or root folder, a dataset folder (or a folder inside it, or one that contains it).
- Results appear whole or not at all: a folder is written beside its destination and renamed into place; a file
  is written to a temporary name and renamed. A failure or Ctrl-C leaves what was there before.
- One run at a time per output: a second run into the same output, while the first holds it, stops at once with
  exit 2 instead of racing it (an advisory lock file beside the output, removed when the run ends).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from actok.errors import ActokError

# What `actok train` / `ActionCodec.save` may put in a tokenizer folder (every tokenizer's files, and the
# transformers-5 subfolder); a folder holding anything else is not replaced by --overwrite.
TOKENIZER_FOLDER_FILES = frozenset(
    {
        "actok_tokenizer.json",
        "pipeline.json",
        "metadata.json",
        "fit_profile.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "processing_action_tokenizer.py",
        "processing_klt.py",
        "bpe_tokenizer",
        "model.safetensors",
        "klt_basis.npz",
        "__pycache__",
    }
)
TOKENIZER_MARKER = "actok_tokenizer.json"


def _resolved(path: str | os.PathLike) -> Path:
    """The real absolute path (symlinks resolved, so a link cannot lead a write into a dataset)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _inside_a_dataset(target: Path) -> Path | None:
    """The LeRobot dataset folder (one with meta/info.json) that `target` is or lies in, if any."""
    for folder in (target, *target.parents):
        if (folder / "meta" / "info.json").is_file():
            return folder
    return None


def check_output_location(
    path: str | os.PathLike, datasets: Sequence[str | os.PathLike] = (), replaces_folder: bool = True
) -> Path:
    """Refuse an output location that could never be safe; returns the absolute path. `replaces_folder`: the
    output is a whole folder that `--overwrite` replaces (train), so the working directory, its parents, home and
    root are refused too; a folder that only receives files (bench results) must merely not overlap a dataset."""
    target = _resolved(path)
    shown = f"'{path}'"
    if target.exists() and not target.is_dir():
        raise ActokError(f"output path {shown} exists and is not a folder")
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ActokError(f"output path {shown} cannot be created: {blocking} is a file, not a folder")
    if replaces_folder:
        cwd, home = _resolved(Path.cwd()), _resolved(Path.home())
        if target == Path(target.anchor):
            raise ActokError(f"output folder {shown} is the root folder; choose a new folder")
        if target == home:
            raise ActokError(f"output folder {shown} is your home folder; choose a new folder")
        if target == cwd or target in cwd.parents:
            raise ActokError(
                f"output folder {shown} is the working directory or one of its parents; choose a new folder, "
                "e.g. ./my_tokenizer"
            )
    for dataset in datasets:
        root = _resolved(dataset)
        if target == root or root in target.parents or target in root.parents:
            raise ActokError(f"output folder {shown} overlaps the dataset folder {root}; write outside the dataset")
    other = _inside_a_dataset(target)
    if other is not None:
        raise ActokError(f"output folder {shown} lies inside the dataset folder {other}; write outside the dataset")
    return target


# What actok writes inside its own subfolders.
SUBFOLDER_FILES = {"bpe_tokenizer": frozenset({"tokenizer.json", "tokenizer_config.json"})}


def foreign_entries(folder: Path) -> list[str]:
    """Entries of a tokenizer folder that actok does not write (what is in the way of an overwrite), also inside
    actok's own subfolders."""
    out = []
    for p in folder.iterdir():
        if p.name not in TOKENIZER_FOLDER_FILES or p.is_symlink():
            out.append(p.name)
        elif p.is_dir():
            if p.name == "__pycache__":
                out += [f"{p.name}/{q.name}" for q in p.iterdir() if q.suffix != ".pyc" or not q.is_file()]
            else:
                allowed = SUBFOLDER_FILES.get(p.name, frozenset())
                out += [f"{p.name}/{q.name}" for q in p.iterdir() if q.name not in allowed or not q.is_file()]
        elif p.name in SUBFOLDER_FILES:  # a file where actok writes a folder
            out.append(p.name)
    return sorted(out)


def check_replaceable_folder(folder: Path, overwrite: bool, flag: str = "--overwrite") -> None:
    """A tokenizer output folder may be written when it does not exist or is empty, or, with `overwrite`, when it
    is a tokenizer folder actok wrote (its config file, nothing but actok's files). `flag`: how the caller spells
    the permission in messages (`--overwrite`, or `overwrite=True` for the Python API)."""
    if folder.exists() and not folder.is_dir():
        raise ActokError(f"output path {folder} exists and is not a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise ActokError(f"output folder {folder} already exists and is not empty; pass {flag} to replace it")
    if not (folder / TOKENIZER_MARKER).is_file():
        raise ActokError(
            f"{flag} refused: {folder} was not written by actok (no {TOKENIZER_MARKER}); "
            "remove it yourself or choose another folder"
        )
    foreign = foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ActokError(
            f"{flag} refused: {folder} holds files actok did not write ({shown}); "
            "move them away or choose another folder"
        )


def clear_tokenizer_folder(folder: Path) -> None:
    """Remove actok's own files from a folder `check_replaceable_folder` allowed (stale files of another tokenizer
    must not survive a save over it)."""
    for entry in folder.iterdir():
        if entry.name in TOKENIZER_FOLDER_FILES:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on the output `path` for a run; a second run fails at once with exit 2.

    The lock file `.{name}.actok-lock` sits beside the output (so it works before the output exists) and is
    removed at the end; the inode check guards against taking a lock on a file another run just removed."""
    target = _resolved(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.actok-lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ActokError(
                    f"another actok run is writing {target} right now; wait for it to finish or choose another "
                    "--output-dir"
                ) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def write_folder_atomically(path: Path, write: Callable[[Path], None], overwrite: bool) -> None:
    """Write a folder through `write(tmp)` in a sibling temporary folder, then move it into place.

    Call under `output_lock(path)`. An existing folder is only replaced with `overwrite` and when
    `check_replaceable_folder` allows it (checked again at the move); it is first renamed aside, so a failure
    before the final rename puts it back."""
    path = _resolved(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".actok-tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would make the result private
    try:
        write(tmp)
    except BaseException:
        with interrupts_deferred():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    with interrupts_deferred():  # the swap and the clean-up run whole: a Ctrl-C lands after them
        aside: Path | None = None
        try:
            check_replaceable_folder(path, overwrite)
            if path.is_dir() and any(path.iterdir()):
                aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".actok-old", dir=path.parent))
                os.rename(path, aside / "old")
            elif path.is_dir():
                path.rmdir()  # empty: nothing to keep
            try:
                os.rename(tmp, path)
            except OSError as exc:
                if aside is not None:
                    os.rename(aside / "old", path)
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise ActokError(
                        f"{path} was created by something else while this run wrote it; nothing replaced"
                    ) from None
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while a few file-system steps must run whole; it is delivered right after.
    Only possible in the main thread (elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file_atomically(path: Path, data: bytes | str, overwrite: bool) -> None:
    """Write one file through a temporary name in the same folder; an existing file is replaced only with
    `overwrite` (without it, the final link fails if the file appeared meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".actok-tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic create-if-absent
            except FileExistsError:
                raise ActokError(f"{path} already exists; pass --overwrite to replace it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
