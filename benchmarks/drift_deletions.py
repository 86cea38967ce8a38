"""A drift trigger fed versions that delete rows: the cost of keeping its windows to the live rows.

Each version inserts ``--rows`` rows into a ``DataDrift`` trigger whose window holds ``--window``
rows of ``--columns`` feature columns (no test is run: ``every`` is beyond the run). The same
versions are timed without deletions, with one deleted key outside the windows (the common case:
old rows), and with one deleted key inside the current window (a row is taken out).

    python benchmarks/drift_deletions.py --window 200000 --columns 32 --rows 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from policies import DataDrift, TriggerInput


def _trigger(window: int, columns: list[str], rng: np.random.Generator) -> DataDrift:
    t = DataDrift(columns=columns, metric="mean_shift", decision="threshold", threshold=1e9, window=window,
                  every=10**12)
    k = np.arange(window)
    t.fire(TriggerInput(version=1, keys=k, ts=k, features={c: rng.normal(size=window) for c in columns}))
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=200_000)
    ap.add_argument("--columns", type=int, default=32)
    ap.add_argument("--rows", type=int, default=1000, help="rows a version inserts")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    columns = [f"c{i}" for i in range(args.columns)]
    print(f"| versions of {args.rows:,} rows, window {args.window:,} rows x {args.columns} columns | ms a version |")
    print("|---|---|")
    for label, deleted in (("no deletion", lambda v, top: []),
                           ("one key deleted outside the windows", lambda v, top: [-1 - v]),
                           ("one key deleted inside the current window", lambda v, top: [top - 1])):
        t = _trigger(args.window, columns, rng)
        state = {"v": 1, "top": args.window}

        def step() -> None:
            state["v"] += 1
            lo = state["top"]
            k = np.arange(lo, lo + args.rows)
            t.fire(TriggerInput(version=state["v"], keys=k, ts=k,
                                features={c: rng.normal(size=args.rows) for c in columns},
                                deleted=np.asarray(deleted(state["v"], lo), np.int64)))
            state["top"] = lo + args.rows

        best = min(timeit.repeat(step, number=5, repeat=args.repeat)) / 5
        print(f"| {label} | {best * 1000:.2f} |")


if __name__ == "__main__":
    main()
