"""Maintenance (compact, erase, vacuum, index_keys) at its edges: answers and verify stay exact."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from modyn_store import Store
from modyn_store.core.verify import verify


def test_a_key_index_of_no_rows_verifies_clean(tmp_path: Path) -> None:
    """Every key erased, then compact: the key index build holds no rows, which is not damage."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": [0], "ts": [0], "text": ["a"]}))
    store.erase([0], reason="test")
    store.compact()
    assert store.as_of(None).keys().tolist() == []
    report = verify(uri, deep=True)
    assert report.ok, str(report)
    assert verify(uri).ok
