"""Values kept as JSON (training records, a version's details, pipeline definitions) nested deeper
than the limit are refused with a typed error naming the argument and the limit, before anything
is written, instead of a ``RecursionError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store, TrainSet
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.yamlsrc import MAX_DEFINITION_DEPTH, read_yaml
from modyn_store.core._plainjson import MAX_JSON_DEPTH, plain_json
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog


def _nested(levels: int) -> dict[str, Any]:
    """A mapping ``levels`` mappings deep."""
    out: dict[str, Any] = {}
    for _ in range(levels - 1):
        out = {"a": out}
    return out


def _store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2]}))
    return store


@pytest.mark.parametrize("name", ["metrics", "config", "trigger", "policy_params"])
def test_a_deep_training_record_is_refused_and_nothing_written(tmp_path: Path, name: str) -> None:
    store = _store(tmp_path)
    with pytest.raises(InvalidArgumentError, match=rf"invalid {name}=.*at most {MAX_JSON_DEPTH} levels deep"):
        Catalog(store).record_training("t1", TrainSet.uniform(np.array([0, 1]), version=1),
                                       **{name: {"x": _nested(5000)}})
    assert store.version == 1 and store.read_table("trainings") is None
    rec = Catalog(store).record_training("t1", TrainSet.uniform(np.array([0, 1]), version=1),
                                         **{name: _nested(MAX_JSON_DEPTH)})  # at the limit: kept
    assert rec.training_id == "t1" and store.version == 2


def test_a_deep_list_and_a_value_that_holds_itself_are_refused() -> None:
    deep: list[Any] = []
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(InvalidArgumentError, match=r"invalid metrics="):
        plain_json("metrics", {"x": deep})
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidArgumentError, match=r"invalid metrics="):
        plain_json("metrics", loop)
    shared = [1.0] * 3
    assert plain_json("metrics", {"a": shared, "b": shared}) == '{"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}'


def test_deep_transaction_details_roll_the_write_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(InvalidArgumentError, match=rf"invalid details=.*at most {MAX_JSON_DEPTH} levels"):
        with store.transaction("note") as txn:
            txn.append("notes", pa.table({"text": ["a"]}))
            txn.details = _nested(5000)
    assert store.version == 1 and store.read_table("notes") is None
    assert Store.open(str(tmp_path / "s")).version == 1
    with store.transaction("note") as txn:
        txn.append("notes", pa.table({"text": ["b"]}))
    assert store.version == 2 and store.read_table("notes").column("text").to_pylist() == ["b"]


def _pipeline(params: Any) -> dict[str, Any]:
    return {"name": "p", "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"hidden": params}},
            "trigger": {"name": "data_amount", "every": 10}}


def test_a_deep_pipeline_definition_is_refused_naming_the_key() -> None:
    with pytest.raises(PipelineConfigError, match=rf"model\.params\.hidden.*more than {MAX_DEFINITION_DEPTH} levels"):
        parse_pipeline(_pipeline(_nested(3000)))
    text = "name: p\nsource: {dataset: elec2}\nmodel: {name: logreg, params: {hidden: " + "[" * 200 + "1" \
           + "]" * 200 + "}}\ntrigger: {name: data_amount, every: 10}\n"
    with pytest.raises(PipelineConfigError, match=rf":3: model\.params\.hidden.*more than {MAX_DEFINITION_DEPTH}"):
        parse_pipeline(read_yaml(text, "p.yaml"))
    text = "name: p\nmodel: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(PipelineConfigError, match=rf"at most {MAX_DEFINITION_DEPTH} levels deep"):
        read_yaml(text, "p.yaml")


def test_a_parquet_file_with_deep_pandas_metadata_is_read(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from modyn_store.app.datasets.columns import ColumnMap
    from modyn_store.app.datasets.user import append_stream

    deep = "[" * 100_000 + "]" * 100_000  # not pandas' metadata: no index columns to drop
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"t": [2, 1], "y": ["a", "b"], "x": [1.0, 2.0]}).replace_schema_metadata({b"pandas": deep}),
                   path)
    store = Store.open(str(tmp_path / "s"), create=True)
    assert append_stream(store, str(path), ColumnMap(ts="t", label="y")).inserted == 2
    rows = store.as_of().to_table(columns=["ts", "x"]).sort_by("ts")
    assert rows.column("x").to_pylist() == [2.0, 1.0]


def test_a_deeply_nested_json_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    from modyn_store.app.datasets.wildtime import load_huffpost

    path = tmp_path / "news.json"
    path.write_text('\n{"x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")  # line 1 is blank
    with pytest.raises(InvalidArgumentError, match=r"news\.json:2.*nested too deeply"):
        load_huffpost(path)
