"""Shared fixtures: the real data folder and store backends."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    """The folder of real time-ordered datasets (skips when it is not there)."""
    if not DATA.is_dir():
        pytest.skip(f"real datasets not found at {DATA}")
    return DATA


@pytest.fixture(params=["local", "memory"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on every backend that runs without a server."""
    if request.param == "local":
        return str(tmp_path / "store")
    return f"memory://{uuid.uuid4().hex}"
