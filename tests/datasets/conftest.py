"""Fixtures of the data set tests: the shared data folder (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real data sets next to the repository (``../shared/data``)."""
    if not (DATA / "README.md").is_file():
        pytest.skip(f"real data sets not available at {DATA}")
    return DATA
