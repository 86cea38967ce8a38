"""Your own data: every source kind, every label kind, and the bad inputs (clear error, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from modyn_store import DuplicateKeyError, Store
from modyn_store.app.datasets.columns import ColumnMap, SourceError
from modyn_store.app.datasets.files import open_data
from modyn_store.app.datasets.labels import LabelError, LabelMap, read_label_map, store_classes
from modyn_store.app.datasets.user import append_stream, read_stream


def _raw(n: int = 50, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "when": rng.permutation(n).astype(np.int64) * 7,
        "y": rng.choice(["cat", "dog", "eel"], n),
        "a": rng.standard_normal(n),
        "b": rng.integers(0, 5, n),
    })


def _write(table: pa.Table, folder: Path, kind: str) -> str:
    if kind == "parquet":
        pq.write_table(table, folder / "s.parquet")
        return str(folder / "s.parquet")
    if kind == "csv":
        pcsv.write_csv(table, folder / "s.csv")
        return str(folder / "s.csv")
    if kind == "ipc":
        feather.write_feather(table, folder / "s.arrow")
        return str(folder / "s.arrow")
    if kind == "lance":
        import lance

        lance.write_dataset(table, str(folder / "s.lance"))
        return str(folder / "s.lance")
    if kind == "folder":
        (folder / "parts").mkdir()
        pq.write_table(table.slice(0, 20), folder / "parts" / "p0.parquet")
        pq.write_table(table.slice(20), folder / "parts" / "p1.parquet")
        return str(folder / "parts")
    if kind == "glob":
        pq.write_table(table.slice(0, 20), folder / "g0.parquet")
        pq.write_table(table.slice(20), folder / "g1.parquet")
        return str(folder / "g*.parquet")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["parquet", "csv", "ipc", "lance", "folder", "glob", "pandas", "arrow"])
def test_every_source_kind_reads_the_same_stream(tmp_path: Path, kind: str) -> None:
    raw = _raw()
    data = raw.to_pandas() if kind == "pandas" else raw if kind == "arrow" else _write(raw, tmp_path, kind)
    table, labels = read_stream(data, ColumnMap(ts="when", label="y", features=("a", "b")))
    assert labels is not None and labels.values == ("cat", "dog", "eel")
    order = np.argsort(raw.column("when").to_numpy(), kind="stable")
    assert table.column("ts").to_numpy().tolist() == raw.column("when").to_numpy()[order].tolist()
    want_y = [labels.values.index(v) for v in np.asarray(raw.column("y").to_pylist())[order]]
    assert table.column("label").to_pylist() == want_y
    x = np.array(table.column("features").to_pylist(), dtype=np.float32)
    want_x = np.stack([raw.column("a").to_numpy(), raw.column("b").to_numpy()], 1)[order].astype(np.float32)
    np.testing.assert_allclose(x, want_x, rtol=1e-6)
    assert table.schema.field("features").type.list_size == 2  # width from the data


def test_object_store_paths_through_fsspec() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    with fs.open("memory://bucket/stream.parquet", "wb") as fh:
        pq.write_table(_raw(), fh)
    table, _ = read_stream("memory://bucket/stream.parquet", ColumnMap(ts="when", label="y"))
    assert table.num_rows == 50


@pytest.mark.parametrize("labels, codes, n", [
    ([0, 1, 1, 0], [0, 1, 1, 0], 2),                     # int 0..n-1: codes are the labels
    ([2, 12, 7, 2], [0, 2, 1, 0], 3),                    # gapped ints: 3 classes, not 13
    (["yes", "no", "no", "maybe"], [2, 1, 1, 0], 3),     # strings: sorted class names
    ([-1, 1, 1, -1], [0, 1, 1, 0], 2),                   # negative ints
])
def test_label_kinds(labels: list, codes: list, n: int) -> None:
    t = pa.table({"ts": [1, 2, 3, 4], "label": labels, "x": [0.0, 1.0, 2.0, 3.0]})
    table, lm = read_stream(t, ColumnMap())
    assert table.column("label").to_pylist() == codes
    assert lm is not None and lm.n_classes == n
    assert lm.decode(codes) == labels


def test_tensor_and_list_features_are_packed() -> None:
    flat = np.arange(12, dtype=np.float32)
    t = pa.table({
        "ts": [1, 2, 3], "label": [0, 1, 0],
        "img": pa.FixedSizeListArray.from_arrays(pa.array(flat[:6]), 2),
        "vec": pa.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),  # a plain list column, as Parquet gives back
        "s": [0.5, None, 1.5],
    })
    table, _ = read_stream(t, ColumnMap(features=("img", "vec", "s")))
    assert table.column("features").to_pylist()[1] == [2.0, 3.0, 3.0, 4.0, 0.0]  # missing -> 0
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.arange(24, dtype=np.float32).reshape(3, 2, 4))
    t2 = pa.table({"ts": [1, 2, 3], "label": [0, 1, 0], "t": tensor})
    table2, _ = read_stream(t2, ColumnMap(features=("t",)))
    assert table2.schema.field("features").type.list_size == 8
    bad = pa.table({"ts": [1, 2], "label": [0, 1], "v": pa.array([[1.0], [1.0, 2.0]])})
    with pytest.raises(SourceError, match="different lengths"):
        read_stream(bad, ColumnMap(features=("v",)))


def test_row_order_and_date_strings() -> None:
    t = pa.table({"day": ["2024-01-03", "2024-01-01"], "label": [1, 0], "x": [1.0, 2.0]})
    table, _ = read_stream(t, ColumnMap(ts="day"))
    assert pa.types.is_timestamp(table.schema.field("ts").type)
    assert table.column("label").to_pylist() == [0, 1]
    table, _ = read_stream(t.drop(["day"]), ColumnMap())
    assert table.column("ts").to_pylist() == [0, 1]  # row order


@pytest.mark.parametrize("mapping, key, text", [
    (ColumnMap(ts="nope"), "ts", "no column 'nope'"),
    (ColumnMap(label="a"), "label", "float"),
    (ColumnMap(features=("a", "zz")), "features[1]", "no column 'zz'"),
    (ColumnMap(key="y"), "key", "keys must be integers"),
    (ColumnMap(ts="y"), "ts", "not an ISO date"),
    (ColumnMap(ts="label", label="label"), "label", "already the event-time column"),
    (ColumnMap(key="b", label="b"), "label", "already the key column"),
])
def test_bad_mappings_name_the_key_and_write_nothing(tmp_path: Path, mapping: ColumnMap, key: str, text: str) -> None:
    raw = _raw().rename_columns(["when", "label", "a", "b"]).append_column("y", pa.array(["x"] * 50))
    store = Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(SourceError, match=text) as info:
        append_stream(store, raw, mapping)
    assert info.value.key == key
    assert store.version == 0 and store.schema is None


def test_rows_without_label_or_ts_write_nothing(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    t = pa.table({"ts": [1, 2, 3], "label": ["a", None, "b"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SourceError, match="without a label"):
        append_stream(store, t, ColumnMap())
    t = pa.table({"ts": [1, None, 3], "label": ["a", "b", "b"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(SourceError, match="empty rows, the first at row 1 of table"):
        append_stream(store, t, ColumnMap())
    assert store.version == 0


def test_appends_extend_the_stored_label_map(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, pa.table({"ts": [1, 2], "label": ["b", "a"], "x": [1.0, 2.0]}), ColumnMap())
    append_stream(store, pa.table({"ts": [3, 4], "label": ["c", "a"], "x": [3.0, 4.0]}), ColumnMap())
    lm = read_label_map(store)
    assert lm is not None and lm.values == ("a", "b", "c")
    assert store.as_of().to_table(["label"]).column("label").to_pylist() == [1, 0, 2, 0]
    assert store_classes(store)[0] == 3
    with pytest.raises(SourceError, match="labels are strings"):  # ints into a store of class names
        append_stream(store, pa.table({"ts": [5], "label": [1], "x": [0.0]}), ColumnMap())
    assert read_label_map(store) == lm


def test_a_failed_append_leaves_labels_and_rows_unchanged(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    append_stream(store, pa.table({"key": [1, 2], "ts": [1, 2], "label": ["b", "a"], "x": [1.0, 2.0]}), ColumnMap(key="key"))
    version, lm = store.version, read_label_map(store)
    clash = pa.table({"key": [3, 2], "ts": [3, 4], "label": ["new", "a"], "x": [3.0, 4.0]})  # key 2 exists
    with pytest.raises(DuplicateKeyError):
        append_stream(store, clash, ColumnMap(key="key"))
    assert store.version == version and read_label_map(store) == lm
    rec = append_stream(store, pa.table({"key": [3], "ts": [3], "label": ["new"], "x": [5.0]}), ColumnMap(key="key"))
    assert rec.version == version + 1 and read_label_map(store, rec.version).values == ("a", "b", "new")
    assert read_label_map(store, version) == lm


def test_a_store_of_gapped_ints_without_a_map_is_refused(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3], "label": [2, 12, 7]}))
    with pytest.raises(LabelError, match="not 0 .. n-1"):
        store_classes(store)


def test_streamed_append_reads_in_batches(tmp_path: Path) -> None:
    pq.write_table(_raw(2000), tmp_path / "big.parquet", row_group_size=300)
    store = Store.open(str(tmp_path / "s"), create=True)
    seen: list[int] = []
    rec = append_stream(store, str(tmp_path / "big.parquet"), ColumnMap(ts="when", label="y"),
                        on_batch=seen.append, batch_size=256)
    assert rec.inserted == 2000 and len(seen) > 3 and sum(seen) == 2000
    assert store.as_of().count() == 2000


def test_open_data_refuses_a_store_and_unknown_formats(tmp_path: Path) -> None:
    Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(SourceError, match="store source"):
        open_data(str(tmp_path / "s"))
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(SourceError) as info:
        open_data(str(tmp_path / "x.txt"))
    assert info.value.key == "format"
    with pytest.raises(SourceError, match="does not exist"):
        open_data(str(tmp_path / "missing.parquet"))


def test_label_map_round_trip() -> None:
    lm = LabelMap.from_values(pa.array([5, 3, 9]))
    assert LabelMap.from_table(lm.to_table()) == lm
    with pytest.raises(LabelError):
        lm.encode(pa.array([4]))
    assert pd.Series(lm.decode([0, 2])).tolist() == [3, 9]


@pytest.mark.s3
def test_append_from_s3_objects(s3_store: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    import fsspec

    from modyn_store.core._location import fsspec_options

    uri, options = s3_store
    fs = fsspec.filesystem("s3", **fsspec_options("s3", options))
    prefix = uri.rsplit("/", 1)[0]
    for i in range(2):
        with fs.open(f"{prefix}/in/part{i}.parquet", "wb") as fh:
            pq.write_table(_raw(40, seed=i), fh)
    store = Store.open(str(tmp_path / "s"), create=True)
    rec = append_stream(store, f"{prefix}/in/", ColumnMap(ts="when", label="y"), storage_options=options)
    assert rec.inserted == 80
    lance_uri = f"{prefix}/lance.lance"
    import lance

    lance.write_dataset(_raw(30), lance_uri, storage_options=options)
    assert append_stream(store, lance_uri, ColumnMap(ts="when", label="y"), storage_options=options).inserted == 30


def test_format_is_taken_from_the_option_when_the_name_does_not_tell(tmp_path: Path) -> None:
    pcsv.write_csv(_raw(), tmp_path / "export.dat")
    with pytest.raises(SourceError) as info:
        read_stream(str(tmp_path / "export.dat"), ColumnMap(ts="when", label="y"))
    assert info.value.key == "format"
    table, _ = read_stream(str(tmp_path / "export.dat"), ColumnMap(ts="when", label="y"), format="csv")
    assert table.num_rows == 50


def test_rows_without_a_label_are_skipped_only_when_asked(tmp_path: Path) -> None:
    t = pa.table({"label": ["a", None, "b", None, "a"], "x": [0.0, 1.0, 2.0, 3.0, 4.0]})
    table, lm = read_stream(t, ColumnMap(drop_unlabeled=True))
    assert table.column("key").to_pylist() == [0, 2, 4]  # keys stay the source rows
    assert table.column("ts").to_pylist() == [0, 2, 4]   # so does row-order time
    assert table.column("label").to_pylist() == [0, 1, 0] and lm is not None and lm.values == ("a", "b")
    store = Store.open(str(tmp_path / "s"), create=True)
    dropped: list[int] = []
    rec = append_stream(store, t, ColumnMap(drop_unlabeled=True), on_dropped=dropped.append, batch_size=2)
    assert rec.inserted == 3 and dropped == [2]
    x = np.array(store.as_of().to_table(["features"]).column("features").to_pylist()).ravel().tolist()
    assert x == [0.0, 2.0, 4.0]
