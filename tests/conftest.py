"""Shared test helpers. Tests that need ../shared (official fixtures, real recordings) skip where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURORVQ_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "official"
DATA = SHARED / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set NEURORVQ_SHARED to the folder holding fixtures/ and data/)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require(FIXTURES, "official fixtures")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA, "shared recordings")
