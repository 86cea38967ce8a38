"""The rows and stores of ``bench_store.py`` (and of the scripts that reuse them): key layouts,
time-ordered batches, a store built by a number of appends with 1% deleted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import Store

BATCH = 1 << 20


#: key layouts of the read rows (``--keys``): the keys of row ``i`` and the filter that deletes 1%
#: of them. ``runs``: ``i`` (auto-assigned or time-ordered keys: every scanned batch is a run of
#: consecutive keys); ``gaps``: ``2i`` (sorted, never consecutive); ``shuffled``: a seeded
#: permutation of ``0 .. rows - 1`` (user keys in no order; ``keys()`` must sort them);
#: ``spread``: a bijective mix of ``i`` over ``0 .. 2^63 - 1`` (distinct keys in no order over the
#: whole non-negative int64 range, as hashed user or document ids are: no table of their span fits)
KEY_LAYOUTS = {"runs": "key % 100 = 0", "gaps": "key % 200 = 0", "shuffled": "key % 100 = 0",
               "spread": "key % 100 = 0"}
_M63 = np.uint64((1 << 63) - 1)


def spread_keys(rows: int) -> np.ndarray:
    """Keys ``mix(i)`` of ``i = 0 .. rows - 1``: multiplications by odd constants modulo 2^63 and
    xor-shifts, each a bijection of ``0 .. 2^63 - 1`` (so the keys are distinct), in the manner
    of splitmix64. (A single multiplication would leave a Weyl sequence, whose top bits are
    evenly spread by construction: kinder to a hashed table than real ids are.)"""
    x = np.arange(rows, dtype=np.uint64)
    for mult, shift in ((0xBF58476D1CE4E5B9, 31), (0x94D049BB133111EB, 29), (0xD6E8FEB86659FD93, 32)):
        x = (x * np.uint64(mult)) & _M63
        x ^= x >> np.uint64(shift)
    return x.astype(np.int64)


def make_keys(rows: int, layout: str = "runs") -> np.ndarray:
    """The keys of rows ``0 .. rows - 1`` in the given layout (see :data:`KEY_LAYOUTS`)."""
    if layout == "gaps":
        return np.arange(rows, dtype=np.int64) * 2
    if layout == "shuffled":
        return np.random.default_rng(7).permutation(rows).astype(np.int64)
    if layout == "spread":
        return spread_keys(rows)
    return np.arange(rows, dtype=np.int64)


def make_batches(rows: int, seed: int = 0, layout: str = "runs") -> list[pa.Table]:
    """Narrow time-ordered rows (key, ts, x) in chunks of about a million."""
    rng = np.random.default_rng(seed)
    keys = make_keys(rows, layout)
    out = []
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        out.append(
            pa.table(
                {
                    "key": keys[start : start + n],
                    "ts": np.arange(start, start + n, dtype=np.int64),
                    "x": rng.random(n, dtype=np.float32),
                }
            )
        )
    return out


def build_store(path: str, batches: list[pa.Table], versions: int = 10, delete: bool = True, cls: Any = None,
                where: str = KEY_LAYOUTS["runs"]) -> Any:
    """A store holding ``batches`` spread over ``versions`` appends, with 1% (``where``) soft-deleted."""
    store = (cls or Store).open(path, create=True)
    table = pa.concat_tables(batches)
    step = max(1, table.num_rows // versions)
    for start in range(0, table.num_rows, step):
        store.append(table.slice(start, step))
    if delete:
        store.delete(where=where)
    return store
