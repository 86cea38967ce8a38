"""Point reads by key from a large store: ``Snapshot.take`` of a few keys, with and without the key index.

    flock /tmp/modyn-heavy.lock python benchmarks/take_keys.py --rows 100000000 --path /tmp/take-keys
    python benchmarks/take_keys.py --rows 10000000 --path /tmp/take-keys    # a quick run

Build: ``rows`` narrow rows (``key`` int64, ``ts`` int64, ``label`` int64 in 10 classes) in
``--versions`` appends of equal size, then 1% soft-deleted (``delete(where="key % 100 = 0")``,
one version). Then, each phase in a fresh process (``first``: the first call of the process;
``warm``: the median of three more calls with other keys), ``--keys`` random live keys:

* ``take_noindex``: ``store.as_of().take(keys)`` before any index exists (point lookups: one
  flat scan of ``key`` with a hash filter, plus the tombstones);
* ``take_few_noindex`` / ``lance_in_few`` / ``lance_in_few_late``: the same for ``--few`` random
  live keys (default 10), which lie in at most that many of the ``--versions`` fragments: the
  store reads only the fragments whose recorded key bounds hold one of them; the peers are
  Lance's ``to_table(filter="key IN (...)")`` with no index (a scan of every fragment, as yet),
  as a user writes it and with ``late_materialization=True`` (the other columns read for the
  matching rows only, as the store's point lookups read them);
* ``index``: ``store.index_keys()`` (the writer's maintenance call): seconds and bytes of the
  sorted key runs of the samples and the BTREE of the tombstones;
* ``take``: ``store.as_of().take(keys)`` with the index (rows in the order of ``keys``);
* ``lance_index`` / ``lance_in``: the strongest peer: Lance's own BTREE index on ``key`` of the
  samples table (``create_scalar_index``; build seconds and bytes) and
  ``to_table(filter="key IN (...)")`` through it. It does less: no liveness (soft-deleted rows
  come back), no version bound, rows in storage order;
* ``take_many``: ``take`` of ``--many`` keys (default 10^6), which the store answers by point
  lookups up to 1/32 of the stored rows and by the sorted key set above;
* ``old`` / ``old_many``: the path ``take`` took before the index (the full sorted key set with
  its log checks, then every key with its row id, argsorted), forced by setting the point-lookup
  thresholds to 0; one call in a fresh process;
* ``append`` / ``take_stale`` / ``reindex``: one more append of rows / 100 rows, ``take`` of keys
  drawn from all rows while that append is not in the index (its fragment scanned flat), and
  ``index_keys()`` folding it in (Lance's ``optimize_indices``).

Every call's time covers opening the store (or the Lance dataset) and the read, not the module
imports (both sides import ``lance`` first) nor the check that every row holds its key, which
runs after the timer on both sides. Each phase prints one JSON line. The store folder is removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES = ("take_noindex", "take_few_noindex", "lance_in_few", "lance_in_few_late", "index", "take", "take_many", "old",
          "old_many", "lance_index", "lance_in", "append", "take_stale", "reindex")
COLUMNS = ["key", "ts", "label"]


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 2)


def build(path: str, rows: int, versions: int) -> None:
    from modyn_store import Store

    store = Store.open(path, create=True)
    step = rows // versions
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for v in range(versions):
        start = v * step
        n = step if v < versions - 1 else rows - start
        keys = np.arange(start, start + n, dtype=np.int64)
        store.append(pa.table({"key": keys, "ts": keys, "label": rng.integers(0, 10, n)}))
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.delete(where="key % 100 = 0")
    t_delete = time.perf_counter() - t0
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    print(json.dumps({"phase": "build", "rows": rows, "versions": store.version, "append_s": round(t_append, 1),
                      "append_rows_per_s": round(rows / t_append), "delete_1pct_s": round(t_delete, 1),
                      "bytes": size, "peak_rss_gb": _peak_gb()}), flush=True)


def _live_keys(rows: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct random keys that are live (not ``key % 100 == 0``), in random order."""
    rng = np.random.default_rng(seed)
    got = np.unique(rng.integers(0, rows, int(n * 1.1) + 100))
    got = got[got % 100 != 0]
    return rng.permutation(got)[:n]


