"""Sources: data paths from --data / $MODYN_STORE_DATA only, subsampling and encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modyn_store.app.pipeline import PipelineConfigError
from modyn_store.app.pipeline.config import SourceConfig
from modyn_store.app.pipeline.source import DATA_ENV, load_source, resolve_path


def test_paths_come_from_argument_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert resolve_path(SourceConfig("elec2")).name == "elec2.parquet"  # the bundled copy
    with pytest.raises(PipelineConfigError) as info:
        resolve_path(SourceConfig("noaa_weather"))
    assert info.value.key == "source.path" and DATA_ENV in info.value.message
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_path(SourceConfig("noaa_weather")) == tmp_path
    other = tmp_path / "other"
    other.mkdir()
    assert resolve_path(SourceConfig("noaa_weather"), other) == other  # --data wins over the environment
    with pytest.raises(PipelineConfigError) as info:
        resolve_path(SourceConfig("noaa_weather", path="missing.parquet"), tmp_path)
    assert info.value.key == "source.path"


def test_limit_fraction_and_columns() -> None:
    full = load_source(SourceConfig("elec2", limit=4000))
    half = load_source(SourceConfig("elec2", fraction=0.5, seed=3, columns=("features",)))
    assert full.num_rows == 4000
    assert half.column_names == ["key", "ts", "label", "features"]
    assert 0.45 * 45312 < half.num_rows < 0.55 * 45312
    both = load_source(SourceConfig("elec2", limit=4000, fraction=0.5, seed=3))  # sample first, then limit
    assert both.num_rows == 4000 and both.column("ts")[3999].as_py() > full.column("ts")[3999].as_py()
    ts = half.column("ts").to_numpy()
    assert np.all(ts[1:] >= ts[:-1])  # time order kept
    with pytest.raises(PipelineConfigError) as info:
        load_source(SourceConfig("elec2", limit=10, columns=("nope",)))
    assert info.value.key == "source.columns[0]"


def test_click_encoding_of_the_synthetic_stream() -> None:
    t = load_source(SourceConfig("synthetic_clicks", params={"n_rows": 500, "n_days": 2}, encode="clicks"))
    assert t.num_rows == 500
    assert t.schema.field("dense").type.list_size == 13 and t.schema.field("sparse").type.list_size == 26
    with pytest.raises(PipelineConfigError) as info:
        load_source(SourceConfig("synthetic_clicks", params={"n_rowz": 5}))
    assert info.value.key == "source.params"


def test_text_and_id_encodings(data_dir: Path) -> None:
    t = load_source(SourceConfig("reuters21578", limit=50, encode="hashed_bow"), data_dir)
    x = np.array(t.column("features").to_pylist(), dtype=np.float32)
    assert x.shape == (50, 512)
    norms = np.linalg.norm(x, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    m = load_source(SourceConfig("movielens100k", limit=20, encode="ids"), data_dir)
    ids = np.array(m.column("sparse").to_pylist())
    np.testing.assert_array_equal(ids[:, 0], m.column("user_id").to_numpy())
    np.testing.assert_array_equal(ids[:, 1], m.column("movie_id").to_numpy())
