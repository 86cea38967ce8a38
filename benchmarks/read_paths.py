"""The loader's two read paths against each other: Lance's masked scan and takes by row id.

For each share of the table selected at random, ``training.materialize.materialize`` reads the
selected rows' ``ts`` and ``x`` columns into memory, once with ``strategy="scan"`` (each
fragment scanned with a row-id mask, the first rows taken meanwhile) and once with
``strategy="take"`` (chunks taken by stable row id in parallel threads), both with the same
layout made beforehand (the key scan that locates the rows is not timed), the two interleaved
``--repeat`` times (taking turns at going first; the two results are checked equal). Prints
the medians and ``scan / take`` (> 1: takes are faster), which is what ``strategy="auto"``
decides on (docs/PERFORMANCE.md, "Training data path").

Rows are ``key`` int64, ``ts`` int64 and ``x``: ``--dim`` float32 (272 bytes at the default
64). ``--s3`` puts the store on a local S3 endpoint (moto's server) instead of a local folder.

Run::

    python benchmarks/read_paths.py --rows 2000000 --dim 64 --shares 0.05 0.25 0.5 1.0
    python benchmarks/read_paths.py --rows 500000 --shares 0.05 0.25 0.5 --s3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_training import make_store  # noqa: E402
from training.materialize import materialize, plan  # noqa: E402


def compare(store: object, shares: list[float], repeat: int) -> list[tuple[float, float, float]]:
    """``(share, scan seconds, take seconds)``: medians of ``repeat`` interleaved reads."""
    snap = store.as_of(None)  # type: ignore[attr-defined]
    rows, keys = snap.row_reader(), snap.keys()
    out = []
    for share in shares:
        chosen = np.sort(np.random.default_rng(0).choice(keys, max(1, int(keys.size * share)), replace=False))
        located = snap.locate(chosen)
        layouts = {s: plan(rows, chosen, strategy=s, located=located) for s in ("scan", "take")}  # type: ignore[arg-type]
        times: dict[str, list[float]] = {s: [] for s in layouts}
        got = {}
        order = list(layouts)
        for r in range(repeat):
            for s in order[r % 2:] + order[:r % 2]:  # the two paths take turns at going first
                t0 = time.perf_counter()
                got[s] = materialize(rows, chosen, ["ts", "x"], strategy=s, layout=layouts[s])  # type: ignore[arg-type]
                times[s].append(time.perf_counter() - t0)
        # both paths read the same rows into the same layout
        assert np.array_equal(got["scan"].keys, got["take"].keys)
        assert all(np.array_equal(got["scan"].fixed[c], got["take"].fixed[c]) for c in ("ts", "x"))
        out.append((share, float(np.median(times["scan"])), float(np.median(times["take"]))))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--dim", type=int, default=64, help="float32 values per row in x")
    p.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.25, 0.5, 1.0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--s3", action="store_true", help="the store on a local S3 endpoint (moto)")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-read-paths-")
    try:
        if a.s3:
            from scale_out import local_s3

            where, ctx = "S3 (local moto endpoint)", local_s3()
        else:
            where, ctx = "local folder", nullcontext(None)
        with ctx as opts:
            uri = f"s3://bench/{uuid.uuid4().hex}" if opts is not None else os.path.join(tmp, "store")
            store = make_store(uri, a.rows, chunk=1 << 18 if opts is not None else 1 << 20, dim=a.dim,
                               storage_options=opts)
            print(f"# {a.rows:,} rows of {16 + 4 * a.dim} bytes, {where}; medians of {a.repeat} interleaved reads")
            for share, scan, take in compare(store, a.shares, a.repeat):
                print(f"share {share:.2f}: masked scan {scan * 1e3:.0f} ms, takes {take * 1e3:.0f} ms, "
                      f"scan / take {scan / take:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
