"""A user's files read as they are: missing CSV labels, folders of files, stream errors, chunk rules."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main
from modyn_store.app.datasets.chunking import chunk_index
from modyn_store.app.datasets.columns import ColumnMap, SourceError
from modyn_store.app.datasets.files import open_data
from modyn_store.app.datasets.labels import read_label_map
from modyn_store.app.datasets.user import append_stream, read_stream
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError


def _rows(path: str) -> list[dict]:
    return Store.open(path).as_of().to_table(["ts", "label"]).sort_by("ts").to_pylist()


def test_an_empty_csv_label_is_a_missing_label_not_a_class(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("t,x,y\n1,1.0,ok\n2,2.0,\n3,3.0,worn\n")
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match=r"rows without a label \(1 in a block of 3 rows read"):
        append_stream(st, str(f), ColumnMap(ts="t", label="y"))
    assert st.version == 0
    append_stream(st, str(f), ColumnMap(ts="t", label="y", drop_unlabeled=True))
    assert read_label_map(st).values == ("ok", "worn")
    assert _rows(str(tmp_path / "st")) == [{"ts": 1, "label": 0}, {"ts": 3, "label": 1}]


def test_a_folder_reads_only_the_files_named_for_its_format(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"t": [1, 2], "x": [1.0, 2.0], "y": [0, 1]}), d / "a.parquet")
    shutil.copy(d / "a.parquet", d / "a.parquet.bak")  # a copy kept next to the data
    (d / "README.md").write_text("sensor data\n")
    assert sum(b.num_rows for b in open_data(str(d)).batches()) == 2
    c = tmp_path / "c"
    c.mkdir()
    (c / "a.csv").write_text("t,x\n1,1.0\n")
    (c / "NOTES").write_text("collected by hand\n")
    assert open_data(str(c)).schema.names == ["t", "x"]
    p = tmp_path / "spark"
    p.mkdir()  # no file named for the format: every visible file is read
    (p / "part-00000").write_text("t,x\n1,1.0\n")
    (p / "_SUCCESS").write_text("")
    assert sum(b.num_rows for b in open_data(str(p), format="csv").batches()) == 1


def test_a_file_read_twice_is_refused_not_stored_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Named by a glob and again by name, or inside a folder given too, its rows were all
    appended twice (under new keys)."""
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"t": [1, 2], "x": [1.0, 2.0], "y": [0, 1]}), d / "a.parquet")
    pq.write_table(pa.table({"t": [3], "x": [3.0], "y": [1]}), d / "b.parquet")
    monkeypatch.chdir(tmp_path)
    for paths in (["d/a.parquet", "d/a.parquet"], ["d/*.parquet", "./d/a.parquet"], ["d", "d/b.parquet"]):
        with pytest.raises(SourceError, match="read more than once"):
            open_data(paths)
        assert main(["append", "s", *paths, "--ts", "t", "--label", "y"]) == 2
        assert not (tmp_path / "s").exists()
    assert sum(b.num_rows for b in open_data(["d/a.parquet", "d/b.parquet"]).batches()) == 3


@pytest.mark.parametrize("other", [{"t": [3], "x": [3.0], "z": [9.0], "y": [1]}, {"t": [3], "y": [1]}])
def test_files_with_other_columns_are_refused_and_nothing_is_written(tmp_path: Path, other: dict) -> None:
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"t": [1, 2], "x": [1.0, 2.0], "y": [0, 1]}), d / "a.parquet")
    pq.write_table(pa.table(other), d / "b.parquet")
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="b.parquet' has other columns") as err:
        append_stream(st, str(d), ColumnMap(ts="t", label="y"))
    assert err.value.key == "path"
    assert st.version == 0


