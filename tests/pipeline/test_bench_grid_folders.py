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


@pytest.mark.parametrize("home", [False, True])
@pytest.mark.parametrize("where", ["the source itself", "its folder"])
def test_a_store_folder_holding_a_pipelines_source_store_is_refused(tmp_path: Path, where: str, home: bool,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A grid run replaces the stores in ``--store``: a source store there was removed with them,
    also one named from the home folder (``~/stores/mine``, which the store opens expanded)."""
    import numpy as np
    import pyarrow as pa

    from modyn_store.app.pipeline.bench import parse_grid

    monkeypatch.setenv("HOME", str(tmp_path))
    src = tmp_path / "stores" / "mine"
    store = Store.open(str(src), create=True)
    for i in range(3):
        features = pa.FixedSizeListArray.from_arrays(pa.array(np.linspace(0, 1, 80), pa.float32()), 2)
        store.append(pa.table({"ts": np.arange(i * 40, (i + 1) * 40), "features": features,
                               "label": np.arange(40) % 2}))
    grid = parse_grid({"title": "t", "base": {"source": {"store": "~/stores/mine" if home else str(src)},
                                              "model": {"name": "logreg"}},
                       "pipelines": [{"name": "a", "trigger": {"name": "data_amount", "every": 40}}]})
    root = src if where == "the source itself" else src.parent  # (as a shell expands ~ in --store)
    with pytest.raises(PipelineConfigError) as info:
        run_grid(grid, tmp_path / "out", store_dir=root)
    assert info.value.key == "--store" and "source store" in str(info.value)
    assert Store.open(str(src)).version == 3
    assert Store.open(str(src)).as_of().count() == 120
