"""Peak memory and time of ``verify`` (quick and ``--deep``) on a store of many rows.

Usage: python benchmarks/verify_scale.py --rows N [--versions V] [--keys shuffled] [--store DIR]

Builds (or reuses, with ``--store`` naming a folder that already holds one) a store of N
rows in V appends of auto-assigned keys (``--keys shuffled``: the keys 0 .. N-1 in random
order, which verify must sort to find a repeated one) with 4 deletes of 0.1% of the rows
between them, then
runs ``verify`` quick and deep, each in a fresh interpreter, and prints one row per run: its
wall time and the peak resident memory of that interpreter (``VmHWM`` on Linux, else
``ru_maxrss``; it includes the interpreter and the imports: the ``baseline`` row is an
interpreter that only imports the store and attaches to it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from modyn_store import Store

_CHILD = """
import resource, sys, time
from modyn_store.core.verify import verify, _attach
uri, mode = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "baseline":
    _attach(uri, None)
    ok = True
else:
    report = verify(uri, deep=mode == "deep")
    ok = report.ok
    if not ok:
        print("\\n".join(map(str, report.findings)), file=sys.stderr)
secs = time.perf_counter() - t
try:  # this process's own peak (ru_maxrss keeps the parent's peak across fork and exec)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{secs:.3f} {peak} {int(ok)}")
"""


def build(path: str, rows: int, versions: int, shuffled: bool) -> None:
    """A store of ``rows`` rows in ``versions`` appends, 4 deletes of 0.1% of the rows between them."""
    store = Store.open(path, create=True)
    per = -(-rows // versions)
    done = 0
    keys = np.random.default_rng(0).permutation(rows) if shuffled else None
    deletes = {versions * (i + 1) // 5 for i in range(4)}
    for i in range(versions):
        n = min(per, rows - done)
        if n <= 0:
            break
        ts = np.arange(done, done + n, dtype=np.int64)
        cols = {"ts": ts, "x": (ts % 1000).astype(np.float32)}
        store.append(pa.table(cols if keys is None else {"key": keys[done : done + n], **cols}))
        done += n
        if i + 1 in deletes:
            step = 1000
            gone = np.arange(i, done, step, dtype=np.int64)[: max(1, done // step // 4)]
            store.delete(gone if keys is None else keys[gone])


def run(uri: str, mode: str) -> tuple[float, int, bool]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _CHILD, uri, mode], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"verify {mode} failed:\n{out.stderr[-3000:]}")
    secs, rss_kb, ok = out.stdout.split()[-3:]
    return float(secs), int(rss_kb), ok == "1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--keys", choices=("ascending", "shuffled"), default="ascending")
    ap.add_argument("--store", default=None, help="a folder to build the store in (or reuse)")
    args = ap.parse_args()
    path = args.store or os.path.join(tempfile.mkdtemp(prefix="verify-scale-"), "store")
    if not os.path.exists(os.path.join(path, "_meta")):
        t = time.perf_counter()
        build(path, args.rows, args.versions, args.keys == "shuffled")
        print(f"built {args.rows:,} rows ({args.keys} keys) in {args.versions} appends + 4 deletes "
              f"in {time.perf_counter() - t:.1f} s")
    store = Store.open(path)
    print(f"store {path}: version {store.version}, {store.as_of().count():,} live rows")
    print("| verify | wall | peak RSS | ok |")
    print("|---|---|---|---|")
    for mode in ("baseline", "quick", "deep"):
        secs, rss, ok = run(path, mode)
        print(f"| {mode} | {secs:.2f} s | {rss / 1024:,.0f} MiB | {ok} |")


if __name__ == "__main__":
    main()