def test_files_whose_types_widen_are_read_together(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.csv").write_text("t,x,y\n1,,a\n2,,b\n")  # x empty: a column of nulls
    (d / "b.csv").write_text("t,x,y\n3,3.5,a\n4,4,b\n")
    table, _ = read_stream(str(d), ColumnMap(ts="t", label="y"))
    assert table.column("x").to_pylist() == [None, None, 3.5, 4.0]


def test_tsv_files_are_tab_separated(tmp_path: Path) -> None:
    f = tmp_path / "s.tsv"
    f.write_text("t\tx\ty\n1\t1.5\ta\n2\t2.5\tb\n")
    table, labels = read_stream(str(f), ColumnMap(ts="t", label="y"))
    assert table.column("x").to_pylist() == [1.5, 2.5] and labels.values == ("a", "b")


def test_an_error_in_a_later_batch_is_typed_and_writes_nothing(tmp_path: Path) -> None:
    t = pa.table({"k": pa.array([1, 2, 3, 2**63 + 5], pa.uint64()), "t": [1, 2, 3, 4],
                  "x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="int64 range") as err:
        append_stream(st, t, ColumnMap(ts="t", label="y", key="k"), batch_size=2)
    assert err.value.key == "key"
    assert st.version == 0 and read_label_map(st) is None


def test_a_late_unreadable_csv_value_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "big.csv"
    with open(f, "w") as fh:
        fh.write("t,x,y\n")
        fh.writelines(f"{i},{i % 7},{'ab'[i % 2]}\n" for i in range(400_000))
        fh.write("400000,oops,a\n")
    assert main(["append", str(tmp_path / "st"), str(f), "--ts", "t", "--label", "y"]) == 2
    assert "invalid value 'oops'" in capsys.readouterr().err
    # the reader may meet the value while it reads ahead for the first batch (then no store is
    # made) or later (then the new store holds no version): nothing is written either way
    assert not (tmp_path / "st").exists() or Store.open(str(tmp_path / "st")).version == 0


@pytest.mark.parametrize("label", [pa.array([1, 2**63 + 5], pa.uint64())])
def test_integer_labels_beyond_int64_are_refused(tmp_path: Path, label: pa.Array) -> None:
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="int64 range") as err:
        append_stream(st, pa.table({"t": [1, 2], "x": [1.0, 2.0], "y": label}), ColumnMap(ts="t", label="y"))
    assert err.value.key == "label" and st.version == 0


def test_nan_event_times_are_refused_before_writing(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="NaN or infinite") as err:
        append_stream(st, pa.table({"t": [1.0, np.nan], "x": [1.0, 2.0], "y": [0, 1]}), ColumnMap(ts="t", label="y"))
    assert err.value.key == "ts" and st.version == 0


def test_uint64_event_times_beyond_int64_are_refused_not_wrapped(tmp_path: Path) -> None:
    """2**64-1 was stored, and cut as slice -1 (read as int64)."""
    big = pa.array([2, 2**64 - 1], pa.uint64())
    for rule in ("ts:5", "year", "1d"):
        with pytest.raises(InvalidArgumentError, match="int64 range"):
            chunk_index(big, rule)
    assert chunk_index(pa.array([2, 12], pa.uint64()), "ts:5").tolist() == [0, 2]
    with pytest.raises(SourceError, match="int64 range") as err:
        read_stream(pa.table({"t": big, "x": [1.0, 2.0], "y": [0, 1]}), ColumnMap(ts="t", label="y"))
    assert err.value.key == "ts"
    assert main(["append", str(tmp_path / "s"), str(_write(tmp_path, big)), "--ts", "t", "--label", "y"]) == 2
    assert not (tmp_path / "s").exists()


def _write(tmp_path: Path, ts: pa.Array) -> Path:
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"t": ts, "x": [1.0] * len(ts), "y": [0] * len(ts)}), path)
    return path


def test_day_buckets_of_sub_second_timestamps_round_down() -> None:
    ms = pa.array([-1500, -500, 0, 1500, 86_400_000 - 1, 86_400_000], pa.timestamp("ms"))
    assert chunk_index(ms, "1s").tolist() == [0, 1, 2, 3, 86_401, 86_402]
    assert chunk_index(ms, "1d").tolist() == [0, 0, 1, 1, 1, 2]
    ns = pa.array([1_700_000_000_123_456_789, 1_700_086_400_000_000_001], pa.timestamp("ns", tz="UTC"))
    assert chunk_index(ns, "1d").tolist() == [0, 1]


