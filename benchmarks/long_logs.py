"""Reads of a store with a long version log: the first ``keys()`` and ``count()`` of each new
version, as a consumer polling a store that commits small versions, against Lance's raw key
scan of the same samples table.

    python benchmarks/long_logs.py --versions 1000 5000 --reads 20

The store gets ``--versions`` appends of 10 consecutive keys each, and after every 7th append a
delete of one of its keys (so about 1.14 versions per append). Each round then appends 10 more
keys (a new version) and times, in this process, ``as_of().keys()`` (sorted live keys, checked
against the log's count and checksum) and ``as_of().count()`` of that version, then Lance's
``lance.dataset(samples).to_table(columns=["key"])`` (every stored key, unsorted, no version,
no deletions). Medians over the rounds; ``per version`` is the store's time above the raw scan
divided by the number of versions: what each version of the log costs a read. Then
``verify(deep=True)`` of the store, once (it checks the live count and key checksum of every
version against the log). Last, one fresh process's ``Store.open`` and first
``as_of().keys()``, then the median of three more, against three fresh processes' Lance open
and key scan (imports not counted on either side), all with a read cache of their own
(``MODYN_STORE_READ_CACHE``): the first store process finds nothing kept (it reads the log's
table, checks every record's digest and keeps the checked records), the three after it read
the records it kept.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import lance
import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.core._kept import ENV
from modyn_store.core.verify import verify


def _append(store: Store, first: int) -> np.ndarray:
    keys = np.arange(first, first + 10, dtype=np.int64)
    store.append(pa.table({"key": keys, "ts": keys}))
    return keys


def run(appends: int, reads: int, root: str) -> None:
    store = Store.open(f"{root}/s{appends}", create=True)
    t = time.perf_counter()
    for i in range(appends):
        keys = _append(store, 10 * i)
        if i % 7 == 6:
            store.delete(keys=keys[:1])
    built = time.perf_counter() - t
    uri = f"{root}/s{appends}/samples.lance"
    ours: list[float] = []
    counts: list[float] = []
    raw: list[float] = []
    for r in range(reads):
        _append(store, 10 * (appends + r))
        snap = store.as_of()
        t0 = time.perf_counter()
        n = snap.keys().size
        t1 = time.perf_counter()
        c = store.as_of().count()
        t2 = time.perf_counter()
        lance.dataset(uri).to_table(columns=["key"])
        t3 = time.perf_counter()
        assert n == c
        ours.append(t1 - t0)
        counts.append(t2 - t1)
        raw.append(t3 - t2)
    o, cm, w = (statistics.median(x) * 1e3 for x in (ours, counts, raw))
    v = store.version
    cache = f"{root}/read-cache{appends}"  # empty: the first fresh process finds nothing kept
    first = _fresh(f"{root}/s{appends}", "store", cache)
    fresh = statistics.median(_fresh(f"{root}/s{appends}", "store", cache) for _ in range(3))
    fresh_raw = statistics.median(_fresh(f"{root}/s{appends}", "raw", cache) for _ in range(3))
    t = time.perf_counter()
    report = verify(f"{root}/s{appends}", deep=True)
    deep = time.perf_counter() - t
    assert report.ok, report
    print(f"| {v:,} versions, {n:,} live keys (built in {built:.1f} s) | keys() {o:.2f} ms | count() {cm:.2f} ms "
          f"| raw key scan {w:.2f} ms | {o / w:.2f}x raw | per version {1e3 * max(o - w, 0.0) / v:.2f} us "
          f"| verify(deep=True) {deep:.2f} s | fresh process: open + keys() {first:.1f} ms with nothing kept, "
          f"{fresh:.1f} ms with the log kept by an earlier one, Lance open + key scan {fresh_raw:.1f} ms |")


#: per side: (the imports, the timed open and first read of the store at ``p``)
_FRESH = {
    "store": ("from modyn_store import Store", "Store.open(p).as_of().keys()"),
    "raw": ("import lance", "lance.dataset(p + '/samples.lance').to_table(columns=['key'])"),
}


def _fresh(path: str, side: str, cache: str) -> float:
    """Milliseconds of a fresh process's open and first read (imports not counted), with the
    read cache (``MODYN_STORE_READ_CACHE``) at ``cache``."""
    imports, read = _FRESH[side]
    code = f"import sys, time\n{imports}\np = sys.argv[1]\nt = time.perf_counter()\n{read}\nprint((time.perf_counter() - t) * 1e3)"
    env = {**os.environ, ENV: cache}
    out = subprocess.run([sys.executable, "-c", code, path], check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--versions", type=int, nargs="+", default=[1000, 5000], help="appends before the timed reads")
    p.add_argument("--reads", type=int, default=20, help="timed rounds (each a new version)")
    args = p.parse_args()
    print("| log | store | count | peer | ratio | store above the raw scan | deep verify | fresh process |")
    print("|---|---|---|---|---|---|---|---|")
    for appends in args.versions:
        with tempfile.TemporaryDirectory() as root:
            run(appends, args.reads, root)


if __name__ == "__main__":
    main()