def query(path: str, rows: int, what: str, n: int) -> None:
    from modyn_store import Store
    from modyn_store.core import snapshot

    if what == "append":
        store = Store.open(path)
        extra = np.arange(rows, rows + rows // 100, dtype=np.int64)
        t0 = time.perf_counter()
        store.append(pa.table({"key": extra, "ts": extra, "label": extra % 10}))
        print(json.dumps({"phase": what, "rows": int(extra.size), "seconds": round(time.perf_counter() - t0, 2)}),
              flush=True)
        return
    if what == "take_stale":
        rows += rows // 100
    if what == "lance_index":
        import lance

        ds = lance.dataset(f"{path}/samples.lance")
        t0 = time.perf_counter()
        ds.create_scalar_index("key", "BTREE", name="bench_key_btree")
        dt = time.perf_counter() - t0
        size = next(d.total_size_bytes for d in lance.dataset(f"{path}/samples.lance").describe_indices()
                    if d.name == "bench_key_btree")
        print(json.dumps({"phase": what, "seconds": round(dt, 2), "bytes": size, "peak_rss_gb": _peak_gb()}),
              flush=True)
        return
    if what in ("index", "reindex"):
        store = Store.open(path)
        t0 = time.perf_counter()
        report = store.index_keys()
        dt = time.perf_counter() - t0
        print(json.dumps({"phase": what, "seconds": round(dt, 2),
                          "tables": {k: vars(v) for k, v in report.tables.items()},
                          "peak_rss_gb": _peak_gb()}), flush=True)
        return
    if what.startswith("old"):
        snapshot.POINT_MIN_KEYS, snapshot.POINT_SHARE = 0, 0.0
    calls = 1 if what.startswith("old") else 4
    times = []
    import lance  # imported before any timing, on both sides (the store imports it too)

    for i in range(calls):
        want = _live_keys(rows, n, seed=100 + i)
        t0 = time.perf_counter()
        if what.startswith("lance_in"):
            ds = lance.dataset(f"{path}/samples.lance")
            t = ds.to_table(columns=COLUMNS, filter=f"key IN ({','.join(map(str, want.tolist()))})",
                            late_materialization=True if what.endswith("late") else None)
        else:
            t = Store.open(path).as_of().take(want, COLUMNS)
        times.append(time.perf_counter() - t0)
        # the checks are not timed: every row holds its key (and its ts); Lance's in storage order
        got = t.column("key").to_numpy()
        if what.startswith("lance_in"):
            ok = t.num_rows == want.size and np.array_equal(np.sort(got), np.sort(want))
        else:
            ok = np.array_equal(got, want)
        ok = ok and np.array_equal(t.column("ts").to_numpy(), got)
        if not ok:
            raise SystemExit(f"{what}: wrong rows returned")
    out = {"phase": what, "keys": n, "first_s": round(times[0], 3)}
    if len(times) > 1:
        out["warm_s"] = round(float(np.median(times[1:])), 3)
    out["peak_rss_gb"] = _peak_gb()
    print(json.dumps(out), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10**4)
    parser.add_argument("--many", type=int, default=10**6)
    parser.add_argument("--few", type=int, default=10)
    parser.add_argument("--path", default="/tmp/take-keys")
    parser.add_argument("--phases", default="build," + ",".join(PHASES),
                        help="comma-separated: build and/or " + ", ".join(PHASES))
    parser.add_argument("--keep", action="store_true", help="keep the store folder afterwards")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "build":
        build(args.path, args.rows, args.versions)
        return
    if args.one:
        query(args.path, args.rows, args.one,
              args.many if args.one.endswith("many") else args.few if "few" in args.one else args.keys)
        return
    phases = [p for p in args.phases.split(",") if p]
    if "build" in phases:
        shutil.rmtree(args.path, ignore_errors=True)
    try:
        for phase in phases:
            subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--versions", str(args.versions),
                            "--keys", str(args.keys), "--many", str(args.many), "--few", str(args.few),
                            "--path", args.path,
                            "--one", phase], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.path, ignore_errors=True)


if __name__ == "__main__":
    main()
