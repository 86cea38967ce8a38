"""A grid's shared store knows its label map from its first data version on, as a single run's does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modyn_store import Store
from modyn_store.app.datasets.labels import read_label_map
from modyn_store.app.pipeline.bench import parse_grid, run_grid


def test_every_data_version_of_a_grid_store_has_the_label_map(tmp_path: Path) -> None:
    n = 600
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    pq.write_table(pa.table({"t": np.arange(n), "x": x, "y": np.where(x > 0, "rain", "dry")}), tmp_path / "d.parquet")
    grid = parse_grid({
        "title": "labels",
        "base": {"source": {"path": str(tmp_path / "d.parquet"), "ts": "t", "label": "y", "chunk": "n:200"},
                 "model": {"name": "logreg"}, "evaluation": {"slices": 2}},
        "pipelines": [{"name": "p", "trigger": {"name": "data_amount", "every": 200}}],
    })
    run_grid(grid, tmp_path / "out", store_dir=tmp_path / "stores")
    store = Store.open(str(tmp_path / "stores" / "shared"))
    data_versions = [r.version for r in store.log() if r.inserted]
    assert len(data_versions) == 3
    for v in data_versions:  # `show` and `export` of any data version give the labels, not only codes
        labels = read_label_map(store, v)
        assert labels is not None, v
        assert list(labels.values) == ["dry", "rain"]
