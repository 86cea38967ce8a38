"""Dictionary-encoded columns (pandas' categoricals) are stored as their values, so appends with
other categories, or plain text, stay readable after the table is rewritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store


def _categories(lo: int, n: int) -> pa.Table:
    values = pa.array([f"c{i}" for i in range(lo, lo + n)])
    cat = pa.DictionaryArray.from_arrays(pa.array(np.arange(n), pa.int8()), values)
    return pa.table({"ts": np.arange(lo, lo + n), "cat": cat, "label": cat})


def test_appends_with_new_categories_survive_compaction_and_erasure(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(_categories(0, 100))
    store.append(_categories(100, 100))  # 200 categories in all: beyond int8 indices
    store.append(pa.table({"ts": [500], "cat": ["plain"], "label": ["plain"]}))
    assert store.schema.field("cat").type == pa.string() and store.schema.field("label").type == pa.string()
    store.compact()
    store.erase([3], reason="test")  # rewrites the fragment that holds key 3
    for version in (1, 2, 3, store.version):
        t = store.as_of(version).to_table(["key", "cat", "label"])
        want = {k: (f"c{k}" if k < 200 else "plain") for k in t.column("key").to_pylist()}
        assert t.column("cat").to_pylist() == [want[k] for k in t.column("key").to_pylist()]
        assert t.column("label").to_pylist() == t.column("cat").to_pylist()
    assert 3 not in store.as_of(None).keys()


def test_a_store_of_an_earlier_release_with_a_dictionary_column_takes_later_text(
        tmp_path: Path, monkeypatch) -> None:
    """Stores made before the values were stored hold a dictionary column: later appends, plain
    or dictionary-encoded, are encoded into it; text its indices cannot number is refused."""
    from modyn_store.core import _ingest
    from modyn_store.core.errors import SchemaMismatchError

    path = str(tmp_path / "old")
    with monkeypatch.context() as m:  # what the earlier release did: the column kept as given
        m.setattr(_ingest, "_plain", lambda t: t)
        Store.open(path, create=True).append(_categories(0, 50))
    store = Store.open(path)
    assert store.schema.field("cat").type == pa.dictionary(pa.int8(), pa.string())
    store.append(_categories(50, 30))  # dictionary-encoded
    store.append(pa.table({"ts": [500], "cat": ["plain"], "label": ["plain"]}))  # plain text
    t = store.as_of(None).to_table(["key", "cat"]).sort_by("key")
    assert t.column("cat").cast(pa.string()).to_pylist() == [f"c{i}" for i in range(80)] + ["plain"]
    version = store.version
    many = pa.table({"ts": np.arange(300), "cat": [f"n{i}" for i in range(300)],
                     "label": [f"n{i}" for i in range(300)]})
    with pytest.raises(SchemaMismatchError, match=r"column '(cat|label)'"):
        store.append(many)
    assert store.version == version
    # appends that each fit, but together hold more values than the indices number, are refused
    # at the one that would go over: a rewrite of the table merges every append's dictionary
    store.append(_categories(1000, 40))  # 81 + 40 = 121 values: fits
    with pytest.raises(SchemaMismatchError, match=r"column '(cat|label)' holds dictionary-encoded values with 128 "
                                                  r"codes at most .* 161 distinct values"):
        store.append(_categories(2000, 40))
    store.compact()  # every append's rows in one file: the merged dictionary fits its indices
    t = store.as_of(None).to_table(["key", "cat"]).sort_by("key")
    assert t.num_rows == 121 and t.column("cat").cast(pa.string()).to_pylist()[-1] == "c1039"


@pytest.mark.parametrize("how", ["erase", "vacuum"])
def test_a_removed_rows_value_leaves_the_dictionary_of_an_earlier_release_store(
        tmp_path: Path, monkeypatch, how: str) -> None:
    """A fragment's dictionary holds every value its rows had when written, and compaction
    copies it: the value of a removed row, the only one to use it, stayed in the rewritten file
    and in the dictionary every read of the column returned."""
    import lance

    from modyn_store.core import _ingest

    path = str(tmp_path / "old")
    with monkeypatch.context() as m:  # what the earlier release did: the column kept as given
        m.setattr(_ingest, "_plain", lambda t: t)
        Store.open(path, create=True).append(_categories(0, 50))
    store = Store.open(path)
    store.append(pa.table({"ts": np.arange(500, 520), "cat": ["plain"] * 20, "label": ["plain"] * 20}))
    assert store.schema is not None and store.schema.field("cat").type == pa.dictionary(pa.int8(), pa.string())
    if how == "erase":
        store.erase([7, 8], reason="user request")
    else:
        store.delete(keys=[7, 8])
        assert store.vacuum(keep_versions=1, dry_run=False).keys.tolist() == [7, 8]
    gone = {"c7", "c8"}

    def values(column: pa.ChunkedArray) -> set[str]:
        return {v for chunk in column.chunks for v in chunk.dictionary.to_pylist()}

    for version in range(1, store.version + 1):
        t = store.as_of(version).to_table(["key", "cat", "label"], on_unavailable="skip")
        assert not gone & (values(t.column("cat")) | values(t.column("label"))), version
    for fragment in lance.dataset(f"{path}/samples.lance").get_fragments():  # every data file
        t = fragment.to_table(columns=["cat", "label"])
        assert not gone & (values(t.column("cat")) | values(t.column("label")))
    # the rows kept read as before, their values in their dictionaries
    t = store.as_of(None).to_table(["key", "cat"]).sort_by("key")
    assert t.column("cat").cast(pa.string()).to_pylist() == [f"c{k}" for k in range(50) if k not in (7, 8)] + ["plain"] * 20
    assert {"c6", "c9", "plain"} <= values(t.column("cat"))
    assert store.as_of(None).take([6, 9], ["cat"]).column("cat").cast(pa.string()).to_pylist() == ["c6", "c9"]
