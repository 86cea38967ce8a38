"""Edges of ingesting a user's own files: the slot order of ``features`` across appends, infinite
feature values, boolean labels, and the message for a column named like a role."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.columns import ColumnMap, Encoder, SourceError
from modyn_store.app.datasets.labels import LabelMap, read_label_map, write_label_map
from modyn_store.app.datasets.user import append_stream, read_stream
from modyn_store.core.errors import InvalidArgumentError


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _features(store: Store) -> list[list[float]]:
    t = store.as_of().to_table(["key", "features"])
    return [r["features"] for r in sorted(t.to_pylist(), key=lambda r: r["key"])]


@pytest.fixture
def ab(tmp_path: Path) -> tuple[str, str]:
    a = _csv(tmp_path / "a.csv", "t,x,z,y\n1,1.5,100.5,a\n2,2.5,200.5,b\n")
    b = _csv(tmp_path / "b.csv", "t,z,x,y\n3,300.5,3.5,a\n4,400.5,4.5,b\n")  # same columns, other order
    return a, b


# --- 1. which column each slot of `features` holds ---------------------------------------------

def test_a_later_file_with_columns_in_another_order_fills_the_same_slots(tmp_path: Path, ab: tuple[str, str]) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, ab[0], ColumnMap(ts="t", label="y"))
    append_stream(store, ab[1], ColumnMap(ts="t", label="y"))
    assert _features(store) == [[1.5, 100.5], [2.5, 200.5], [3.5, 300.5], [4.5, 400.5]]


def test_a_new_store_is_made_only_after_the_source_passed_its_checks(tmp_path: Path, ab: tuple[str, str]) -> None:
    """``make``: a refused source makes no store; a store another process made first (it holds a
    version) is appended to as the existing store it is, its recorded slots kept."""
    a, b = ab
    made: list[Store] = []

    def make() -> Store:
        made.append(Store.open(str(tmp_path / "new"), create=True))
        return made[-1]

    with pytest.raises(SourceError):
        append_stream(None, a, ColumnMap(ts="t", label="nope"), make=make)
    assert made == [] and not (tmp_path / "new").exists()
    rec = append_stream(None, a, ColumnMap(ts="t", label="y"), make=make)
    assert rec.version == 1 and len(made) == 1
    first = made[0].read_table("feature_map")
    # "another process" made the store meanwhile and appended file a: b is fitted to its slots
    rec = append_stream(None, b, ColumnMap(ts="t", label="y"), make=make)
    assert rec.version == 2 and len(made) == 2
    store = Store.open(str(tmp_path / "new"))
    assert store.read_table("feature_map").equals(first)
    assert _features(store) == [[1.5, 100.5], [2.5, 200.5], [3.5, 300.5], [4.5, 400.5]]
    with pytest.raises(InvalidArgumentError, match="store"):
        append_stream(store, a, ColumnMap(ts="t", label="y"), make=make)


def test_an_explicit_features_list_in_another_order_is_refused(tmp_path: Path, ab: tuple[str, str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "s")
    store = Store.open(st, create=True)
    append_stream(store, ab[0], ColumnMap(ts="t", label="y", features=("x", "z")))
    with pytest.raises(InvalidArgumentError) as err:
        append_stream(store, ab[0], ColumnMap(ts="t", label="y", features=("z", "x")))
    assert err.value.name == "features" and err.value.value == ["z", "x"]
    assert "['x', 'z']" in err.value.expected
    append_stream(store, ab[1], ColumnMap(ts="t", label="y", features=("x", "z")))  # the recorded order is fine
    assert _features(store) == [[1.5, 100.5], [2.5, 200.5], [3.5, 300.5], [4.5, 400.5]]
    capsys.readouterr()
    assert main(["append", st, ab[0], "--ts", "t", "--label", "y", "--features", "z,x"]) == 2
    assert "invalid --features=['z', 'x']" in capsys.readouterr().err
    assert Store.open(st).as_of().count() == 4  # nothing written


def test_a_file_without_a_recorded_feature_column_is_refused(tmp_path: Path, ab: tuple[str, str]) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, ab[0], ColumnMap(ts="t", label="y"))
    c = _csv(tmp_path / "c.csv", "t,x,y\n5,5.5,a\n")
    with pytest.raises(InvalidArgumentError) as err:
        append_stream(store, c, ColumnMap(ts="t", label="y"))
    assert err.value.name == "features" and "'z'" in str(err.value.value)
    assert store.as_of().count() == 2


def test_a_recorded_column_with_another_width_is_refused(tmp_path: Path) -> None:
    first = pa.table({"t": [1], "v": pa.array([[1.0, 2.0]], pa.list_(pa.float32(), 2)), "w": [3.0], "y": [0]})
    later = pa.table({"t": [2], "v": [1.0], "w": pa.array([[2.0, 3.0]], pa.list_(pa.float32(), 2)), "y": [0]})
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, first, ColumnMap(ts="t", label="y"))
    with pytest.raises(InvalidArgumentError) as err:
        append_stream(store, later, ColumnMap(ts="t", label="y"))
    assert err.value.name == "features"


def test_an_export_carries_the_slots_to_the_imported_copy(tmp_path: Path, ab: tuple[str, str]) -> None:
    st, copy, out = str(tmp_path / "s"), str(tmp_path / "copy"), str(tmp_path / "e.parquet")
    assert main(["append", st, ab[0], "--ts", "t", "--label", "y"]) == 0
    assert main(["export", st, out]) == 0
    assert main(["import", copy, out]) == 0
    assert main(["append", copy, ab[1], "--ts", "t", "--label", "y"]) == 0
    assert _features(Store.open(copy)) == [[1.5, 100.5], [2.5, 200.5], [3.5, 300.5], [4.5, 400.5]]


def test_a_store_without_recorded_slots_packs_as_before(tmp_path: Path, ab: tuple[str, str]) -> None:
    """A store made before the slots were recorded: appends are packed as given, nothing recorded."""
    store = Store.open(str(tmp_path / "s"), create=True)
    table, labels = read_stream(ab[0], ColumnMap(ts="t", label="y"))
    assert labels is not None
    write_label_map(store, labels)
    store.append(table.drop_columns(["key"]))
    append_stream(store, ab[1], ColumnMap(ts="t", label="y", features=("x", "z")))
    assert _features(store) == [[1.5, 100.5], [2.5, 200.5], [3.5, 300.5], [4.5, 400.5]]
    assert store.read_table("feature_map") is None


# --- 2. infinite feature values ------------------------------------------------------------------

@pytest.mark.parametrize("bad, what", [(np.inf, "an infinite value"), (-np.inf, "an infinite value"),
                                       (1e39, "beyond the float32 range")])
def test_an_infinite_feature_is_refused_naming_column_and_row(tmp_path: Path, bad: float, what: str) -> None:
    x = np.arange(10, dtype=np.float64)
    x[5] = bad
    t = pa.table({"t": np.arange(10), "x": x, "z": np.ones(10), "y": ["a", "b"] * 5})
    store = Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(SourceError) as err:
        append_stream(store, t, ColumnMap(ts="t", label="y"))
    assert err.value.key == "features"
    assert "column 'x'" in err.value.message and "at row 5 " in err.value.message and what in err.value.message
    assert store.schema is None and store.as_of().count() == 0  # nothing written
    with pytest.raises(SourceError, match="column 'x' .* at row 5 "):
        read_stream(t, ColumnMap(ts="t", label="y"))


def test_nan_and_missing_features_still_become_zero() -> None:
    t = pa.table({"t": [1, 2], "x": pa.array([np.nan, None], pa.float64()), "y": [0, 1]})
    table, _ = read_stream(t, ColumnMap(ts="t", label="y"))
    assert table.column("features").to_pylist() == [[0.0], [0.0]]


# --- 3. boolean labels ----------------------------------------------------------------------------

def test_boolean_labels_come_back_as_booleans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st, out = str(tmp_path / "s"), str(tmp_path / "e.parquet")
    f = _csv(tmp_path / "b.csv", "day,x,y\n1,1.0,True\n2,2.0,False\n")
    assert main(["append", st, f, "--ts", "day", "--label", "y"]) == 0
    labels = read_label_map(Store.open(st))
    assert labels == LabelMap("bool", (False, True))
    assert Store.open(st).as_of().to_table(["label"]).column("label").to_pylist() == [1, 0]
    capsys.readouterr()
    assert main(["labels", st, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == [{"code": 0, "label": False}, {"code": 1, "label": True}]
    assert main(["export", st, out]) == 0
    exported = pq.read_table(out)
    assert exported.schema.field("label").type == pa.bool_()
    assert exported.column("label").to_pylist() == [True, False]


def test_a_store_whose_booleans_were_mapped_to_integers_keeps_taking_booleans(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    write_label_map(store, LabelMap("int", (0, 1)))  # how stores made before mapped booleans
    store.append(pa.table({"ts": [1], "label": [1], "features": pa.array([[1.0]], pa.list_(pa.float32(), 1)),
                           "x": [1.0]}))
    append_stream(store, pa.table({"day": [2, 3], "x": [2.0, 3.0], "y": [False, True]}),
                  ColumnMap(ts="day", label="y"))
    assert read_label_map(store) == LabelMap("int", (0, 1))
    assert store.as_of().to_table(["label"]).column("label").to_pylist() == [1, 0, 1]


def test_a_column_named_like_a_role_names_the_mapped_column() -> None:
    t = pa.table({"day": [1], "x": [1.0], "label": [5], "y": ["a"]})
    with pytest.raises(SourceError) as err:
        Encoder(t.schema, ColumnMap(ts="day", label="y"), labels=LabelMap("string", ("a",)))
    assert err.value.key == "label"
    assert "(the label column is 'y')" in err.value.message and "none mapped" not in err.value.message
