"""``modyn-store append`` (streamed, mapped) vs reading a Parquet file whole and ``Store.append``-ing it.

Both sides end with the same rows in a store: key, ts, a string label stored as class codes, and
the feature columns. The baseline is what a user writes by hand: ``pq.read_table`` then map the
labels with ``pyarrow.compute`` and pack the features with NumPy, then one ``Store.append``. Each
side runs in its own process so peak memory (max RSS) is its own.

Usage::

    python benchmarks/append_files.py --rows 2000000 --width 8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make(path: Path, rows: int, width: int) -> None:
    rng = np.random.default_rng(0)
    cols = {"id": np.arange(rows, dtype=np.int64), "t": np.arange(rows, dtype=np.int64),
            "y": pa.array(rng.choice(["a", "b", "c", "d"], rows))}
    for i in range(width):
        cols[f"x{i}"] = rng.standard_normal(rows).astype(np.float32)
    pq.write_table(pa.table(cols), path, row_group_size=131_072)


def run_side(side: str, path: str, store: str, width: int) -> dict[str, float]:
    from modyn_store import Store

    t0 = time.perf_counter()
    if side == "append_stream":
        from modyn_store.app.datasets.columns import ColumnMap
        from modyn_store.app.datasets.user import append_stream

        s = Store.open(store, create=True)
        append_stream(s, path, ColumnMap(ts="t", label="y", key="id", features=tuple(f"x{i}" for i in range(width))))
    else:
        import pyarrow.compute as pc

        t = pq.read_table(path)
        labels = pc.unique(t.column("y")).to_pylist()
        code = pc.index_in(t.column("y"), value_set=pa.array(sorted(labels)))
        x = np.stack([t.column(f"x{i}").to_numpy() for i in range(width)], 1).astype(np.float32)
        feats = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width)
        out = pa.table({"key": t.column("id"), "ts": t.column("t"), "label": code.cast(pa.int64()), "features": feats})
        Store.open(store, create=True).append(out)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--side")
    ap.add_argument("--path")
    ap.add_argument("--store")
    a = ap.parse_args()
    if a.side:
        print(json.dumps(run_side(a.side, a.path, a.store, a.width)))
        return
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "in.parquet"
        make(f, a.rows, a.width)
        res = {}
        for side in ("read_whole_then_append", "append_stream"):
            out = subprocess.run([sys.executable, __file__, "--side", side, "--path", str(f), "--store",
                                  str(Path(d) / side), "--width", str(a.width)], capture_output=True, text=True,
                                 check=True)
            res[side] = json.loads(out.stdout.strip().splitlines()[-1])
        base, ours = res["read_whole_then_append"], res["append_stream"]
        print(json.dumps(res, indent=1))
        print(f"rows/s: streamed {a.rows / ours['seconds']:,.0f}, whole {a.rows / base['seconds']:,.0f}; "
              f"time ratio streamed/whole {ours['seconds'] / base['seconds']:.2f}; "
              f"peak RSS ratio {ours['max_rss_mb'] / base['max_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
