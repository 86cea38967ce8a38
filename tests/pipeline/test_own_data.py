"""Pipelines on your own data: sources in YAML and Python, replay of a store, errors with key and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.datasets.labels import read_label_map
from modyn_store.app.pipeline import PipelineConfigError, parse_pipeline
from modyn_store.app.pipeline.runner import run_pipeline
from modyn_store.app.pipeline.yamlsrc import read_yaml


def _stream(n: int = 1200, labels: str = "string") -> pa.Table:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 2))
    cls = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    y: list = (["low", "mid", "high"][c] for c in cls) if labels == "string" else (2 + 5 * cls).tolist()  # type: ignore[assignment]
    return pa.table({"t": np.arange(n) * 60, "y": list(y), "u": x[:, 0], "v": x[:, 1], "note": ["n"] * n})


def _yaml(path: str, extra: str = "", trigger: str = "{name: data_amount, every: 400}") -> str:
    return f"""name: own
source:
  path: {path}
  ts: t
  label: y
  features: [u, v]
  chunk: "n:200"{extra}
model: {{name: logreg}}
trigger: {trigger}
training: {{epochs: 2, lr: 0.05}}
evaluation: {{slices: 3}}
"""


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("labels", ["string", "gapped"])
def test_replay_of_a_file_from_yaml(tmp_path: Path, fmt: str, labels: str) -> None:
    t = _stream(labels=labels)
    if fmt == "parquet":
        pq.write_table(t, tmp_path / "s.parquet")
    else:
        pcsv.write_csv(t, tmp_path / "s.csv")
    (tmp_path / "p.yaml").write_text(_yaml(f"s.{fmt}"))  # relative to the pipeline file
    from modyn_store.app.pipeline.bench import load_definition

    cfg = parse_pipeline(load_definition(tmp_path / "p.yaml"))
    res = run_pipeline(cfg, str(tmp_path / "store"))
    assert len(res.trainings) == 3
    store = Store.open(str(tmp_path / "store"))
    lm = read_label_map(store)
    assert lm is not None and lm.n_classes == 3  # never 13 outputs for labels {2, 7, 12}
    from modyn_store.core.trainings import Catalog

    rec = Catalog(store).get(res.trainings[0].training_id)
    assert rec.config["model_params"]["n_classes"] == 3
    assert np.mean(res.result.matrix[-1]) > 0.65  # labels line up with features (majority class: 0.5)


def test_python_objects_and_lance(tmp_path: Path) -> None:
    import lance

    t = _stream()
    lance.write_dataset(t, str(tmp_path / "s.lance"))
    base = {"name": "py", "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 600},
            "evaluation": {"slices": 2}}
    for src in ({"data": t.to_pandas()}, {"data": t}, {"path": str(tmp_path / "s.lance")}):
        cfg = parse_pipeline({**base, "source": {**src, "ts": "t", "label": "y", "features": ["u", "v"]}})
        res = run_pipeline(cfg, f"memory://own-{id(src)}")
        assert len(res.trainings) == 2


def test_replay_an_existing_store_version_by_version(tmp_path: Path) -> None:
    from modyn_store.app.datasets.columns import ColumnMap
    from modyn_store.app.datasets.user import append_stream

    store = Store.open(str(tmp_path / "live"), create=True)
    t = _stream()
    for i in range(4):
        append_stream(store, t.slice(300 * i, 300), ColumnMap(ts="t", label="y", features=("u", "v")))
    store.delete(keys=np.arange(10))
    cfg = parse_pipeline({"name": "again", "source": {"store": str(tmp_path / "live")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 300}, "evaluation": {"slices": 2}})
    res = run_pipeline(cfg, None)
    assert [tr.cutoff[0] for tr in res.trainings] == [1, 2, 3, 4]  # the store's own data versions
    assert res.store_uri == store.uri
    with pytest.raises(PipelineConfigError) as info:
        run_pipeline(cfg, str(tmp_path / "elsewhere"))
    assert info.value.key == "--store"


@pytest.mark.parametrize("extra, trigger, key, line, text", [
    ("", "{name: time, every: 1500s}", "trigger.every", 9, "number in its unit"),
    ("", "{name: any, triggers: [{name: data_amount, every: 400}, {name: time, every: 1500s}]}",
     "trigger.triggers[1].every", 9, "number in its unit"),
    ("\n  key: note", "{name: data_amount, every: 400}", "source.key", 8, "keys must be integers"),
    ("\n  fraction: 0.5\n  params: {a: 1}", "{name: data_amount, every: 400}", "source.params", 9, "registered"),
])
def test_bad_definitions_name_key_and_line_before_any_work(tmp_path: Path, extra: str, trigger: str, key: str,
                                                           line: int, text: str) -> None:
    pq.write_table(_stream(), tmp_path / "s.parquet")
    with pytest.raises(PipelineConfigError, match=text) as info:
        parse_pipeline(read_yaml(_yaml(str(tmp_path / "s.parquet"), extra, trigger), source="p.yaml"))
    assert info.value.key == key and info.value.line == line
    assert not (tmp_path / "store").exists()


def test_bad_columns_point_at_their_line(tmp_path: Path) -> None:
    pq.write_table(_stream(), tmp_path / "s.parquet")
    text = _yaml(str(tmp_path / "s.parquet")).replace("features: [u, v]", "features: [u, w]")
    with pytest.raises(PipelineConfigError, match="no column 'w'") as info:
        parse_pipeline(read_yaml(text, source="p.yaml"))
    assert info.value.key == "source.features[1]" and info.value.line == 6
    text = _yaml(str(tmp_path / "s.parquet")).replace("label: y", "label: u")
    with pytest.raises(PipelineConfigError, match="float") as info:
        parse_pipeline(read_yaml(text, source="p.yaml"))
    assert info.value.key == "source.label" and info.value.line == 5


def test_string_labels_in_a_plain_store_are_refused_before_training(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10), "label": ["a", "b"] * 5,
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(20, np.float32)), 2)}))
    cfg = parse_pipeline({"name": "str", "source": {"store": str(tmp_path / "s")}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 5}})
    with pytest.raises(PipelineConfigError, match="string labels") as info:
        run_pipeline(cfg, None)
    assert info.value.key == "source.store"
    assert Store.open(str(tmp_path / "s")).version == 1  # nothing written


def test_own_data_is_cut_into_versions_of_1000_rows_by_default() -> None:
    from modyn_store.app.pipeline.runner import Runner

    cfg = parse_pipeline({"name": "chunks", "source": {"data": _stream(2500), "ts": "t", "label": "y"},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 5000}})
    runner = Runner(cfg, "memory://own-chunks")
    list(runner.run())
    assert [r.inserted for r in runner.store.log() if r.op == "append"] == [1000, 1000, 500]


def test_drop_unlabeled_in_a_pipeline_source() -> None:
    t = _stream(600)
    y = t.column("y").to_pylist()
    t = t.set_column(1, "y", pa.array([None if i % 3 == 0 else v for i, v in enumerate(y)]))
    base = {"name": "unl", "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 300}}
    with pytest.raises(PipelineConfigError, match="without a label") as info:
        run_pipeline(parse_pipeline({**base, "source": {"data": t, "ts": "t", "label": "y"}}), "memory://unl-a")
    assert info.value.key == "source.label"
    res = run_pipeline(parse_pipeline({**base, "source": {"data": t, "ts": "t", "label": "y", "drop_unlabeled": True}}),
                       "memory://unl-b")
    assert res.rows == 400
