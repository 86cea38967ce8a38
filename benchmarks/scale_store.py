"""Build a store of 10^8 .. 10^9 narrow rows and query it in bounded memory.

    python benchmarks/scale_store.py --rows 1000000000 --path /tmp/scale-store
    python benchmarks/scale_store.py --rows 100000000 --phases raw,keys_old,keys_latest

Build: ``rows`` rows (``key`` int64, ``ts`` int64, ``label`` int64 in 10 classes, ``loss``
float32: a per-sample score stored with the samples) appended as ``--versions`` versions of
equal size, then 1% soft-deleted (``delete(where="key % 100 = 0")``, one version). Every query
then runs in a fresh process so its peak resident memory (``ru_maxrss``) is its own:

* ``raw``: Lance's own streaming scan of the ``key`` column of the samples table (every row
  ever written, no version filter, no deletions applied; 2^20-row batches; the dataset opened
  before the timer, as the store is for the other phases): the baseline of the key queries;
* ``raw_small``: the same scan in 2^16-row batches, the batch size the store's key streams read
  in (Lance's scan of one column is faster in batches that stay in the CPU cache);
* ``keys_old`` / ``keys_latest``: ``Snapshot.iter_keys()`` as of ``latest - 10`` (before the
  delete: only the fragments that straddle the version are filtered) and as of the latest
  version (the 1% deletions applied), counted batch by batch;
* ``keys_array``: ``Snapshot.keys()``, the sorted array (8 bytes a key: 8 GB at 10^9 rows, so
  it is skipped above 3 * 10^8 rows);
* ``scores``: ``Snapshot.to_batches(["key", "label", "loss"])`` at the latest version, streamed;
* ``score_table_old`` / ``score_table``: the store's score table ``loss`` (written after the
  delete by ``store.scores.write`` in ``--score-writes`` writes of disjoint key ranges covering
  every live key, then one more write rescoring every 1000th key, so reads merge overlapping
  writes) streamed with ``store.scores.batches`` as of the version after half of the writes and
  as of the latest version;
* ``top_k`` / ``weighted``: the latest score table stream fed to the engine's streaming
  ``TopK(k)`` and ``WeightedSampler(k)`` (weights: the scores), ``k`` = live rows / 1000 (10^6
  at 10^9 rows);
* ``quota``: the samples stream (labels with the per-sample ``loss`` column) fed to
  ``BalancedSelector(live rows // 100, rule="top")``.

Each phase prints one JSON line: seconds, ns per row, peak RSS and the result size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES = ("raw", "raw_small", "keys_old", "keys_latest", "keys_array", "scores", "score_table_old", "score_table", "top_k",
          "weighted", "quota")
BATCH = 1 << 20


def build(path: str, rows: int, versions: int, score_writes: int) -> None:
    from modyn_store import Store

    store = Store.open(path, create=True)
    step = rows // versions
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for v in range(versions):
        start = v * step
        n = step if v < versions - 1 else rows - start
        keys = np.arange(start, start + n, dtype=np.int64)
        store.append(pa.table({
            "key": keys,
            "ts": keys,
            "label": rng.integers(0, 10, n),
            "loss": rng.random(n, dtype=np.float32),
        }))
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.delete(where="key % 100 = 0")
    t_delete = time.perf_counter() - t0
    t0 = time.perf_counter()
    step = -(-rows // score_writes)
    for start in range(0, rows, step):
        keys = np.arange(start, min(rows, start + step), dtype=np.int64)
        keys = keys[keys % 100 != 0]  # the live keys of the range
        store.scores.write("loss", keys, np.random.default_rng(start).random(keys.size))
        del keys
        if start // step == (score_writes - 1) // 2:
            store.tag("scores-half")
    keys = np.arange(1, rows, 1000, dtype=np.int64)
    store.scores.write("loss", keys, np.random.default_rng(1).random(keys.size))
    t_scores = time.perf_counter() - t0
    print(json.dumps({"phase": "build", "rows": rows, "versions": store.version, "append_s": round(t_append, 1),
                      "append_rows_per_s": round(rows / t_append), "delete_1pct_s": round(t_delete, 1),
                      "score_writes_s": round(t_scores, 1), "peak_rss_gb": _peak_gb()}), flush=True)


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30, 2)


def _stream(snap: object) -> object:
    return snap.to_batches(["key", "label", "loss"], batch_size=BATCH)  # type: ignore[attr-defined]


def query(path: str, what: str) -> None:
    import lance

    import engine
    from modyn_store import Store

    store = Store.open(path)
    latest = store.version
    rows_total = store.log()[-1].live
    version = latest
    if what == "keys_old":
        version = [r.version for r in store.log() if r.op == "append"][-10]
    elif what == "score_table_old":
        version = store.tags()["scores-half"]
    snap = store.as_of(version)
    # compile (or load) the kernels on a tiny input first, so no JIT is timed
    # (same argument types as below: a new type combination would compile inside the timing,
    # and sizes past the kernels' parallel thresholds)
    m = 1 << 21
    wk, wl = np.arange(m, dtype=np.int64), np.random.default_rng(9).random(m, dtype=np.float32)
    wk.setflags(write=False)  # Arrow's arrays are read-only: a distinct Numba type
    wl.setflags(write=False)
    warm_top, warm_w = engine.TopK(1000), engine.WeightedSampler(1000, seed=0)
    warm_q = engine.BalancedSelector(1000, rule="top")
    wd = wl.astype(np.float64)  # the score table holds float64
    wd.setflags(write=False)
    warm_top64, warm_w64 = engine.TopK(1000), engine.WeightedSampler(1000, seed=0)
    for shift in (0, m):
        keys = wk + shift
        keys.setflags(write=False)
        warm_top.update(wl, keys=keys)
        warm_w.update(wl, keys=keys)
        warm_top64.update(wd, keys=keys)
        warm_w64.update(wd, keys=keys)
        groups = wk % 10
        groups.setflags(write=False)
        warm_q.update(groups, keys=keys, scores=wl)
    # the peer's dataset is opened before the timer, as the store and its snapshot are above
    ds = lance.dataset(f"{path}/samples.lance") if what in ("raw", "raw_small") else None
    t0 = time.perf_counter()
    rows = 0
    result = 0
    if ds is not None:
        for b in ds.scanner(columns=["key"], batch_size=BATCH if what == "raw" else 1 << 16).to_batches():
            rows += b.num_rows
        result = rows
    elif what in ("keys_old", "keys_latest"):
        for k in snap.iter_keys(batch_size=BATCH):
            rows += k.size
        result = rows
    elif what == "keys_array":
        rows = result = int(snap.keys().size)
    elif what == "scores":
        for b in _stream(snap):  # type: ignore[attr-defined]
            rows += b.num_rows
        result = rows
    elif what in ("score_table_old", "score_table"):
        for b in store.scores.batches(version, "loss", batch_size=BATCH):
            rows += b.num_rows
        result = rows
    elif what in ("top_k", "weighted"):
        k_sel = max(1000, rows_total // 1000)  # 10^6 at 10^9 rows
        algo = engine.TopK(k_sel) if what == "top_k" else engine.WeightedSampler(k_sel, seed=1)
        for b in store.scores.batches(version, "loss", batch_size=BATCH):
            algo.update(b.column(1).to_numpy(), keys=b.column(0).to_numpy())
            rows += b.num_rows
        done = algo.result()
        picked: Any = done[0] if what == "top_k" else done
        result = int(picked.size)
    else:
        quota = engine.BalancedSelector(rows_total // 100, rule="top")
        for b in _stream(snap):  # type: ignore[attr-defined]
            keys = b.column(0).to_numpy()
            quota.update(b.column(1).to_numpy(), keys=keys, scores=b.column(2).to_numpy())
            rows += keys.size
        result = int(quota.result().size)
    dt = time.perf_counter() - t0
    print(json.dumps({"phase": what, "version": version, "rows": rows, "result": result, "seconds": round(dt, 2),
                      "ns_per_row": round(dt / max(rows, 1) * 1e9, 2), "peak_rss_gb": _peak_gb()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--path", default="/tmp/scale-store")
    parser.add_argument("--phases", default="build," + ",".join(PHASES),
                        help="comma-separated: build and/or " + ", ".join(PHASES))
    parser.add_argument("--score-writes", type=int, default=20,
                        help="score writes of disjoint key ranges (plus one overlapping rescoring)")
    parser.add_argument("--keep", action="store_true", help="keep the store folder afterwards")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one == "build":
        build(args.path, args.rows, args.versions, args.score_writes)
        return
    if args.one:
        query(args.path, args.one)
        return
    import shutil

    phases = [p for p in args.phases.split(",") if p]
    if "build" in phases:
        shutil.rmtree(args.path, ignore_errors=True)
    if args.rows > 3 * 10**8 and "keys_array" in phases:
        phases.remove("keys_array")
        print(json.dumps({"phase": "keys_array", "skipped": "the sorted array alone is 8 bytes a key"}), flush=True)
    try:
        for phase in phases:
            subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--versions", str(args.versions),
                            "--score-writes", str(args.score_writes), "--path", args.path, "--one", phase], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.path, ignore_errors=True)


if __name__ == "__main__":
    main()
