"""Extension tables whose owner declared their columns cannot be created with other columns."""

from __future__ import annotations

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import SchemaMismatchError
from modyn_store.core.trainings import Catalog


def test_a_catalog_table_is_not_created_with_foreign_columns() -> None:
    store = Store.open("memory://declared-catalog", create=True)
    store.append(pa.table({"ts": [1, 2]}))
    with pytest.raises(SchemaMismatchError, match="'trainings' is the training catalog's"):
        with store.transaction("annotate") as txn:
            txn.append("trainings", pa.table({"key": [1], "note": ["checked"]}))
    assert store.version == 1 and store.read_table("trainings") is None
    assert Catalog(store).list() == []  # still readable
    with store.transaction("annotate") as txn:  # a table of its own is fine
        txn.append("annotations", pa.table({"key": [1], "note": ["checked"]}))
    assert store.read_table("annotations").num_rows == 1


def test_app_tables_are_declared_too() -> None:
    from modyn_store.app.datasets.labels import LABEL_MAP_TABLE
    from modyn_store.app.pipeline.online import PROGRESS_TABLE, STATE_TABLE

    store = Store.open("memory://declared-app", create=True)
    for name in (LABEL_MAP_TABLE, PROGRESS_TABLE, STATE_TABLE):
        with pytest.raises(SchemaMismatchError, match=repr(name)):
            with store.transaction("x") as txn:
                txn.append(name, pa.table({"code": ["a"]}))
    assert store.version == 0


def test_selections_take_the_columns_erase_needs_and_no_foreign_ones() -> None:
    store = Store.open("memory://declared-selections", create=True)
    with pytest.raises(SchemaMismatchError, match=r"\['key', 'training_id'\] required"):
        with store.transaction("x") as txn:
            txn.append("selections", pa.table({"key": pa.array([1], pa.int64())}))
    with pytest.raises(SchemaMismatchError, match="'selections'"):
        with store.transaction("x") as txn:
            txn.append("selections", pa.table({"training_id": ["t"], "key": pa.array([1], pa.int64()), "x": [1]}))
    with store.transaction("x") as txn:  # what erase reads: a training's keys
        txn.append("selections", pa.table({"training_id": ["t"], "key": pa.array([1], pa.int64())}))
    assert store.read_table("selections").num_rows == 1
