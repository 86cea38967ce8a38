"""Where an append's time goes: the 11th append of fresh 10-version stores, each step of the
store's write path timed on its own (``time.perf_counter`` around the function), medians over
the rounds, beside Lance's write of the same rows inside the append.

    python benchmarks/append_phases.py --rows 100000 --rounds 25

The steps are wrapped by replacing module attributes in this process only; a step called more
than once in an append counts its total. ``lance.write_dataset`` is the store's call into
Lance (the rows with ``_version``); ``store's own work`` is the append's time minus it.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import build_store, make_batches  # noqa: E402

from modyn_store.core import _ingest, _log, _tables, _txn, _writes, integrity  # noqa: E402
from modyn_store.core import store as store_module  # noqa: E402

#: (owner, attribute, label) of every step timed
STEPS: list[tuple[Any, str, str]] = [
    (_tables.lance, "write_dataset", "lance.write_dataset (the rows with _version)"),
    (integrity, "key_checksum", "key checksum"),
    (_log.VersionLog, "commit", "the record's exclusive create (the commit)"),
    (_ingest.KeyTracker, "add", "key check (one pass)"),
    (store_module.Store, "_read_records", "log read"),
    (_tables.Tables, "save_fragment_versions", "fragment-range line"),
    (_ingest, "prepare", "input preparation"),
    (_txn, "_write_json", "intent and head writes"),
    (_txn, "_check_no_orphans", "orphan check"),
    (_txn, "recover", "recovery check (the intent read)"),
    (_txn, "check_head", "head check"),
    (_txn, "_finish_intent", "intent marked done"),
    (_tables.Tables, "compact_if_fragmented", "merge check"),
    (_writes, "_check_new_keys", "new-key check"),
]


def _timed(times: dict[str, float], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - t

    return wrapper


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=25)
    args = p.parse_args()
    times: dict[str, float] = {}
    for owner, name, label in STEPS:
        setattr(owner, name, _timed(times, label, getattr(owner, name)))
    base = make_batches(args.rows, seed=1)
    table = pa.concat_tables(make_batches(args.rows))
    keys = pa.array(table.column("key").to_numpy() + 10**12)
    rows = table.set_column(0, "key", keys).set_column(1, "ts", keys)
    folder = tempfile.mkdtemp(prefix="append-phases-")
    per_step: dict[str, list[float]] = {label: [] for _, _, label in STEPS}
    totals: list[float] = []
    try:
        for r in range(args.rounds):
            store = build_store(f"{folder}/s{r}", base, versions=10, delete=False)
            times.clear()
            t = time.perf_counter()
            store.append(rows)
            totals.append(time.perf_counter() - t)
            for label in per_step:
                per_step[label].append(times.get(label, 0.0))
            shutil.rmtree(f"{folder}/s{r}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    med = {label: 1e3 * statistics.median(v) for label, v in per_step.items()}
    total = 1e3 * statistics.median(totals)
    own = 1e3 * statistics.median(t - w for t, w in zip(totals, per_step[STEPS[0][2]]))
    print(f"| step of one append of {args.rows:,} rows to a 10-version store | median ms |")
    print("|---|---|")
    print(f"| the append | {total:.3f} |")
    print(f"| store's own work (the append minus lance.write_dataset) | {own:.3f} |")
    for label, ms in sorted(med.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {ms:.3f} |")
    timed = sum(ms for label, ms in med.items() if label != STEPS[0][2])
    print(f"| the rest of the store's work (batches, the record object, the lock, Python) | {own - timed:.3f} |")


if __name__ == "__main__":
    main()