def test_date_event_times_take_every_time_rule() -> None:
    days = pa.array([dt.date(2024, 12, 30), dt.date(2025, 1, 1), dt.date(2025, 1, 8)])
    assert chunk_index(days, "7d").tolist() == [0, 0, 1]
    assert chunk_index(days, "year").tolist() == [0, 1, 1]
    assert chunk_index(days.cast(pa.date64()), "1d").tolist() == [0, 2, 9]


@pytest.mark.parametrize("rule", ["n:" + "9" * 25, "ts:" + "9" * 25, "9" * 20 + "d", "70368744177665d"])
def test_a_size_beyond_64_bits_is_a_typed_error(rule: str) -> None:
    with pytest.raises(InvalidArgumentError, match="rule"):
        chunk_index(pa.array([1, 2]), rule)


def test_iso_times_with_zone_offsets_are_read_as_utc(tmp_path: Path) -> None:
    t = pa.table({"t": ["2025-01-01T00:00:00+02:00", "2025-01-01T00:00:00Z"], "x": [1.0, 2.0], "y": [0, 1]})
    table, _ = read_stream(t, ColumnMap(ts="t", label="y"))
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("ts").cast(pa.int64()).to_pylist() == [1735682400_000000, 1735689600_000000]
    st = Store.open(str(tmp_path / "st"), create=True)
    append_stream(st, t, ColumnMap(ts="t", label="y"))
    assert st.as_of().count() == 2


