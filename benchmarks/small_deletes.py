"""Many small deletes, one version each (erasure requests as they arrive): what each delete
costs, and what the first read of a fresh process costs after them.

Each delete adds a fragment to the store's tombstone table, which every read of a version
reads whole where the per-user read cache has no entry for it (the delete writes the entry of
the version it committed; not after a delete that merged the table, nor on object storage or
with ``MODYN_STORE_READ_CACHE=off``), and which a delete reads where its process does not
keep the table's content (the first delete of a process, the one after a merge). The script
builds a store of ``--rows`` rows (10 appends), deletes one live key at a time ``--deletes`` times and reports the deletes' median and 90th
percentile and the tombstone table's fragments, beside Lance deleting the same keys one at a
time (``LanceDataset.delete("key = k")``, its deletion files, on a dataset of the same rows
written by 10 appends; the two sides take turns), and then, alternating in fresh processes
(``--reads`` each, the read cache off: what a process reads where no entry answers), the
store's ``Store.open`` plus first ``keys()`` of the latest version against Lance's open and
key scan of the samples table (no deletions: the raw scan), both timed by
``benchmarks/first_query.py``::

    python benchmarks/small_deletes.py --rows 1000000 --deletes 200 --reads 15

Compare trees by running it with the older tree first on ``PYTHONPATH`` (a ``git worktree``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from modyn_store import Store

_FIRST_QUERY = Path(__file__).resolve().parent / "first_query.py"


def _fresh(path: str, rows: int, *flags: str) -> float:
    """The first read's milliseconds in a fresh process: ``first_query.py`` on the store at
    ``path`` with the read cache off (``Store.open`` and ``keys()``; with ``--raw``, Lance's
    open and key scan of its samples)."""
    env = {**os.environ, "MODYN_STORE_READ_CACHE": "off"}
    done = subprocess.run([sys.executable, str(_FIRST_QUERY), path, str(rows), *flags], env=env,
                          capture_output=True, text=True, check=True)
    field = "raw_first_ms" if flags else "open_and_first_ms"
    return float(done.stdout.split(f"{field}=")[1].split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--deletes", type=int, default=200)
    p.add_argument("--reads", type=int, default=15, help="fresh processes per side (0: no fresh reads)")
    args = p.parse_args()
    import lance

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "store")
        store = Store.open(path, create=True)
        peer = str(Path(tmp) / "peer.lance")
        per = max(args.rows // 10, 1)
        for start in range(0, args.rows, per):
            n = min(per, args.rows - start)
            rows = pa.table({"ts": np.arange(start, start + n), "x": np.zeros(n, np.float32)})
            store.append(rows)
            lance.write_dataset(pa.table({"key": np.arange(start, start + n), **{c: rows[c] for c in rows.column_names}}),
                                peer, mode="append" if start else "create")
        lance_ds = lance.dataset(peer)
        victims = store.as_of().keys()[:: max(args.rows // max(args.deletes, 1), 1)][: args.deletes]
        tombstones = str(Path(path) / "tombstones.lance")
        times, counts, peer_times = [], [], []
        for k in victims:
            t = time.perf_counter()
            store.delete(keys=[int(k)])
            times.append(time.perf_counter() - t)
            counts.append(len(lance.dataset(tombstones).get_fragments()))  # (outside the timer)
            t = time.perf_counter()
            lance_ds.delete(f"key = {int(k)}")
            peer_times.append(time.perf_counter() - t)
        ms = sorted(1e3 * t for t in times)
        peer_ms = sorted(1e3 * t for t in peer_times)
        print(f"{len(ms)} deletes of one key of {args.rows:,} rows: median {statistics.median(ms):.2f} ms, "
              f"p90 {ms[int(0.9 * (len(ms) - 1))]:.2f} ms, max {ms[-1]:.2f} ms; tombstone fragments after "
              f"each: mean {statistics.mean(counts):.1f}, max {max(counts)}, at the end {counts[-1]}")
        print(f"Lance, the same deletes: median {statistics.median(peer_ms):.2f} ms, p90 "
              f"{peer_ms[int(0.9 * (len(peer_ms) - 1))]:.2f} ms, max {peer_ms[-1]:.2f} ms "
              f"({statistics.median(peer_ms) / statistics.median(ms):.2f}x the store's median time)")
        if not args.reads:
            return
        ours, raw = [], []
        for _ in range(args.reads):
            ours.append(_fresh(path, args.rows))
            raw.append(_fresh(path, args.rows, "--raw"))
        a, b = statistics.median(ours), statistics.median(raw)
        print(f"fresh process, read cache off: open + keys() {a:.1f} ms, Lance open + key scan {b:.1f} ms "
              f"({a / b:.2f}x the raw scan)")


if __name__ == "__main__":
    main()
