"""Column types a user's own files bring: integers beyond float64's exact range as features, and
float label columns (refused, saying how to convert them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.columns import ColumnMap, SourceError
from modyn_store.app.datasets.user import read_stream


def test_uint64_and_large_int64_features_are_packed_as_floats(tmp_path: Path) -> None:
    counts = np.array([2**64 - 1000, 5, 2**53 + 1], dtype=np.uint64)
    ids = [2**60, -7, 3]
    t = pa.table({"t": [1, 2, 3], "y": ["a", "b", "a"], "cnt": pa.array(counts, pa.uint64()),
                  "big": pa.array(ids, pa.int64())})
    table, _ = read_stream(t, ColumnMap(ts="t", label="y", features=("cnt", "big")))
    f = np.array(table.column("features").to_pylist(), dtype=np.float64)
    assert f.dtype == np.float64 and f.shape == (3, 2)
    assert f[:, 0].tolist() == [float(np.float32(c)) for c in counts.astype(np.float64)]
    assert f[:, 1].tolist() == [float(np.float32(v)) for v in ids]
    path = tmp_path / "c.parquet"
    pq.write_table(t, path)
    assert main(["append", str(tmp_path / "s"), str(path), "--ts", "t", "--label", "y", "--features", "cnt,big"]) == 0
    stored = Store.open(str(tmp_path / "s")).as_of().to_table(columns=["key", "cnt", "big", "features"]).sort_by("key")
    assert stored.column("cnt").to_pylist() == counts.tolist()  # the raw column keeps every digit
    assert stored.column("big").to_pylist() == ids
    assert np.array(stored.column("features").to_pylist())[:, 0].tolist() == f[:, 0].tolist()


def test_a_float_label_column_is_refused_saying_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    pcsv.write_csv(pa.table({"t": [1, 2, 3], "x": [1.0, 2.0, 3.0], "y": [0.0, 1.5, None]}), path)
    with pytest.raises(SourceError, match=r"label column 'y' has type double; .*convert it to integers"):
        read_stream(str(path), ColumnMap(ts="t", label="y"))
    assert main(["append", str(tmp_path / "s"), str(path), "--ts", "t", "--label", "y"]) != 0
    assert not (tmp_path / "s").exists()
    struct = pa.table({"t": [1], "x": [1.0], "y": pa.array([{"a": 1}])})
    with pytest.raises(SourceError, match=r"label column 'y' has type struct") as info:
        read_stream(struct, ColumnMap(ts="t", label="y"))
    assert "regression" not in str(info.value)


def test_whole_number_decimal_event_times_keep_every_digit() -> None:
    import decimal

    ns = [1_700_000_000_000_000_001, 1_700_000_000_000_000_002, 1_700_000_000_000_000_000]  # float64 rounds them to one
    t = pa.table({"t": pa.array([decimal.Decimal(v) for v in ns], pa.decimal128(38, 0)), "y": ["a", "b", "a"],
                  "x": [1.0, 2.0, 3.0]})
    table, _ = read_stream(t, ColumnMap(ts="t", label="y"))
    assert table.column("ts").type == pa.int64() and table.column("ts").to_pylist() == sorted(ns)
    assert table.column("x").to_pylist() == [3.0, 1.0, 2.0]  # in event-time order
    frac = pa.table({"t": pa.array([decimal.Decimal("1.5"), decimal.Decimal("0.5")], pa.decimal128(10, 1)),
                     "y": ["a", "b"], "x": [1.0, 2.0]})
    table, _ = read_stream(frac, ColumnMap(ts="t", label="y"))
    assert table.column("ts").to_pylist() == [0.5, 1.5]


def _cats(values: list[str], index: pa.DataType | None, start: int) -> pa.Table:
    col = pa.array(values)
    if index is not None:
        col = col.dictionary_encode().cast(pa.dictionary(index, pa.string()))
    n = len(values)
    rows = list(range(start, start + n))
    return pa.table({"id": rows, "t": rows, "y": ["a", "b"] * (n // 2),
                     "x": [1.0] * n, "cat": col})


def test_text_columns_dictionary_encoded_or_not_append_to_one_store(tmp_path: Path) -> None:
    from modyn_store.app.datasets.user import append_stream
    store = Store.open(str(tmp_path / "s"), create=True)
    cm = ColumnMap(ts="t", label="y", key="id", features=("x",))
    first = _cats(["red", "blue"] * 2, pa.int8(), 0)
    wider = _cats(["green", "red"] * 2, pa.int16(), 10)  # a file with more categories: int16 indices
    plain = _cats(["blue", "pink"] * 2, None, 20)
    for t in (first, wider, plain):
        append_stream(store, t, cm)
    got = store.as_of().to_table(columns=["key", "cat"]).sort_by("key")
    assert got.schema.field("cat").type == pa.string()  # the store holds the values
    want = [v for t in (first, wider, plain) for v in t.column("cat").cast(pa.string()).to_pylist()]
    assert got.column("cat").to_pylist() == want
    many = _cats([f"c{i}" for i in range(300)], pa.int16(), 100)  # more values than int8 indices number
    append_stream(store, many, cm)
    store.compact()  # a rewrite merges every append's values into one column
    got = store.as_of().to_table(columns=["key", "cat"]).sort_by("key")
    want += [f"c{i}" for i in range(300)]
    assert got.column("cat").to_pylist() == want
