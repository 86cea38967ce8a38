"""Documented pipeline options that change what runs: each test fails when its option is ignored.

- ``update.base`` of a retrain (docs/policies.md: "retrain ... start from ``base`` = ... a named
  checkpoint"; docs/pipelines.md step 6): the recorded parent is the base and the weights start
  from its checkpoint.
- ``OnlineRunner(progress_every=...)`` (docs/pipelines.md, "Online mode"): a ``pipeline_progress``
  row every ``progress_every`` data versions (a Python argument only: no YAML key or CLI flag).
- ``source.storage_options`` (docs/pipelines.md, "Your own data as a source"): an ``s3://`` source
  is read with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import tiny

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline, run_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.online import PROGRESS_TABLE, OnlineRunner
from modyn_store.core.trainings import Catalog
from tests.conftest import forget_aws_credentials


# --- update base -------------------------------------------------------------------------------

def test_retrain_from_a_named_base_records_it_as_parent_and_starts_from_its_weights(tmp_path: Path) -> None:
    """Pipeline ``a`` trains ``a-0000``; pipeline ``b`` (update ``{name: retrain, base: a-0000}``)
    follows the same store. With a learning rate of 1e-9 every ``b`` model keeps ``a-0000``'s
    weights (and its input scale, which a training from scratch would fit to its own rows).

    The driver is ``OnlineRunner`` (the same ``PipelineLoop`` as a replay)."""
    a = run_pipeline(parse_pipeline(tiny("a", source={"dataset": "elec2", "limit": 1000, "chunk": "7d"},
                                         update={"name": "retrain"}, limits={"max_trainings": 1},
                                         evaluation={"slices": 1})), tmp_path / "s")
    assert [t.training_id for t in a.trainings] == ["a-0000"]
    store = Store.open(str(tmp_path / "s"))
    cfg = parse_pipeline(tiny("b", source={"store": str(tmp_path / "s")},
                              trigger={"name": "data_amount", "every": 400},
                              update={"name": "retrain", "base": "a-0000"},
                              training={"epochs": 1, "batch_size": 256, "lr": 1e-9}))
    runner = OnlineRunner(cfg, store)
    assert runner.step() == 2
    assert runner.loop is not None
    cat = Catalog(store)
    base = cat.load_checkpoint("a-0000")
    for t in runner.loop.trainings:
        rec = cat.get(t.training_id)
        assert (t.mode, rec.parent_id) == ("retrain", "a-0000")
        got = cat.load_checkpoint(t.training_id)
        assert sorted(got) == sorted(base)
        for name, w in base.items():
            np.testing.assert_allclose(got[name].double().numpy(), w.double().numpy(), rtol=0, atol=1e-6,
                                       err_msg=name)
        assert [k for k in base if k.startswith("input_scale")]  # the scale is compared too
    assert [t.training_id for t in runner.loop.trainings] == ["b-0000", "b-0001"]
    assert [s.training_id for s in cat.lineage("b-0001")] == ["b-0001", "a-0000"]


def test_the_warm_up_of_a_pipeline_with_a_base_runs_without_it() -> None:
    # the warm-up trains in a temporary store, which holds no training of the user's store: a
    # retrain from a named base used to stop the whole replay there (no training 'a-0000')
    from modyn_store.app.pipeline.source import load_source, model_params
    from modyn_store.app.pipeline.warmup import warm_up

    cfg = parse_pipeline(tiny("b", source={"dataset": "elec2", "limit": 400, "chunk": "7d"},
                              update={"name": "retrain", "base": "a-0000"}))
    table = load_source(cfg.source)
    assert warm_up(cfg, table, model_params(cfg, table), force=True) is True


# --- OnlineRunner progress_every -------------------------------------------------------------

def _quiet_store(path: Path, versions: int) -> Store:
    """``versions`` data versions of 50 rows (features ``a``, ``b``; labels 0/1)."""
    store = Store.open(str(path), create=True)
    for i in range(versions):
        rng = np.random.default_rng(i)
        t = pa.table({"t": np.arange(i * 50, (i + 1) * 50), "y": rng.integers(0, 2, 50),
                      "a": rng.standard_normal(50), "b": rng.standard_normal(50)})
        append_stream(store, t, ColumnMap(ts="t", label="y"))
    return store


@pytest.mark.parametrize("every, expected", [(2, [2, 4, 6]), (3, [3, 6]), (4, [4])])
def test_online_progress_row_every_progress_every_data_versions(tmp_path: Path, every: int,
                                                                   expected: list[int]) -> None:
    store = _quiet_store(tmp_path / "live", 6)
    data_versions = store.version
    assert data_versions == 6
    cfg = parse_pipeline({"name": "prog", "source": {"store": str(tmp_path / "live")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 10**9}})  # never trains
    runner = OnlineRunner(cfg, store, progress_every=every)
    assert runner.step() == 0
    assert runner.step() == 0  # the progress versions it wrote carry no data: no further rows
    table = store.read_table(PROGRESS_TABLE, None, filter="pipeline = 'prog'")
    assert table is not None
    rows = table.to_pylist()
    rows.sort(key=lambda r: r["_version"])
    assert [r["processed_version"] for r in rows] == expected
    assert {(r["trainings"], r["last_training"]) for r in rows} == {(0, None)}
    assert [r["seen_rows"] for r in rows] == [50 * v for v in expected]


# --- source.storage_options --------------------------------------------------------------------

@pytest.mark.s3
def test_s3_source_is_read_with_its_storage_options(s3_store: tuple[str, dict[str, str]], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    from modyn_store.core._location import fsspec_options

    uri, options = s3_store
    prefix = uri.rsplit("/", 1)[0]
    n = 120
    rng = np.random.default_rng(0)
    table = pa.table({"t": np.arange(n), "y": rng.integers(0, 2, n), "u": rng.standard_normal(n),
                      "v": rng.standard_normal(n)})
    fs = fsspec.filesystem("s3", **fsspec_options("s3", options))
    with fs.open(f"{prefix}/in/rows.parquet", "wb") as fh:
        pq.write_table(table, fh)
    source = {"path": f"{prefix}/in/rows.parquet", "ts": "t", "label": "y", "features": ["u", "v"], "chunk": "n:40"}
    definition = {"name": "s3src", "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 60},
                  "training": {"epochs": 1, "batch_size": 32}, "evaluation": {"slices": 2}}
    res = run_pipeline(parse_pipeline({**definition, "source": {**source, "storage_options": options}}),
                       str(tmp_path / "s"))
    assert [t.training_id for t in res.trainings] == ["s3src-0000", "s3src-0001"]
    got = Store.open(str(tmp_path / "s")).as_of().to_table(["ts", "label", "features"]).sort_by("ts")
    assert got.column("ts").to_pylist() == list(range(n))
    assert got.column("label").to_pylist() == table.column("y").to_pylist()
    np.testing.assert_array_equal(np.array(got.column("features").to_pylist()),
                                  np.stack([table.column("u").to_numpy(), table.column("v").to_numpy()], axis=1).astype(np.float32))
    # without the options neither the endpoint nor the credentials are known: the source is not
    # read, the error names the key, and no store is made
    forget_aws_credentials(monkeypatch, tmp_path)
    with pytest.raises(PipelineConfigError, match=r"^source\.storage_options: .* cannot be read"):
        run_pipeline(parse_pipeline({**definition, "source": source}), str(tmp_path / "s2"))
    assert not (tmp_path / "s2").exists()
