"""Streaming reads between data cutoffs against a plain NumPy reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import Cutoff, DataAmount, SelectionContext, TriggerInput
from fakes import MemorySnapshot
from policies._stream import count_rows, iter_rows


def _cutoff(draw_version: int, ts: int | None, key: int | None) -> Cutoff:
    return Cutoff(draw_version) if ts is None else Cutoff(draw_version, ts, key)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5)), min_size=0, max_size=40),
    st.one_of(st.none(), st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(0, 5)),
                                   st.integers(0, 45))),
    st.one_of(st.none(), st.tuples(st.integers(0, 5), st.one_of(st.none(), st.integers(0, 5)),
                                   st.integers(0, 45))),
    st.integers(1, 7),
)
def test_rows_between_cutoffs_match_reference(rows, lo, hi, batch) -> None:  # type: ignore[no-untyped-def]
    versions = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    keys = np.arange(len(rows), dtype=np.int64)
    snap = MemorySnapshot(pa.table({"key": keys, "ts": ts, "_version": versions}), 5)
    excluded = keys[::5]
    ctx = SelectionContext(snapshot=snap, excluded=excluded, batch_size=batch)
    since = None if lo is None else _cutoff(*lo)
    until = None if hi is None else _cutoff(*hi)
    got = np.sort(np.concatenate([b["key"] for b in iter_rows(ctx, since=since, until=until)]
                                 or [np.empty(0, np.int64)]))
    mask = ~np.isin(keys, excluded)
    if since is not None:
        mask &= ~since.includes(versions, ts, keys)
    if until is not None:
        mask &= until.includes(versions, ts, keys)
    assert got.tolist() == keys[mask].tolist()
    assert count_rows(ctx, since=since, until=until) == int(mask.sum())


def test_firing_cutoff_splits_a_version_exactly() -> None:
    keys = np.array([10, 11, 12, 13, 14])
    ts = np.array([3, 1, 4, 1, 5])
    order = np.lexsort((keys, ts))  # the store orders a version's rows by (ts, key)
    d = TriggerInput(version=2, keys=keys[order], ts=ts[order])
    f = DataAmount(every=3).fire(d)[0]
    assert (f.version, f.position, f.boundary) == (2, 3, (4, 12))
    inside = f.cutoff.includes(np.full(5, 2), ts, keys)
    assert keys[inside].tolist() == [10, 11, 13]  # ts 3, 1, 1: the first three by (ts, key)
    assert sorted(d.keys_after(f).tolist()) == keys[~inside].tolist()
