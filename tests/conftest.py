"""Shared test fixtures: where the real photographs are, and where the built models are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root_path() -> Path:
    """The shared photographs: ``RFR_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = data_root_path()
    if not (root / "lfw").is_dir() or not (root / "examples").is_dir():
        pytest.fail(f"test photographs not found at {root}: set RFR_DATA or put shared/ beside the repository")
    return root
