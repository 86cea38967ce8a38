"""The public row API of a snapshot (``Snapshot.row_reader``): locate, masked scan, take."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import DataUnavailableError


def _store(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    store = Store.open(str(tmp_path / "s"), create=True)
    for v in range(3):
        k = np.arange(v * 100, (v + 1) * 100)
        store.append(pa.table({"key": k, "ts": k, "x": k * 0.5}))
    return store


def test_locate_scan_and_take_return_exactly_the_rows_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = _store(tmp_path).as_of(None).row_reader()
    assert "_version" not in rows.schema.names and rows.count_rows() == 300
    want = np.array([250, 3, 117, 99])
    rid, frag = rows.locate(want)
    assert (frag >= 0).all() and len(set(frag.tolist())) == 3  # one fragment per append
    assert rows.take(rid, ["key", "x"]).to_pydict() == {"key": want.tolist(), "x": (want * 0.5).tolist()}
    got = []
    for f in np.unique(frag):
        sel = np.sort(rid[frag == f])
        got += [k for b in rows.scan(int(f), sel, ["key"]) for k in b.column(0).to_pylist()]
    assert sorted(got) == sorted(want.tolist())
    _, frag = rows.locate(np.array([5, 10**6]))
    assert frag.tolist()[1] == -1  # no stored row: flagged, never another row


def test_row_reader_before_the_first_append(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataUnavailableError):
        Store.open(str(tmp_path / "e"), create=True).as_of(None).row_reader()


def test_snapshot_locate_finds_exactly_the_live_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    store.delete(keys=[5, 150])  # version 4
    store.erase([7], reason="test")  # version 5: gone from every version
    store.compact()  # fragments of several versions merged
    k = np.random.default_rng(0).permutation(np.arange(300, 320))  # stored out of key order
    store.append(pa.table({"key": k, "ts": k, "x": k * 0.5}))  # version 6
    for version in (2, 3, 4, 6):
        snap = store.as_of(version)
        live = snap.keys()
        want = np.array([299, 5, 7, 150, 0, 310, 199, 12345, 250, 301, 318])
        rid, frag = snap.locate(want)
        expect = np.isin(want, live)
        assert (frag >= 0).tolist() == expect.tolist(), version
        got = snap.row_reader().take(rid[expect], ["key", "x"])
        assert got.column("key").to_pylist() == want[expect].tolist()
        assert got.column("x").to_pylist() == (want[expect] * 0.5).tolist()
        ref_rid, ref_frag = snap.row_reader().locate(want[expect])
        assert rid[expect].tolist() == ref_rid.tolist() and frag[expect].tolist() == ref_frag.tolist()
    assert snap.locate(np.empty(0, np.int64))[0].size == 0


@pytest.mark.parametrize("sparse", ["erase", "delete", "gaps"])
def test_locate_answers_every_copy_of_a_key_asked_twice(tmp_path, sparse: str) -> None:  # type: ignore[no-untyped-def]
    """A key asked for more than once (a trainset sampled with replacement) is found at each
    of its positions, also in fragments whose keys are not consecutive."""
    store = Store.open(str(tmp_path / "s"), create=True)
    keys = np.arange(0, 12, 2) if sparse == "gaps" else np.arange(6)
    store.append(pa.table({"key": keys, "ts": keys}))
    if sparse == "erase":
        store.erase([4], reason="test")
    elif sparse == "delete":
        store.delete(keys=[4])
    want = np.array([0, 0, 4, 2, 0, 2]) if sparse != "gaps" else np.array([0, 0, 5, 2, 0, 2])
    live = np.array([True, True, False, True, True, True])
    snap = store.as_of(None)
    rows = snap.row_reader()
    # the row reader does not check liveness: a deleted key's row is still stored
    stored = np.ones(6, bool) if sparse == "delete" else live
    for (rid, frag), expect in ((snap.locate(want), live), (rows.locate(want), stored)):
        assert (frag >= 0).tolist() == expect.tolist(), (sparse, frag)
        assert rows.take(rid[frag >= 0], ["key"]).column("key").to_pylist() == want[frag >= 0].tolist()
