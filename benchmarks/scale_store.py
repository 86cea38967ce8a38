"""Build a store of 10^8 narrow rows and query it in bounded memory.

    python benchmarks/scale_store.py --rows 100000000 --path /tmp/scale-store

Phase 1 appends the rows as 100 versions (key, ts, x: float32) and soft-deletes 1%.
Phase 2 runs, each in a fresh process so peak memory is its own:
``as_of(N).keys()`` (the result alone is 8 bytes a key), a streaming count through
``Snapshot.iter_keys()`` and a raw Lance scan of the key column, printing seconds and the
peak resident memory of each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa


def build(path: str, rows: int, versions: int) -> None:
    from modyn_store import Store

    store = Store.open(path, create=True)
    step = rows // versions
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for v in range(versions):
        start = v * step
        n = step if v < versions - 1 else rows - start
        store.append(
            pa.table(
                {
                    "key": np.arange(start, start + n, dtype=np.int64),
                    "ts": np.arange(start, start + n, dtype=np.int64),
                    "x": rng.random(n, dtype=np.float32),
                }
            )
        )
    t_append = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.delete(keys=np.arange(0, rows, 100, dtype=np.int64))
    t_delete = time.perf_counter() - t0
    print(json.dumps({"phase": "build", "rows": rows, "versions": store.version, "append_s": round(t_append, 1),
                      "append_rows_per_s": round(rows / t_append), "delete_1pct_s": round(t_delete, 1)}))


def query(path: str, what: str) -> None:
    import lance

    from modyn_store import Store

    store = Store.open(path)
    v = store.version - 10
    t0 = time.perf_counter()
    if what == "keys":
        n = store.as_of(v).keys().size
    elif what == "iter_keys":
        n = sum(k.size for k in store.as_of(v).iter_keys())
    else:
        n = lance.dataset(f"{path}/samples.lance").to_table(columns=["key"]).num_rows
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"phase": what, "version": v, "rows": n, "seconds": round(dt, 2),
                      "peak_rss_gb": round(peak / 2**30, 2), "result_gb": round(n * 8 / 2**30, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10**8)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--path", default="/tmp/scale-store")
    parser.add_argument("--phase", choices=["all", "build", "keys", "iter_keys", "raw"], default="all")
    args = parser.parse_args()
    if args.phase == "build":
        build(args.path, args.rows, args.versions)
    elif args.phase != "all":
        query(args.path, args.phase)
    else:
        import shutil

        shutil.rmtree(args.path, ignore_errors=True)
        for phase in ("build", "raw", "keys", "iter_keys"):
            subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--versions", str(args.versions),
                            "--path", args.path, "--phase", phase], check=True)


if __name__ == "__main__":
    main()
