"""Grid runs: earlier stores survive a grid that cannot start; one run per folder at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store import Store
from modyn_store.app.pipeline.bench import _claim, load_definition, parse_grid, run_grid
from modyn_store.app.pipeline.errors import PipelineConfigError


def test_stores_of_an_earlier_run_survive_a_grid_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODYN_STORE_DATA", raising=False)
    root = tmp_path / "stores"
    Store.open(str(root / "shared"), create=True)
    grid = parse_grid(load_definition("noaa_weather"))
    with pytest.raises(PipelineConfigError, match="no data"):
        run_grid(grid, tmp_path / "out", store_dir=root)
    assert (root / "shared").is_dir()


def test_a_folder_in_use_by_another_grid_run_is_refused(tmp_path: Path) -> None:
    grid = parse_grid(load_definition("elec2"))
    held = _claim(tmp_path / "out", "--out")
    try:
        with pytest.raises(PipelineConfigError) as info:
            run_grid(grid, tmp_path / "out")
        assert info.value.key == "--out"
        with pytest.raises(PipelineConfigError) as info:
            run_grid(grid, tmp_path / "other", store_dir=tmp_path / "out")
        assert info.value.key == "--store"
    finally:
        held.release()
    again = _claim(tmp_path / "out", "--out")  # released after the refusals
    again.release()
