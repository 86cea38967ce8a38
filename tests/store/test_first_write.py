"""A first append that fails before its commit leaves no trace a reader sees, and a retry of the
same append on the same path makes exactly the intended store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from modyn_store import SchemaMismatchError, Store

_FIRST = pa.table({"ts": [1, 2, 3], "x": [1.0, 2.0, 3.0]})


def _fail_first_commit(store: Store) -> None:
    """Run ``_FIRST``'s append on ``store`` and fail its commit (the rows are written)."""
    commit = store._log.commit

    def lost(record: Any) -> None:
        raise OSError("connection reset while committing")

    store._log.commit = lost  # type: ignore[method-assign]
    try:
        with pytest.raises(OSError, match="connection reset"):
            store.append(_FIRST)
    finally:
        store._log.commit = commit  # type: ignore[method-assign]


def _check_reader_and_retry(reader: Store) -> None:
    assert reader.version == 0
    assert reader.schema is None  # the failed write's columns are not the store's
    assert reader.samples_dataset() is None
    assert reader.as_of().to_table().column_names == ["key"]
    rec = reader.append(pa.table({"ts": [5], "y": ["a"]}))
    assert rec.version == 1 and reader.schema is not None and reader.schema.names == ["key", "ts", "y"]
    assert reader.as_of().to_table().to_pydict() == {"key": [0], "ts": [5], "y": ["a"]}


def test_a_failed_first_commit_shows_no_schema_locally(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    _fail_first_commit(store)
    _check_reader_and_retry(store)  # the same object: it has not recovered the failed write yet


@pytest.mark.s3
def test_a_failed_first_commit_shows_no_schema_on_s3(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    _fail_first_commit(Store.open(uri, create=True, storage_options=options))
    # a reader on object storage writes nothing: the failed write waits for the next writer
    _check_reader_and_retry(Store.open(uri, storage_options=options))
    assert Store.open(uri, storage_options=options).as_of().count() == 1


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("data", [
    pa.table({"ts": [1, 2], "x": pa.nulls(2)}),  # a column with no value: of no known type
    pa.table({"ts": [1, 2], "x": [1.0, 2.0], "label": pa.nulls(2)}),
    {"ts": [1, 2], "x": [None, None]},  # a dict of columns: pyarrow reads the column as type null
    pa.table({"ts": [1, 2], "_x": [1, 2]}),  # a reserved name: refused before the lock too
])
def test_a_refused_first_append_leaves_the_store_as_it_was(tmp_path: Path, data: Any) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    before = _files(tmp_path / "s")
    with pytest.raises(SchemaMismatchError) as exc:
        store.append(data)
    if "_x" not in (data.column_names if isinstance(data, pa.Table) else list(data)):
        assert "has type null: it has no value in any row" in str(exc.value)
    assert _files(tmp_path / "s") == before  # no version, no lock file, no transaction folder
    assert store.version == 0 and store.schema is None
    assert store.append(pa.table({"ts": [1], "x": [1.5]})).version == 1  # the store takes a typed append


@pytest.mark.parametrize("column", [
    pa.array([[], []]),  # lists that are all empty: list<null>
    pa.array([[None], []], pa.large_list(pa.null())),
    pa.array([[None], [None]], pa.list_(pa.null(), 1)),
    pa.array([{"a": None}, {"a": None}]),  # a struct field without a value: struct<a: null>
])
def test_a_first_append_with_a_nested_column_of_no_type_is_refused(tmp_path: Path, column: pa.Array) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    before = _files(tmp_path / "s")
    with pytest.raises(SchemaMismatchError, match=r"column 'x' has type .*null.*: its part of type null has no value"):
        store.append(pa.table({"ts": [1, 2], "x": column}))
    assert _files(tmp_path / "s") == before and store.version == 0 and store.schema is None
    store.append(pa.table({"ts": [1], "x": pa.array([[1.5]], pa.list_(pa.float64()))}))
    assert store.append(pa.table({"ts": [2], "x": pa.array([[]], pa.list_(pa.float64()))})).version == 2


def test_an_all_null_column_of_the_stored_type_appends_to_a_store(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1], "x": [1.5]}))
    rec = store.append(pa.table({"ts": [2], "x": pa.nulls(1, pa.float64())}))
    assert rec.version == 2 and store.as_of().to_table().column("x").to_pylist() == [1.5, None]
    with pytest.raises(SchemaMismatchError, match="column 'x' is null, the store has double"):
        store.append(pa.table({"ts": [3], "x": pa.nulls(1)}))
    assert store.version == 2
