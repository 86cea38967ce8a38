"""Own-data ingestion: class codes keep their meaning across versions, timestamp units that convert
exactly are accepted, and an empty label column is named as such."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.labels import read_label_map


def _api_store(path: Path, labels: list[int]) -> Store:
    """A store written through the Python API: raw integer labels, no label map."""
    store = Store.open(str(path), create=True)
    n = len(labels)
    feats = pa.FixedSizeListArray.from_arrays(pa.array([0.1 * i for i in range(n)], pa.float32()), 1)
    store.append(pa.table({"ts": list(range(1, n + 1)), "features": feats, "label": labels}))
    return store


def _code_of(store: Store, version: int, key: int) -> int:
    t = store.as_of(version).to_table(["key", "label"], on_unavailable="skip").to_pydict()
    return dict(zip(t["key"], t["label"]))[key]


def test_append_keeps_the_codes_of_deleted_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Labels 2 and 3 only in deleted rows: a new row of label 3 gets code 3, never code 2."""
    store = _api_store(tmp_path / "st", [0, 1, 2, 3])
    store.delete(keys=[2, 3])
    (tmp_path / "new.csv").write_text("ts,features,label\n5,0.5,3\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "new.csv")]) == 0
    store = Store.open(str(tmp_path / "st"))
    labels = read_label_map(store)
    assert labels is not None and labels.values == (0, 1, 2, 3)
    assert _code_of(store, 1, 2) == 2 and _code_of(store, 1, 3) == 3
    assert labels.decode([_code_of(store, store.version, 4)]) == [3]


def test_append_after_erasure_refuses_codes_it_cannot_prove(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Rows erased: codes past the stored labels may have meant other labels; a known one is fine."""
    store = _api_store(tmp_path / "st", [0, 1, 2, 3])
    store.erase([2, 3], reason="test")
    st = str(tmp_path / "st")
    (tmp_path / "new.csv").write_text("ts,features,label\n5,0.5,7\n")
    assert main(["append", st, str(tmp_path / "new.csv")]) == 2
    err = capsys.readouterr().err
    assert "--label" in err and "[7]" in err and "erase or vacuum" in err
    assert Store.open(st).version == 2  # nothing written
    (tmp_path / "old.csv").write_text("ts,features,label\n5,0.5,1\n")
    assert main(["append", st, str(tmp_path / "old.csv")]) == 0
    assert read_label_map(Store.open(st)).values == (0, 1)


def test_append_after_erasure_keeps_a_code_between_stored_ones(tmp_path: Path) -> None:
    """Label 2 erased, 3 still stored: code 2 stays label 2's (reserved), 3 stays 3."""
    store = _api_store(tmp_path / "st", [0, 1, 2, 3])
    store.erase([2], reason="test")
    (tmp_path / "new.csv").write_text("ts,features,label\n5,0.5,3\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "new.csv")]) == 0
    store = Store.open(str(tmp_path / "st"))
    assert read_label_map(store).values == (0, 1, 2, 3)
    assert _code_of(store, store.version, 4) == 3


def test_import_of_an_export_with_another_timestamp_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV times read as timestamp[s]; export writes timestamp[ms]; a sibling store takes it back."""
    (tmp_path / "a.csv").write_text("id,time,label,x\n1,2025-01-01 00:00:00,0,0.5\n2,2025-01-01 00:00:01,1,0.6\n")
    (tmp_path / "b.csv").write_text("id,time,label,x\n10,2025-01-02 00:00:00,0,0.5\n")
    a, b, out = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "b.parquet")
    assert main(["append", a, str(tmp_path / "a.csv"), "--ts", "time", "--key", "id"]) == 0
    assert main(["append", b, str(tmp_path / "b.csv"), "--ts", "time", "--key", "id"]) == 0
    assert main(["export", b, out]) == 0
    capsys.readouterr()
    assert main(["import", a, out]) == 0, capsys.readouterr().err
    store = Store.open(a)
    assert store.schema.field("ts").type == pa.timestamp("s")
    t = store.as_of().to_table(["key", "ts"]).to_pydict()
    assert t["key"] == [1, 2, 10] and str(t["ts"][2]) == "2025-01-02 00:00:00"


def test_a_store_of_second_times_comes_back_from_its_export_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Parquet has no seconds unit: the export names its timestamp[s] columns, import casts them back."""
    (tmp_path / "a.csv").write_text("id,time,label,x\n1,2025-01-01 00:00:00,0,0.5\n2,2025-01-01 00:00:01,1,0.6\n")
    a, b, out = str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a.parquet")
    assert main(["append", a, str(tmp_path / "a.csv"), "--ts", "time", "--key", "id"]) == 0
    assert main(["export", a, out]) == 0
    assert main(["import", b, out]) == 0, capsys.readouterr().err
    assert Store.open(b).schema.field("ts").type == pa.timestamp("s")
    assert Store.open(b).as_of().to_table().equals(Store.open(a).as_of().to_table())


def test_timestamps_finer_than_the_store_or_of_another_zone_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.csv").write_text("time,label,x\n2025-01-01 00:00:00,0,0.5\n")
    (tmp_path / "frac.csv").write_text("time,label,x\n2025-01-03 00:00:00.5,0,0.5\n")
    (tmp_path / "zone.csv").write_text("time,label,x\n2025-01-03T00:00:00Z,0,0.5\n")
    a = str(tmp_path / "a")
    assert main(["append", a, str(tmp_path / "a.csv"), "--ts", "time"]) == 0
    capsys.readouterr()
    assert main(["append", a, str(tmp_path / "frac.csv"), "--ts", "time"]) == 2
    err = capsys.readouterr().err
    assert "column 'ts'" in err and "timestamp[s]" in err and "finer" in err
    assert main(["append", a, str(tmp_path / "zone.csv"), "--ts", "time"]) == 2
    assert "UTC" in capsys.readouterr().err
    assert Store.open(a).version == 1


def test_an_empty_label_column_is_named_as_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.csv").write_text("ts,label,x\n1,,0.5\n2,,0.6\n")
    st = str(tmp_path / "st")
    assert main(["append", st, str(tmp_path / "empty.csv")]) == 2
    err = capsys.readouterr().err
    assert "'label'" in err and "empty.csv" in err and "no values" in err
    assert "float" not in err and "regression" not in err


def test_an_export_rewritten_without_its_layout_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text("ts,label,x\n1,0,0.5\n2,1,0.6\n3,0,0.7\n")
    store = str(tmp_path / "s")
    assert main(["append", store, str(tmp_path / "a.csv")]) == 0
    assert main(["export", store, str(tmp_path / "e.parquet")]) == 0
    t = pq.read_table(tmp_path / "e.parquet")
    t = t.set_column(0, "key", pc.add(t.column("key"), 100)).replace_schema_metadata(None)  # as a rewrite does
    pq.write_table(t, tmp_path / "rewritten.parquet")
    capsys.readouterr()
    assert main(["import", store, str(tmp_path / "rewritten.parquet")]) == 2
    err = capsys.readouterr().err
    assert "'features' column without its slot layout" in err and "packs ['x'] by name" in err
    assert "--features" not in err  # no flag was given
    assert Store.open(store).version == 1
    pq.write_table(t.drop_columns(["features"]), tmp_path / "plain.parquet")  # what the message advises
    assert main(["import", store, str(tmp_path / "plain.parquet")]) == 0
    assert Store.open(store).as_of().count() == 6


def _two_appends(tmp_path: Path, first: str, second: str, *, status: int) -> str:
    """A store made by appending CSV text ``first`` (which succeeds), then ``second``, whose
    append must end with ``status``; returns the store's path."""
    (tmp_path / "a.csv").write_text(first)
    (tmp_path / "b.csv").write_text(second)
    st = str(tmp_path / "st")
    assert main(["append", st, str(tmp_path / "a.csv"), "--ts", "t", "--label", "lab"]) == 0
    assert main(["append", st, str(tmp_path / "b.csv"), "--ts", "t", "--label", "lab"]) == status
    return st


def test_bool_labels_into_other_integer_labels_are_refused(tmp_path: Path) -> None:
    """Booleans extend an integer map only where it holds 0 and 1 (a store from before booleans had
    a kind): into labels 5 and 7 they would silently become two new classes, so they are refused
    and nothing is written."""
    st = _two_appends(tmp_path, "t,x,lab\n1,0.1,5\n2,0.2,7\n3,0.3,5\n", "t,x,lab\n4,0.4,True\n5,0.5,False\n",
                      status=2)
    store = Store.open(st)
    assert store.version == 1
    labels = read_label_map(store)
    assert labels is not None and labels.values == (5, 7)


def test_bool_labels_into_a_zero_one_integer_store_still_append(tmp_path: Path) -> None:
    """A store whose integer labels are 0 and 1 (booleans as stores made before booleans had a kind
    kept them) goes on taking booleans as 0 and 1."""
    store = _api_store(tmp_path / "st", [0, 1, 0])
    (tmp_path / "b.csv").write_text("ts,features,label\n5,0.5,True\n6,0.6,False\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "b.csv")]) == 0
    store = Store.open(str(tmp_path / "st"))
    assert _code_of(store, store.version, 3) == 1 and _code_of(store, store.version, 4) == 0


def test_an_empty_feature_column_in_a_later_file_is_missing_values(tmp_path: Path) -> None:
    """A later CSV whose feature column has no value in any row (read as type null) is appended
    like one with some values missing: 0 in ``features``, nulls in the raw column."""
    st = _two_appends(tmp_path, "t,x,z,lab\n1,0.1,1.5,a\n2,0.2,2.5,b\n", "t,x,z,lab\n3,0.3,,a\n4,0.4,,b\n",
                      status=0)
    store = Store.open(st)
    t = store.as_of(2).to_table(["key", "features", "z"]).sort_by("key").to_pydict()
    assert t["z"] == [1.5, 2.5, None, None]
    assert [round(f[1], 4) for f in t["features"]] == [1.5, 2.5, 0.0, 0.0]
    assert [round(f[0], 4) for f in t["features"]] == [0.1, 0.2, 0.3, 0.4]


def test_a_column_empty_in_every_row_of_a_new_stores_first_file_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Typed null, it would refuse every later file with values in it: named at the first file,
    nothing made; read together with a file holding its values it takes their type."""
    (tmp_path / "a.csv").write_text("t,y,x,later\n1,a,0.1,\n2,b,0.2,\n")
    (tmp_path / "b.csv").write_text("t,y,x,later\n3,a,0.3,5\n4,b,0.4,6\n")
    st = str(tmp_path / "st")
    assert main(["append", st, str(tmp_path / "a.csv"), "--ts", "t", "--label", "y"]) == 2
    err = capsys.readouterr().err
    assert "column 'later'" in err and "no value in any row" in err and "FILE" in err
    assert not (tmp_path / "st").exists()
    assert main(["append", st, str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--ts", "t", "--label", "y"]) == 0
    assert main(["append", st, str(tmp_path / "a.csv"), "--ts", "t", "--label", "y"]) == 0  # later: all missing
    store = Store.open(st)
    assert store.schema.field("later").type == pa.int64()
    assert store.as_of().to_table(["later"]).column("later").null_count == 4


def test_a_csv_with_only_a_header_is_named_as_holding_no_rows(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A header without rows reads every column as empty: the error says the file holds no rows,
    not that the label column has no values."""
    (tmp_path / "h.csv").write_text("t,x,lab\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "h.csv"), "--ts", "t", "--label", "lab"]) == 2
    err = capsys.readouterr().err
    assert "holds no rows" in err and "FILE" in err and "label is empty" not in err


def test_a_parquet_file_without_rows_is_named_as_holding_no_rows(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A typed Parquet file with no rows (no batch at all) was refused as 'a label map is required
    to encode labels'; append and a pipeline source name the file and leave no store behind."""
    import pyarrow.parquet as pq

    from modyn_store.app.datasets.columns import ColumnMap, SourceError
    from modyn_store.app.datasets.user import read_stream

    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"t": pa.array([], pa.int64()), "x": pa.array([], pa.float64()),
                             "lab": pa.array([], pa.string())}), path)
    assert main(["append", str(tmp_path / "st"), str(path), "--ts", "t", "--label", "lab"]) == 2
    err = capsys.readouterr().err
    assert "e.parquet holds no rows" in err and "label map" not in err
    assert not (tmp_path / "st").exists()
    with pytest.raises(SourceError, match="holds no rows"):
        read_stream(str(path), ColumnMap(ts="t", label="lab"))


def test_a_feature_column_listed_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--features x,x`` (a typo for ``x,y``) was packed as the single feature x, silently."""
    from modyn_store.app.datasets.columns import ColumnMap, SourceError
    from modyn_store.app.datasets.user import read_stream

    (tmp_path / "d.csv").write_text("t,x,y,lab\n1,0.5,1.5,a\n2,0.7,2.5,b\n")
    assert main(["append", str(tmp_path / "st"), str(tmp_path / "d.csv"), "--ts", "t", "--label", "lab",
                 "--features", "x,x"]) == 2
    assert "--features[1]: column 'x' is listed twice (also features[0])" in capsys.readouterr().err
    assert not (tmp_path / "st").exists()
    with pytest.raises(SourceError) as info:
        read_stream(str(tmp_path / "d.csv"), ColumnMap(ts="t", label="lab", features=("x", "y", "x")))
    assert info.value.key == "features[2]"
