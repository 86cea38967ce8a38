"""The first query of a fresh process: open a store with 2% of its rows deleted, time
``as_of().keys()`` twice, and say whether Numba was imported.

Run it once per tree to compare (see docs/PERFORMANCE.md, "The store's key-set searches")::

    python benchmarks/first_query.py /tmp/fq-2m 2000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from modyn_store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("rows", type=int)
    args = p.parse_args()
    if not Path(args.path).exists():
        s = Store.open(args.path, create=True)
        s.append(pa.table({"ts": np.arange(args.rows), "x": np.zeros(args.rows)}))
        s.delete(keys=np.arange(0, args.rows, 50))
        print("built; run again in a fresh process to measure")
        return
    s = Store.open(args.path)
    t0 = time.perf_counter()
    s.as_of().keys()
    t1 = time.perf_counter()
    s.as_of().keys()
    t2 = time.perf_counter()
    print(f"rows={args.rows} first_ms={1e3 * (t1 - t0):.0f} second_ms={1e3 * (t2 - t1):.0f} "
          f"numba_imported={'numba' in sys.modules}")


if __name__ == "__main__":
    main()
