"""The column mapping, format and seed of a pipeline's source decide what is replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.config import SourceConfig
from modyn_store.app.pipeline.source import load_source


def _data(n: int = 60) -> pa.Table:
    return pa.table({"id": np.arange(n) * 7 + 1000, "t": np.arange(n)[::-1] * 100, "y": ["p", "q", "r"] * (n // 3),
                     "u": np.arange(n, dtype=np.float64), "v": np.ones(n), "w": np.zeros(n)})


def _replay(tmp_path: Path, name: str, source: dict[str, Any]) -> Store:
    cfg = parse_pipeline({"name": name, "source": {"chunk": "n:20", **source}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 10_000}, "evaluation": {"slices": 2}})
    run_pipeline(cfg, str(tmp_path / name))
    return Store.open(str(tmp_path / name))


def test_key_ts_label_and_features_columns(tmp_path: Path) -> None:
    store = _replay(tmp_path, "map", {"data": _data(), "ts": "t", "label": "y", "key": "id", "features": ["w", "u"]})
    t = store.as_of().to_table(["key", "ts", "label", "features"]).sort_by("key")
    assert t.column("key").to_pylist() == [1000 + 7 * i for i in range(60)]
    assert t.column("ts").to_pylist() == [100 * (59 - i) for i in range(60)]
    assert t.column("label").to_pylist() == [0, 1, 2] * 20
    f = np.array(t.column("features").to_pylist())
    assert f.shape == (60, 2) and f[:, 0].tolist() == [0.0] * 60 and f[:, 1].tolist() == list(range(60))


def test_without_key_and_features_the_defaults_apply(tmp_path: Path) -> None:
    """The contrast to the test above: row numbers as keys and every numeric column packed."""
    store = _replay(tmp_path, "dflt", {"data": _data(), "ts": "t", "label": "y"})
    t = store.as_of().to_table(["key", "features"]).sort_by("key")
    assert t.column("key").to_pylist() != [1000 + 7 * i for i in range(60)]
    assert np.array(t.column("features").to_pylist()).shape[1] != 2


def test_format_reads_a_file_whose_suffix_does_not_tell(tmp_path: Path) -> None:
    pcsv.write_csv(_data(), tmp_path / "rows.txt")
    store = _replay(tmp_path, "fmt", {"path": str(tmp_path / "rows.txt"), "format": "csv", "ts": "t", "label": "y"})
    assert store.as_of().count() == 60


def test_source_seed_picks_the_sampled_rows() -> None:
    a = load_source(SourceConfig("elec2", fraction=0.1, seed=3)).column("key").to_numpy()
    b = load_source(SourceConfig("elec2", fraction=0.1, seed=3)).column("key").to_numpy()
    c = load_source(SourceConfig("elec2", fraction=0.1, seed=4)).column("key").to_numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    cfg = parse_pipeline({"name": "sd", "source": {"dataset": "elec2", "fraction": 0.1, "seed": 4},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100}})
    assert np.array_equal(load_source(cfg.source).column("key").to_numpy(), c)


def test_model_inputs_name_the_column_the_model_reads(tmp_path: Path) -> None:
    from modyn_store.core.trainings import Catalog

    n = 400
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, 2)).astype(np.float32)
    alt = rng.standard_normal((n, 3)).astype(np.float32)
    table = pa.table({"key": np.arange(n), "ts": np.arange(n), "label": (alt[:, 0] > 0).astype(np.int64),
                      "features": pa.FixedSizeListArray.from_arrays(pa.array(f.ravel()), 2),
                      "alt": pa.FixedSizeListArray.from_arrays(pa.array(alt.ravel()), 3)})
    cfg = parse_pipeline({"name": "inp", "source": {"data": table, "chunk": "n:100"},
                          "model": {"name": "logreg", "inputs": {"features": "alt"}},
                          "trigger": {"name": "data_amount", "every": 200}, "evaluation": {"slices": 2}})
    res = run_pipeline(cfg, str(tmp_path / "s"))
    assert res.trainings
    for t in res.trainings:
        rec = Catalog(Store.open(str(tmp_path / "s"))).get(t.training_id)
        assert rec.config["inputs"] == {"features": "alt"} and rec.config["model_params"]["in_features"] == 3
    assert np.array(res.result.matrix).shape == (len(res.trainings), 2)
