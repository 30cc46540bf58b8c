"""Shared fixtures. Tests use the real datasets in ../shared/datasets (override with ACTOK_SHARED_DATASETS)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from actok.data import ChunkConfig, LeRobotDatasetReader, build_chunks

DATASETS = Path(
    os.environ.get("ACTOK_SHARED_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets")
)
DATASET_NAMES = ["pusht", "unitree_g1_pickbottle", "reachy2_apple_storage", "robosuite_panda"]
G1_ARM_DIMS = ",".join(str(d) for d in range(14))


def dataset_root(name: str) -> Path:
    """A shared dataset's folder. Without ACTOK_SHARED_DATASETS (a bare clone) a missing one skips the test; when
    the variable is set (CI sets it) a missing dataset is a failure, never a silent skip."""
    root = DATASETS / name
    if not root.is_dir():
        if "ACTOK_SHARED_DATASETS" in os.environ:
            pytest.fail(f"ACTOK_SHARED_DATASETS is set but the shared dataset {root} is missing")
        pytest.skip(f"shared dataset {root} not found (set ACTOK_SHARED_DATASETS to run this test)")
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
    """Copy a shared dataset into tmp_path (to alter it) and return the copy's root."""

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(dataset_root(name), dst)
        return dst

    return _copy
