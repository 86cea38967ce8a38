"""The deletion events of a replay follow every, fraction, mode, older_than and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.runner import ingest


def _table() -> pa.Table:
    n = 100
    return pa.table({"key": np.arange(n), "ts": np.arange(n), "label": np.arange(n) % 2,
                     "features": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(n, dtype=np.float32)), 1)})


def _events(tmp_path: Path, name: str, **deletions: Any) -> tuple[Store, list[tuple[Any, Any]]]:
    table = _table()
    cfg = parse_pipeline({"name": name, "source": {"data": table, "chunk": "n:10"}, "model": {"name": "logreg"},
                          "trigger": {"name": "data_amount", "every": 1000}, "deletions": deletions})
    store = Store.open(str(tmp_path / name), create=True)
    return store, list(ingest(store, cfg, table))


def _deleted(events: list[tuple[Any, Any]]) -> list[tuple[int, list[int]]]:
    return [(chunk.index, sorted(d.keys.tolist())) for chunk, d in events if d is not None]


def test_every_fraction_and_older_than(tmp_path: Path) -> None:
    _, ev = _events(tmp_path, "a", every=3, fraction=0.2, mode="erase", older_than=2, seed=0)
    assert [n for n, (_, d) in enumerate(ev, start=1) if d is not None] == [3, 6, 9]  # after every 3rd of 10 chunks
    gone = 0
    for n, (_, d) in enumerate(ev, start=1):
        if d is None:
            continue
        keys = d.keys
        older = n * 10 - 20 - gone  # live rows outside the last two chunks
        assert keys.size == round(older * 0.2)
        assert keys.max() < (n - 2) * 10  # none of the last two chunks' keys
        gone += keys.size


def test_mode_delete_soft_deletes_and_mode_erase_erases(tmp_path: Path) -> None:
    store_d, ev_d = _events(tmp_path, "d", every=5, fraction=0.5, mode="delete", older_than=0, seed=1)
    store_e, ev_e = _events(tmp_path, "e", every=5, fraction=0.5, mode="erase", older_than=0, seed=1)
    assert [d.mode for _, d in ev_d if d is not None] == ["delete", "delete"]
    assert [d.mode for _, d in ev_e if d is not None] == ["erase", "erase"]
    assert {r.op for r in store_d.log()} >= {"delete"} and "erase" not in {r.op for r in store_d.log()}
    assert "erase" in {r.op for r in store_e.log()}
    first = sorted(next(d for _, d in ev_d if d is not None).keys.tolist())
    assert len(first) == 25  # half of the 50 live rows after chunk 5 (older_than 0: every chunk qualifies)
    # soft deletion keeps the rows readable in old versions; erasure removes them from every version
    assert np.isin(first, store_d.as_of(5).keys()).all()
    assert not np.isin(first, store_e.as_of(5).keys()).any()


def test_seed_picks_the_rows(tmp_path: Path) -> None:
    a = _deleted(_events(tmp_path, "s1", every=2, fraction=0.3, mode="delete", older_than=1, seed=1)[1])
    b = _deleted(_events(tmp_path, "s2", every=2, fraction=0.3, mode="delete", older_than=1, seed=1)[1])
    c = _deleted(_events(tmp_path, "s3", every=2, fraction=0.3, mode="delete", older_than=1, seed=2)[1])
    assert a == b and a != c
