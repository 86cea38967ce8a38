"""``modyn-store demo``: a walk-through on a real drifting stream (Elec2, bundled).

Part one shows the store: the stream is ingested in event-time order as one version per
four weeks, then rows are deleted and erased, and the log, a diff and an as-of query are
printed. Part two runs the default Elec2 scenario end to end (triggers, selection,
training, evaluation) on the same kind of store and writes its report and plots.

Example
-------
>>> from modyn_store.app.cli.demo import store_walkthrough  # doctest: +SKIP
>>> store_walkthrough("/tmp/demo-store")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from modyn_store.app._fmt import Progress, format_table
from modyn_store.core.errors import NotAStoreError
from modyn_store.core.store import MARKER, Store

__all__ = ["register", "store_walkthrough"]


def _fresh(path: Path) -> None:
    """Remove a previous demo store at ``path``; refuse to touch anything else."""
    if not path.exists():
        return
    if not (path / MARKER).exists():
        raise NotAStoreError(f"{str(path)!r} exists and is not a store; choose another --store")
    shutil.rmtree(path)


def store_walkthrough(path: str | Path, *, weeks_per_version: int = 4) -> Store:
    """Build a store from the Elec2 stream and exercise versions, deletion and erasure."""
    from modyn_store.app.datasets import chunk_index, load
    from modyn_store.app.datasets.builtin import bundled_elec2

    path = Path(path)
    _fresh(path)
    table = load("elec2", bundled_elec2())
    store = Store.open(str(path), create=True)
    chunk = chunk_index(table.column("ts"), f"{7 * weeks_per_version}d")
    bounds = np.flatnonzero(np.diff(chunk)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [table.num_rows]])
    print(f"== 1. ingest Elec2 ({table.num_rows} half-hours) into {path}, one version per {weeks_per_version} weeks")
    bar = Progress(len(starts), "ingest")
    t0 = time.perf_counter()
    for i, (a, b) in enumerate(zip(starts, ends)):
        store.append(table.slice(int(a), int(b - a)), message=f"weeks {i * weeks_per_version}-{(i + 1) * weeks_per_version}")
        bar.update()
    bar.close()
    print(f"   {store.version} versions, {store.as_of().count()} rows in {time.perf_counter() - t0:.1f} s")
    mid = store.version // 2
    store.tag("midpoint", mid)

    print("\n== 2. soft-delete a week of bad readings, erase three samples (right to erasure)")
    bad = store.as_of().to_table(["key"], filter="key >= 5040 AND key < 5376").column("key").to_numpy()
    store.delete(keys=bad, message="sensor fault")
    report = store.erase(np.array([10, 11, 12]), reason="data subject request")
    print(f"   deleted {bad.size} rows; erased keys {report.keys.tolist()} (physically, from every file)")

    print("\n== 3. the version log (last 6)")
    recs = store.log()[-6:]
    print(format_table([{"version": r.version, "op": r.op, "+rows": r.inserted, "-deleted": r.deleted, "-erased": r.erased, "live": r.live, "message": r.message} for r in recs]))

    print("\n== 4. time travel")
    latest = store.version
    rows = []
    for ref in (1, "midpoint", latest - 2, latest):
        snap = store.as_of(ref)
        rows.append({"as_of": str(ref), "version": snap.version, "rows": snap.count(), "UP share": float(np.mean(snap.to_table(["label"]).column("label").to_numpy()))})
    print(format_table(rows))
    before = latest - 2  # the last version before the deletion and the erasure
    live_then = next(r.live for r in store.log() if r.version == before)
    print(f"   rows: as the version reads today; the {report.keys.size} erased keys are gone from every version, "
          f"so version {before} has {store.as_of(before).count()} where the log (counted at commit) says "
          f"{live_then}; UP share: the share of rows whose price went UP")
    d = store.diff("midpoint", latest)
    print(f"   diff midpoint -> {latest}: +{d.inserted.size} inserted, -{d.deleted.size} deleted")
    return store


def _run(args: argparse.Namespace) -> int:
    from modyn_store.app.cli.main import writable_folder

    writable_folder(args.store, "--store")
    if args.out and not args.store_only:
        writable_folder(args.out, "--out")
    root = Path(args.store)
    t0 = time.perf_counter()
    store_walkthrough(root / "walkthrough")
    if not args.store_only:
        from modyn_store.app.pipeline.demo_grid import run_scenario_demo

        run_scenario_demo(root / "scenario", Path(args.out) if args.out else root / "report", quick=args.quick)
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s; stores under {root}")
    return 0


def register(sub: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = sub.add_parser("demo", help="walk through the store and a real scenario (Elec2)")
    p.add_argument("--store", default="modyn-store-demo", help="folder for everything the demo writes: its "
                                                               "stores and (unless --out) the report")
    p.add_argument("--out", default=None, help="folder for the report and plots (default: STORE/report)")
    p.add_argument("--quick", action="store_true", help="a smaller grid")
    p.add_argument("--store-only", action="store_true", help="only the store walk-through")
    p.set_defaults(func=_run)