def test_times_with_and_without_offsets_in_later_batches_write_nothing(tmp_path: Path) -> None:
    t = pa.table({"t": ["2025-01-01T00:00:00", "2025-01-01T01:00:00", "2025-01-01T02:00:00Z"],
                  "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="mixes times with and without a zone offset") as err:
        append_stream(st, t, ColumnMap(ts="t", label="y"), batch_size=2)
    assert err.value.key == "ts" and st.version == 0
    with pytest.raises(SourceError, match="not an ISO date or time, e.g. 'soon'"):
        read_stream(pa.table({"t": ["2025-01-01", "soon"], "y": [0, 1], "x": [1.0, 2.0]}), ColumnMap(ts="t", label="y"))


def test_iso_times_with_nanosecond_digits(tmp_path: Path) -> None:
    zeros = pa.table({"t": ["2025-01-01T00:00:00.123456000Z", "2025-01-01T00:00:01.000000000+01:00"],
                      "x": [1.0, 2.0], "y": [0, 1]})
    table, _ = read_stream(zeros, ColumnMap(ts="t", label="y"))
    assert table.column("ts").cast(pa.int64()).to_pylist() == [1735686001_000000, 1735689600_123456]  # in time order
    finer = pa.table({"t": ["2025-01-01T00:00:00", "2025-01-01T00:00:00.123456789"], "x": [1.0, 2.0], "y": [0, 1]})
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match=r"finer than a microsecond, e.g. '2025-01-01T00:00:00.123456789'"):
        append_stream(st, finer, ColumnMap(ts="t", label="y"))
    assert st.version == 0


def test_nan_feature_values_are_missing_values(tmp_path: Path) -> None:
    f = tmp_path / "s.parquet"
    pq.write_table(pa.table({"t": [1, 2, 3], "x": [1.0, np.nan, None], "v": pa.array([[1.0, np.nan], [2.0, 3.0],
                                                                                        [4.0, 5.0]]), "y": [0, 1, 0]}), f)
    table, _ = read_stream(str(f), ColumnMap(ts="t", label="y", features=("x", "v")))
    assert table.column("features").to_pylist() == [[1.0, 1.0, 0.0], [0.0, 2.0, 3.0], [0.0, 4.0, 5.0]]
    assert np.isnan(table.column("x").to_pylist()[1])  # the column itself is kept as it is


def test_a_later_csv_whose_columns_read_narrower_appends(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("t,x,y,note\n1,1.5,a,hi\n")
    (tmp_path / "b.csv").write_text("t,x,y,note\n2,1,b,\n")  # x reads as integers, note as nulls
    (tmp_path / "c.csv").write_text("t,x,y,note\n3,2.5,b,ok\n")
    st = Store.open(str(tmp_path / "st"), create=True)
    for f in ("a.csv", "b.csv", "c.csv"):
        append_stream(st, str(tmp_path / f), ColumnMap(ts="t", label="y"))
    t = st.as_of().to_table(["ts", "x", "note"]).sort_by("ts")
    assert t.to_pylist() == [{"ts": 1, "x": 1.5, "note": "hi"}, {"ts": 2, "x": 1.0, "note": None},
                             {"ts": 3, "x": 2.5, "note": "ok"}]
    (tmp_path / "d.csv").write_text("t,x,y,note\n4,1.0,b,5\n")  # a number where the store has text
    with pytest.raises(ModynStoreError, match="does not match the store's schema"):
        append_stream(st, str(tmp_path / "d.csv"), ColumnMap(ts="t", label="y"))
    assert st.version == 3


def test_skipped_unlabelled_rows_need_no_event_time(tmp_path: Path) -> None:
    t = pa.table({"t": pa.array([1, None, 3]), "x": [1.0, 2.0, 3.0], "y": pa.array([0, None, 1])})
    st = Store.open(str(tmp_path / "st"), create=True)
    assert append_stream(st, t, ColumnMap(ts="t", label="y", drop_unlabeled=True)).inserted == 2
    table, _ = read_stream(t, ColumnMap(ts="t", label="y", drop_unlabeled=True))
    assert table.column("ts").to_pylist() == [1, 3]


def test_the_append_progress_counts_skipped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.parquet"
    pq.write_table(pa.table({"t": [1, 2, 3], "x": [1.0, 2.0, 3.0], "y": pa.array([0, None, 1])}), f)
    assert main(["append", str(tmp_path / "st"), str(f), "--ts", "t", "--label", "y", "--drop-unlabeled"]) == 0
    captured = capsys.readouterr()
    assert "1 rows without a label skipped" in captured.out
    assert "3/3" in captured.err


def test_a_csv_of_second_timestamps_appends_to_a_store_of_microseconds(tmp_path: Path) -> None:
    pq.write_table(pa.table({"t": pa.array([dt.datetime(2025, 1, 1, 0, 0, 0, 123)], pa.timestamp("us")),
                             "x": [1.0], "y": ["a"]}), tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("t,x,y\n2025-01-02 00:00:00,2.0,b\n")  # read as timestamp[s]
    st = Store.open(str(tmp_path / "st"), create=True)
    append_stream(st, str(tmp_path / "a.parquet"), ColumnMap(ts="t", label="y"))
    append_stream(st, str(tmp_path / "b.csv"), ColumnMap(ts="t", label="y"))
    assert st.as_of().to_table(["ts"]).sort_by("ts").column("ts").to_pylist() == [
        dt.datetime(2025, 1, 1, 0, 0, 0, 123), dt.datetime(2025, 1, 2)]


def test_hidden_files_and_folders_are_skipped_on_any_file_system() -> None:
    import io

    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ["a.parquet", "a.parquet.bak", "_tmp/b.parquet", ".c.parquet", "sub/d.parquet"]:
        buf = io.BytesIO()
        pq.write_table(pa.table({"t": [1]}), buf)
        fs.pipe(f"/hidden-files-case/{name}", buf.getvalue())
    try:
        for where in ("memory://hidden-files-case", "memory://hidden-files-case/"):
            assert sum(b.num_rows for b in open_data(where).batches()) == 2  # a and sub/d
    finally:
        fs.rm("/hidden-files-case", recursive=True)


def test_quoted_values_spanning_lines_are_read_across_blocks(tmp_path: Path) -> None:
    import csv as pycsv

    f = tmp_path / "reviews.csv"
    n = 200_000  # about 12 MB: several read blocks
    with open(f, "w", newline="") as fh:
        w = pycsv.writer(fh)
        w.writerow(["t", "x", "y", "review"])
        w.writerows([i, i * 0.5, "ab"[i % 2], f"line one {i}\nline two, with comma {i}"] for i in range(n))
    table, _ = read_stream(str(f), ColumnMap(ts="t", label="y", features=("x",)))
    assert table.column("ts").to_pylist() == list(range(n))
    assert table.column("review")[n - 1].as_py() == f"line one {n - 1}\nline two, with comma {n - 1}"


def test_the_index_pandas_writes_is_not_a_column(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"t": [1, 2, 3], "x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"]}, index=[10, 20, 30])
    df.to_parquet(tmp_path / "f.parquet")
    assert "__index_level_0__" in pq.read_schema(tmp_path / "f.parquet").names
    st = Store.open(str(tmp_path / "st"), create=True)
    append_stream(st, str(tmp_path / "f.parquet"), ColumnMap(ts="t", label="y"))
    assert st.schema.names == ["key", "ts", "label", "features", "x"]


def test_a_csv_column_empty_in_its_first_rows_reads_its_later_values(tmp_path: Path) -> None:
    # the CSV reader types a column by its first block (4 MiB): one empty there is typed null
    f = tmp_path / "sensors.csv"
    n, empty = 450_000, 400_000  # about 7 MB; `sun`, `note` and `flag` empty in the first 6 MB
    with open(f, "w") as fh:
        fh.write("t,x,sun,note,flag,y\n")
        fh.writelines(f"{i},{i % 5},{'' if i < empty else i % 9 + 0.5},{'' if i < empty else 'n' + str(i % 3)},"
                      f"{'' if i < empty else 'true'},{'ab'[i % 2]}\n" for i in range(n))
    st = str(tmp_path / "st")
    append_stream(Store.open(st, create=True), str(f), ColumnMap(ts="t", label="y", features=("x", "sun")))
    t = Store.open(st).as_of().to_table(["ts", "sun", "note", "flag", "features"]).sort_by("ts")
    assert t.schema.field("sun").type == pa.float64() and t.schema.field("note").type == pa.string()
    assert t.schema.field("flag").type == pa.bool_()
    last = t.slice(n - 1).to_pylist()[0]
    assert (last["sun"], last["note"], last["flag"]) == ((n - 1) % 9 + 0.5, f"n{(n - 1) % 3}", True)
    assert last["features"] == [float((n - 1) % 5), (n - 1) % 9 + 0.5]
    assert t.column("sun").null_count == empty


def test_a_csv_column_whole_in_its_first_rows_and_fractional_later_reads_as_float(tmp_path: Path) -> None:
    # whole numbers in the first block (4 MiB) make the reader type a column int64; a later 6.6 is
    # no int64: the column is typed from all its values, while a column whole throughout stays int64
    f = tmp_path / "weather.csv"
    n, whole = 450_000, 400_000  # about 7 MB; `rain` whole in the first 6 MB
    with open(f, "w") as fh:
        fh.write("t,rain,count,y\n")
        fh.writelines(f"{i},{i % 7 if i < whole else i % 7 + 0.6},{i % 11},{'ab'[i % 2]}\n" for i in range(n))
    assert open_data(str(f)).schema.field("rain").type == pa.float64()
    assert open_data(str(f)).schema.field("count").type == pa.int64()
    st = str(tmp_path / "st")
    append_stream(Store.open(st, create=True), str(f), ColumnMap(ts="t", label="y", features=("rain", "count")))
    t = Store.open(st).as_of().to_table(["ts", "rain", "count", "features"]).sort_by("ts")
    assert t.schema.field("rain").type == pa.float64() and t.schema.field("count").type == pa.int64()
    last = t.slice(n - 1).to_pylist()[0]
    assert last["rain"] == pytest.approx((n - 1) % 7 + 0.6) and last["count"] == (n - 1) % 11
    assert last["features"] == pytest.approx([(n - 1) % 7 + 0.6, float((n - 1) % 11)])


def test_csv_types_are_found_again_for_a_changed_file(tmp_path: Path) -> None:
    # the types are read once per unchanged file (an append opens it twice); a rewritten file
    # (its size, time or inode changed) is read again
    f = tmp_path / "x.csv"
    n = 450_000
    f.write_text("t,v\n" + "".join(f"{i},{i % 7}\n" for i in range(n)))
    assert open_data(str(f)).schema.field("v").type == pa.int64()
    f.write_text("t,v\n" + "".join(f"{i},{i % 7 if i < n - 1 else 0.5}\n" for i in range(n)))
    assert open_data(str(f)).schema.field("v").type == pa.float64()


def test_a_csv_int_column_with_a_later_word_is_refused_naming_the_row(tmp_path: Path) -> None:
    f = tmp_path / "weather.csv"
    with open(f, "w") as fh:
        fh.write("t,rain,y\n")
        fh.writelines(f"{i},{i % 7 if i != 420_000 else 'n/a?'},{'ab'[i % 2]}\n" for i in range(450_000))
    assert open_data(str(f)).schema.field("rain").type == pa.int64()
    st = str(tmp_path / "st")
    with pytest.raises(SourceError, match="Row #420002.*invalid value 'n/a\\?'"):
        append_stream(Store.open(st, create=True), str(f), ColumnMap(ts="t", label="y", features=("rain",)))


def test_a_missing_event_time_names_its_file_and_row(tmp_path: Path) -> None:
    # 70,000 rows: the empty time lies in the second batch read; the unlabelled rows before it
    # are skipped (--drop-unlabeled) but still counted in the row number
    n, bad = 70_000, 68_123
    f = tmp_path / "readings.csv"
    with open(f, "w") as fh:
        fh.write("t,x,y\n")
        fh.writelines(f"{'' if i == bad else i},{i % 5},{'' if i in (3, 9) else 'ab'[i % 2]}\n" for i in range(n))
    st = str(tmp_path / "st")
    with pytest.raises(SourceError, match=rf"'t' has empty rows, the first at row {bad} of .*readings\.csv"):
        append_stream(Store.open(st, create=True), str(f), ColumnMap(ts="t", label="y", drop_unlabeled=True))
    assert Store.open(st).version == 0
    table = pa.table({"t": [1, 2, 3], "k": [5, None, 7], "x": [0.5, 1.5, 2.5], "y": ["a", "b", "a"]})
    with pytest.raises(SourceError, match="'k' has empty rows, the first at row 1 of table.*needs a key"):
        append_stream(Store.open(st), table, ColumnMap(ts="t", label="y", key="k"))


def test_a_repeated_key_names_the_key_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "readings.csv"
    f.write_text("t,id,x,y\n" + "".join(f"{i},{17 if i == 40 else i},{i % 5},{'ab'[i % 2]}\n" for i in range(60)))
    st = str(tmp_path / "st")
    args = ["append", st, str(f), "--ts", "t", "--label", "y", "--key", "id"]
    assert main(args) == 2
    assert re.search(r"--key: column 'id' must hold each key once.*duplicate keys within the appended data, "
                     r"e\.g\. \[17\].*leave --key out", capsys.readouterr().err)
    assert not Path(st).exists()
    f.write_text("t,id,x,y\n" + "".join(f"{i},{i},{i % 5},{'ab'[i % 2]}\n" for i in range(60)))
    assert main(args) == 0
    assert main(args) == 2
    assert re.search(r"--key: column 'id' must hold each key once.*60 keys already exist", capsys.readouterr().err)
    assert Store.open(st).version == 1


def test_a_pipeline_source_with_a_repeated_key_is_refused_naming_the_column() -> None:
    data = pa.table({"t": list(range(6)), "id": [1, 2, 3, 2, 5, 1], "x": [0.5] * 6, "y": ["a", "b"] * 3})
    with pytest.raises(SourceError, match=r"key: column 'id' holds 2 keys more than once, e\.g\. \[1, 2\]"):
        read_stream(data, ColumnMap(ts="t", label="y", key="id"))
