"""Sources: data paths from --data / $MODYN_STORE_DATA only, subsampling and encodings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.app.pipeline import PipelineConfigError
from modyn_store.app.pipeline.config import PipelineConfig, SourceConfig
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


@pytest.mark.parametrize("kw", [{"fraction": 0.5, "seed": 3}, {"fraction": 0.5, "seed": 4}, {"limit": 700},
                                {"fraction": 0.3, "seed": 1, "limit": 500}], ids=str)
def test_the_generated_stream_samples_and_limits_as_the_loaded_table(kw: dict[str, Any]) -> None:
    # the runner streams synthetic_clicks chunk by chunk; fraction, seed and limit keep the rows
    # the whole table keeps
    from modyn_store.app.pipeline.stream import open_stream

    cfg = SourceConfig("synthetic_clicks", params={"n_rows": 3000, "n_days": 2}, **kw)
    stream = open_stream(cfg)
    streamed = pa.Table.from_batches(list(stream.batches()), schema=stream.schema)
    loaded = load_source(cfg)
    assert 0 < loaded.num_rows < 3000
    assert streamed.column("key").to_pylist() == loaded.column("key").to_pylist()


@pytest.mark.parametrize("rule, sizes", [("n:300", [300, 300, 300, 100]), ("n:1000", [1000])])
def test_a_row_count_chunk_appends_versions_of_that_many_rows(tmp_path: Path, rule: str, sizes: list[int]) -> None:
    from modyn_store import Store
    from modyn_store.app.pipeline import parse_pipeline
    from modyn_store.app.pipeline.runner import ingest

    cfg = parse_pipeline({"name": "rows", "source": {"dataset": "elec2", "limit": 1000, "chunk": rule},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 500}})
    store = Store.open(str(tmp_path / "s"), create=True)
    got = [chunk.rows for chunk, _ in ingest(store, cfg, load_source(cfg.source))]
    assert got == sizes
    assert [r.inserted for r in store.log()] == sizes


def _dlrm_cfg(**params: object) -> PipelineConfig:
    from modyn_store.app.pipeline import parse_pipeline

    return parse_pipeline({"name": "d", "source": {"dataset": "synthetic_clicks", "encode": "clicks"},
                           "model": {"name": "dlrm", "params": {"embedding_dim": 4, **params},
                                     "inputs": {"dense": "dense", "sparse": "sparse"}},
                           "trigger": {"name": "data_amount", "every": 10}})


def test_dlrm_sizes_come_from_the_widths_of_its_inputs() -> None:
    from modyn_store.app.pipeline.source import model_params

    table = pa.table({
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(12, np.float32)), 4),
        "sparse": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6, np.int64)), 2),
        "label": pa.array([0, 1, 0], pa.int64())})
    params = model_params(_dlrm_cfg(), table)
    assert (params["n_dense"], params["cardinalities"]) == (4, [1000, 1000])
    # given sizes the data does not have: refused before a store is made, not inside the first forward pass
    with pytest.raises(PipelineConfigError) as info:
        model_params(_dlrm_cfg(n_dense=13), table)
    assert info.value.key == "model.params.n_dense"
    with pytest.raises(PipelineConfigError) as info:
        model_params(_dlrm_cfg(cardinalities=[10, 10, 10]), table)
    assert info.value.key == "model.params.cardinalities"


def test_a_given_in_features_must_be_the_width_of_the_features(tmp_path: Path) -> None:
    from modyn_store.app.cli.main import main

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsource: {dataset: elec2, limit: 300, chunk: \"14d\"}\n"
                    "model: {name: mlp, params: {in_features: 3}}\ntrigger: {name: data_amount, every: 100}\n")
    # it failed inside the first forward pass, after the store was made
    assert main(["run", str(path), "--store", str(tmp_path / "store")]) == 2
    assert not (tmp_path / "store").exists()
