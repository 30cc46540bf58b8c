"""Shared fixtures. Tests read the datasets shipped with the repository: the bundled Push-T
(`src/actok/example_data/pusht`) and copies of three other real datasets in `tests/data` (see its README.md).
`ACTOK_SHARED_DATASETS=<folder>` reads them from that folder instead (CI points it at the shared datasets); a
dataset missing there is a failure, never a skip."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

import actok
from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks

BUNDLED = {
    "pusht": Path(actok.__file__).parent / "example_data" / "pusht",
    **{
        name: Path(__file__).parent / "data" / name
        for name in ("unitree_g1_pickbottle", "reachy2_apple_storage", "robosuite_panda")
    },
}
DATASET_NAMES = list(BUNDLED)
G1_ARM_DIMS = ",".join(str(d) for d in range(14))


def pytest_configure(config):
    # The learned tokenizers' test models are tiny: one torch thread trains them several times faster than two
    # threads contending for a busy 2-core machine.
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


def dataset_root(name: str) -> Path:
    """A test dataset's folder: in ACTOK_SHARED_DATASETS when it is set, else the copy shipped with the repository.
    A missing folder fails the test (it would otherwise be a test that never runs)."""
    shared = os.environ.get("ACTOK_SHARED_DATASETS")
    root = Path(shared) / name if shared else BUNDLED[name]
    if not root.is_dir():
        where = f"ACTOK_SHARED_DATASETS={shared}" if shared else "the repository"
        pytest.fail(f"the dataset {name} is missing from {where} ({root})")
    return root


@pytest.fixture(scope="session")
def readers() -> dict[str, LeRobotDatasetReader]:
    return {name: LeRobotDatasetReader(dataset_root(name)) for name in DATASET_NAMES}


@pytest.fixture(scope="session")
def pusht_chunks(readers):
    return build_chunks(readers["pusht"], ChunkConfig(action_horizon=10, sample_fraction=0.2))


@pytest.fixture(scope="session")
def g1_chunks(readers):
    return build_chunks(
        readers["unitree_g1_pickbottle"],
        ChunkConfig(action_horizon=30, delta_dims=G1_ARM_DIMS, sample_fraction=0.1),
    )


@pytest.fixture
def copy_dataset(tmp_path):
    """Copy a test dataset into tmp_path (to alter it) and return the copy's root."""

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(dataset_root(name), dst)
        return dst

    return _copy


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`actok ARGS` in this process: (exit code, stdout, stderr)."""
    from actok.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, pattern: str, exit_code: int = 2) -> None:
    """The command failed with `exit_code` and one line on stderr (warnings aside) containing `pattern`."""
    assert code == exit_code, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]
