"""Dictionary-encoded columns (pandas' categoricals) are stored as their values, so appends with
other categories, or plain text, stay readable after the table is rewritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

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
