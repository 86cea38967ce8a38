"""Finding a stream's dead keys in batches of keys spread over the whole int64 range.

Keys in no order whose dead set spans too many values for a direct table go through a hashed
filter (:class:`engine._search.HashedKeys`): NumPy's (a table of a bit or a byte a slot, then a
binary search of the keys that pass) or the kernels' (:class:`engine._bloom.KeySet`: a blocked
Bloom filter and a hash set, one pass), which a stream takes where the process has loaded
Numba already (a pipeline, a policy, a training process). Each side finds the positions of the dead keys in
64K-key batches of ``--rows`` keys (``bench_store.py``'s ``spread`` layout), 1% of them dead;
best of ``--repeat``, sides interleaved. Peers a user would pick for the same answer: NumPy's
``np.isin`` of each batch (``kind`` chosen by NumPy), a ``searchsorted`` of each batch in
the dead keys and, where pandas is installed, a hash table of the dead keys built once
(``pd.Index(dead).get_indexer(batch) >= 0``; ``Series.isin`` would hash the dead keys again
for every batch), each up to :data:`PEERS_UP_TO` keys.

    python benchmarks/spread_keys.py --rows 1000000 10000000 100000000 --repeat 7
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import spread_keys  # noqa: E402
from engine._search import PREFILTER_BITS, HashedKeys  # noqa: E402

BATCH = 1 << 16
#: the peers are timed up to this many keys (np.isin sorts each batch with the dead keys: at
#: 10^8 keys, 10^6 dead, minutes a round)
PEERS_UP_TO = 10**7


def _searched(batch: np.ndarray, dead: np.ndarray) -> np.ndarray:
    at = np.searchsorted(dead, batch)
    at[at == dead.size] = 0
    return np.flatnonzero(dead[at] == batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    t0 = time.perf_counter()
    HashedKeys(np.array([1, 2**40], np.int64), kernel=True)  # imports Numba, loads (or compiles) the kernels
    print(f"load average {os.getloadavg()[0]:.1f}; Numba's import and the kernels' load, once a process: "
          f"{(time.perf_counter() - t0) * 1e3:.0f} ms")
    print("| keys (1% dead) | kernels (build) | NumPy filter (build) | np.isin | searchsorted | pandas hash table "
          "(build) | NumPy filter / kernels |")
    print("|---|---|---|---|---|---|---|")
    for rows in args.rows:
        keys = spread_keys(rows)
        dead = np.sort(keys[keys % 100 == 0])
        batches = [keys[i : i + BATCH] for i in range(0, rows, BATCH)]
        built: dict[str, float] = {}
        tables = {}
        for side, kernel in (("kernels", True), ("numpy", False)):
            t0 = time.perf_counter()
            tables[side] = HashedKeys(dead, max_bits=PREFILTER_BITS, kernel=kernel)
            built[side] = time.perf_counter() - t0
        want = [_searched(b, dead) for b in batches]
        for side, table in tables.items():  # untimed: every side gives the same positions
            assert all(np.array_equal(table.hits(b), w) for b, w in zip(batches, want)), side
        fns: dict[str, Callable[[], object]] = {
            "kernels": lambda: [tables["kernels"].hits(b) for b in batches],
            "numpy": lambda: [tables["numpy"].hits(b) for b in batches],
        }
        if rows <= PEERS_UP_TO:
            fns["isin"] = lambda: [np.flatnonzero(np.isin(b, dead)) for b in batches]
            fns["searchsorted"] = lambda: [_searched(b, dead) for b in batches]
            index = _pandas_index(dead, built)
            if index is not None:
                assert all(np.array_equal(np.flatnonzero(index.get_indexer(b) >= 0), w) for b, w in zip(batches, want))
                fns["pandas"] = lambda: [np.flatnonzero(index.get_indexer(b) >= 0) for b in batches]
        best = {k: float("inf") for k in fns}
        for r in range(args.repeat):
            for k in list(fns)[r % len(fns):] + list(fns)[: r % len(fns)]:
                t0 = time.perf_counter()
                fns[k]()
                best[k] = min(best[k], time.perf_counter() - t0)

        def ns(side: str) -> str:
            return f"{best[side] / rows * 1e9:.2f} ns/key" if side in best else "-"

        pandas = f"{ns('pandas')} ({built['pandas'] * 1e3:.1f} ms)" if "pandas" in best else "-"
        print(f"| {rows:,} | {ns('kernels')} ({built['kernels'] * 1e3:.1f} ms) | {ns('numpy')} "
              f"({built['numpy'] * 1e3:.1f} ms) | {ns('isin')} | {ns('searchsorted')} | {pandas} | "
              f"{best['numpy'] / best['kernels']:.2f}x |")


def _pandas_index(dead: np.ndarray, built: dict[str, float]) -> Any:
    """``pd.Index(dead)`` with its hash table built (timed into ``built``), or ``None``
    without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return None
    t0 = time.perf_counter()
    index = pd.Index(dead)
    index.get_indexer(dead[:1])  # builds the hash table (once: the Index keeps it)
    built["pandas"] = time.perf_counter() - t0
    return index


if __name__ == "__main__":
    main()
