"""Kept scratch buffers against fresh temporaries, for the two per-batch passes that use them.

Each side computes the same answer, interleaved in one process, best of ``--repeat``:

- **run checksums**: ``integrity.run_checksum`` of ``--batches`` runs of 64K consecutive keys
  (each a first computation: a new first key every round) against the same mix written with
  fresh temporaries, an ``arange`` of the run and two new scratch buffers per call;
- **hashed lookup**: ``HashedKeys.hits`` of 64K-key batches of ``--rows`` shuffled keys, spread
  (times ``SPREAD``) so that the table is hashed, not direct, against their 1% (a stream's table)
  against the same filter on the same table with fresh temporaries;
- **a stream's record of the keys it read**: ``iter_keys()`` of a store of ``--rows`` shuffled
  keys with 1% deleted, whose record of keys read out of order (to resume from after a
  compaction) keeps read-only views of the Arrow key columns, against the same stream copying
  every batch's keys into that record.

Run it as (figures in docs/PERFORMANCE.md, "A fresh process" and "Keys that are not runs")::

    python benchmarks/kept_buffers.py --batches 16 --rows 1000000 --repeat 20
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine._search import _FIB, HashedKeys, _isin_searched
from modyn_store.core import integrity

BATCH = 1 << 16
#: the hashed lookup's keys are the shuffled keys times this odd number
SPREAD = 1_000_003


def fresh_run_checksum(first: int, n: int) -> int:
    """The run's checksum with a new ``arange`` and two new scratch buffers (the peer)."""
    x = np.arange(n, dtype=np.int64)
    x += np.int64(first)
    u = x.view(np.uint64)
    z, t = np.empty(n, np.uint64), np.empty(n, np.uint64)
    np.multiply(u, integrity._C1, out=z)
    np.right_shift(z, integrity._S29, out=t)
    np.bitwise_xor(z, t, out=z)
    np.multiply(z, integrity._C2, out=z)
    np.right_shift(z, integrity._S32, out=t)
    np.bitwise_xor(z, t, out=z)
    return int(z.sum(dtype=np.uint64)) & integrity.MASK


def fresh_hits(table: HashedKeys, a: np.ndarray) -> np.ndarray:
    """The same hashed filter on the same table with fresh temporaries (the peer): a gather of
    its bytes, or of the bit table read byte by byte."""
    slot = a.view(np.uint64) * _FIB
    slot >>= table._shift
    if table._bytes is not None:
        candidates = np.flatnonzero(table._bytes[slot])
    else:
        assert table._table is not None
        byte = table._table.view(np.uint8)[slot >> np.uint64(3)]
        byte >>= (slot & np.uint64(7)).astype(np.uint8)
        byte &= 1
        candidates = np.flatnonzero(byte)
    return candidates[_isin_searched(a[candidates], table.keys)]  # type: ignore[no-any-return]


def best(fns: dict[str, Callable[[int], object]], repeat: int) -> dict[str, float]:
    out = {k: float("inf") for k in fns}
    for r in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(r)
            out[k] = min(out[k], time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()

    def kept(r: int) -> None:
        for i in range(args.batches):
            integrity.run_checksum((2 * r + 1) * 10**12 + i * BATCH, BATCH)

    def fresh(r: int) -> None:
        for i in range(args.batches):
            fresh_run_checksum((2 * r + 2) * 10**12 + i * BATCH, BATCH)

    assert integrity.run_checksum(10**15, BATCH) == fresh_run_checksum(10**15, BATCH)
    t = best({"kept": kept, "fresh": fresh}, args.repeat)
    print(f"| {args.batches} run checksums of {BATCH:,} keys | {t['kept'] * 1e3:.2f} ms | "
          f"fresh temporaries: {t['fresh'] * 1e3:.2f} ms | {t['fresh'] / t['kept']:.2f}x |")

    keys = np.random.default_rng(0).permutation(args.rows).astype(np.int64)
    # spread over a range no direct table covers (dense keys take one: no hashed filter to time)
    spread = keys * SPREAD
    dead = np.sort(spread[keys % 100 == 0])
    # (the NumPy filter, whose passes use the kept buffers; the kernels': benchmarks/spread_keys.py)
    table = HashedKeys.for_batch(dead, BATCH, slots_per_key=512, kernel=False)
    assert table._base is None, "a direct table: the hashed filter is not what is timed"
    batches = [spread[i : i + BATCH] for i in range(0, keys.size, BATCH)]
    assert all(np.array_equal(table.hits(b), fresh_hits(table, b)) for b in batches)
    t = best({"kept": lambda r: [table.hits(b) for b in batches],
              "fresh": lambda r: [fresh_hits(table, b) for b in batches]}, args.repeat)
    print(f"| hashed lookup of {args.rows:,} shuffled keys | {t['kept'] * 1e3:.2f} ms | "
          f"fresh temporaries: {t['fresh'] * 1e3:.2f} ms | {t['fresh'] / t['kept']:.2f}x |")
    seen_views(keys, args.repeat)


def seen_views(keys: np.ndarray, repeat: int) -> None:
    """``iter_keys()`` keeping views of the key columns it read against copying them."""
    import tempfile

    import pyarrow as pa

    from modyn_store import Store
    from modyn_store.core import _keyscan

    kept_add = _keyscan.SeenKeys.add

    def copying_add(self: _keyscan.SeenKeys, k: np.ndarray, *, ordered: bool | None = None,
                    own_buffer: bool = False) -> None:
        kept_add(self, k, ordered=ordered, own_buffer=False)

    with tempfile.TemporaryDirectory() as d:
        store = Store.open(d, create=True)
        store.append(pa.table({"key": keys, "ts": np.arange(keys.size)}), key="key")
        store.delete(where="key % 100 = 0")
        snap = Store.open(d).as_of()

        def stream(add: Any) -> np.ndarray:
            _keyscan.SeenKeys.add = add  # type: ignore[method-assign]
            try:
                return np.concatenate(list(snap.iter_keys()))
            finally:
                _keyscan.SeenKeys.add = kept_add  # type: ignore[method-assign]

        assert np.array_equal(stream(kept_add), stream(copying_add))
        t = best({"kept": lambda r: stream(kept_add), "fresh": lambda r: stream(copying_add)}, repeat)
    print(f"| iter_keys() of {keys.size:,} shuffled keys, 1% deleted | {t['kept'] * 1e3:.2f} ms | "
          f"keys copied into the record: {t['fresh'] * 1e3:.2f} ms | {t['fresh'] / t['kept']:.2f}x |")


if __name__ == "__main__":
    main()
