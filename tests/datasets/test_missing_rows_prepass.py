"""``missing`` and the pre-pass: rows ``drop_row`` skips need no event time, key or label, and a
missing value in a list column is named as one, not read as a row of another length."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.columns import ColumnMap, SourceError
from modyn_store.app.datasets.labels import read_label_map
from modyn_store.app.datasets.user import append_stream, read_stream


def _table() -> pa.Table:
    """Row 1 has neither an event time nor a feature value; row 3 has no key and no feature value,
    and is the only row labelled 'rare'."""
    return pa.table({"t": [1, None, 3, 4], "id": [10, 11, None, 13], "y": ["a", "b", "rare", "b"],
                     "x": [1.0, None, float("nan"), 4.0]})


def test_drop_row_rows_need_no_event_time_or_key() -> None:
    table, labels = read_stream(_table(), ColumnMap(ts="t", label="y", key="id", missing="drop_row"))
    assert table.column("key").to_pylist() == [10, 13]
    assert table.column("ts").to_pylist() == [1, 4]
    assert labels is not None and labels.values == ("a", "b")  # a label only skipped rows hold gets no code
    assert table.column("label").to_pylist() == [0, 1]
    assert table.column("features").to_pylist() == [[1.0], [4.0]]


def test_append_drop_row_stores_the_complete_rows_only(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    dropped: list[int] = []
    rec = append_stream(store, _table(), ColumnMap(ts="t", label="y", key="id", missing="drop_row"),
                        on_dropped=dropped.append)
    assert rec.inserted == 2 and dropped == [2]
    rows = store.as_of().to_table(columns=["key", "ts", "label", "features"]).sort_by("key")
    assert rows.column("key").to_pylist() == [10, 13] and rows.column("ts").to_pylist() == [1, 4]
    labels = read_label_map(store)
    assert labels is not None and labels.values == ("a", "b")


def test_other_choices_still_refuse_an_empty_event_time() -> None:
    for missing in ("zero", "error"):
        with pytest.raises(SourceError, match=r"ts: column 't' has empty rows, the first at row 1\b"):
            read_stream(_table(), ColumnMap(ts="t", label="y", key="id", missing=missing))


def test_cli_append_drop_row_with_an_empty_time_in_a_skipped_row(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pcsv.write_csv(_table().drop_columns(["id"]), path)
    assert main(["append", str(tmp_path / "s"), str(path), "--ts", "t", "--label", "y", "--features", "x",
                 "--missing", "drop_row"]) == 0
    assert Store.open(str(tmp_path / "s")).as_of().to_table(columns=["ts"]).column("ts").to_pylist() == [1, 4]


def _lists(rows: list[list[float | None] | None]) -> pa.Table:
    return pa.table({"t": list(range(len(rows))), "y": ["a", "b"] * (len(rows) // 2),
                     "v": pa.array(rows, pa.list_(pa.float64()))})


def test_error_names_a_null_list_row_as_a_missing_value(tmp_path: Path) -> None:
    data = _lists([[1.0, 2.0], [3.0, 4.0], None, [5.0, 6.0]])
    with pytest.raises(SourceError, match=r"missing: feature column 'v' has a missing value .* at row 2\b"):
        read_stream(data, ColumnMap(ts="t", label="y", features=("v",), missing="error"))
    store = Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(SourceError, match=r"'v' has a missing value .* at row 2\b"):
        append_stream(store, data, ColumnMap(ts="t", label="y", features=("v",), missing="error"))
    assert store.version == 0


def test_zero_fills_a_null_list_row_with_zeros() -> None:
    table, _ = read_stream(_lists([None, [1.0, 2.0], [None, 4.0], [5.0, 6.0]]),
                           ColumnMap(ts="t", label="y", features=("v",)))
    assert table.column("features").to_pylist() == [[0.0, 0.0], [1.0, 2.0], [0.0, 4.0], [5.0, 6.0]]


@pytest.mark.parametrize("value_type", [pa.bool_(), pa.int8(), pa.uint16(), pa.float32()])
def test_zero_fills_a_null_list_row_of_any_value_type(value_type: pa.DataType) -> None:
    rows = pa.array([None, [1, 0], [1, 1]], pa.list_(pa.int64())).cast(pa.list_(value_type))
    t = pa.table({"t": [1, 2, 3], "y": ["a", "b", "a"], "v": rows})
    table, _ = read_stream(t, ColumnMap(ts="t", label="y", features=("v",)))
    assert table.column("features").to_pylist() == [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]


def test_rows_of_different_lengths_are_named() -> None:
    with pytest.raises(SourceError, match=r"'v' has rows of different lengths: 2 values at row 0 but 1 at row 2\b"):
        read_stream(_lists([[1.0, 2.0], None, [3.0], [5.0, 6.0]]), ColumnMap(ts="t", label="y", features=("v",)))


def test_a_source_whose_every_row_is_skipped_says_so(tmp_path: Path) -> None:
    """It was refused as holding no rows, as if the file were empty."""
    incomplete = pa.table({"t": [1, 2], "y": ["a", "b"], "x": [None, float("nan")]})
    with pytest.raises(SourceError, match=r"holds no rows to store: every row was skipped, 2 with a missing feature"):
        read_stream(incomplete, ColumnMap(ts="t", label="y", missing="drop_row"))
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, pa.table({"t": [0], "y": ["a"], "x": [1.0]}), ColumnMap(ts="t", label="y"))
    with pytest.raises(SourceError, match=r"every row was skipped, 2 with a missing feature"):
        append_stream(store, incomplete, ColumnMap(ts="t", label="y", missing="drop_row"))
    assert store.version == 1
