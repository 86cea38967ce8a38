"""Memory and time of building the key index, keys in append order and in random order.

Two stores of ``rows`` narrow rows (``key``, ``ts``, ``x``) in 10 appends, one with keys in
append order (``0 .. rows-1``), one with a random permutation of them. For each, a fresh
process removes any key index, then times ``Store.index_keys()`` and reports the growth of its
peak RSS (``VmHWM``, Linux) during the build. Only the public API is used, so the same script
measures an older checkout (``PYTHONPATH=<checkout>``).

Run (see docs/PERFORMANCE.md, "Point reads by key")::

    python benchmarks/index_build.py --rows 10000000 --path /tmp/index-build
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa

_CHILD = r"""
import glob, os, shutil, sys, time
from modyn_store import Store

def peak_kb():  # this process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

path = sys.argv[1]
store = Store.open(path)
for p in glob.glob(os.path.join(path, "_meta", "keyindex*")):
    shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
before = peak_kb()
t = time.perf_counter()
report = store.index_keys()
took = time.perf_counter() - t
grew = peak_kb() - before
import modyn_store
print(f"{took:.2f} {grew // 1024} {report.tables['samples'].indexed_rows} {os.path.dirname(os.path.dirname(modyn_store.__file__))}")
"""


def _build(path: str, keys: np.ndarray) -> None:
    from modyn_store import Store

    store = Store.open(path, create=True)
    for part in np.array_split(keys, 10):
        store.append(pa.table({"key": part, "ts": np.arange(part.size), "x": np.ones(part.size)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--path", default="/tmp/index-build")
    p.add_argument("--keep", action="store_true", help="keep the stores for another run")
    args = p.parse_args()
    orders = {"in append order": np.arange(args.rows, dtype=np.int64),
              "random order": np.random.default_rng(0).permutation(args.rows).astype(np.int64)}
    try:
        for name, keys in orders.items():
            path = os.path.join(args.path, name.replace(" ", "-"))
            if not os.path.exists(path):
                _build(path, keys)
            # run from the store's folder: ``python -c`` puts the working directory first on the
            # path, which must not shadow the checkout named by PYTHONPATH
            out = subprocess.run([sys.executable, "-c", _CHILD, os.path.abspath(path)], check=True,
                                 capture_output=True, text=True, env=os.environ, cwd=path).stdout.split()
            print(f"keys {name}: build {float(out[0]):.2f} s, peak RSS grew {int(out[1])} MB, {int(out[2]):,} rows "
                  f"(code from {out[3]})")
    finally:
        if not args.keep:
            shutil.rmtree(args.path, ignore_errors=True)


if __name__ == "__main__":
    main()
