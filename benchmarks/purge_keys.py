"""Erase and vacuum of many keys: what removing their rows' bytes from every table costs.

    python benchmarks/purge_keys.py --rows 1000000 --keys 10000 100000 --baseline REV
    python benchmarks/purge_keys.py --rows 10000000 --keys 100000 1000000

Build, once per side and key count (a fresh store each): ``--rows`` rows (``key``, ``ts``,
``label`` int64, ``x`` float32) in 10 appends of equal size, a score ``loss`` for every key (one
version), and a recorded training whose train set is every key (its ``selections`` rows: one per
key). Then, timed:

* ``erase``: ``store.erase(keys, reason=...)`` of ``--keys`` keys spread over the store (every
  ``rows / keys``-th key): one version that logs them as erased, names the training that used them,
  deletes their rows from the samples and the score table, rewrites the files that held them and
  drops the old ones;
* ``delete``: ``store.delete(keys=...)`` of as many other keys (a soft delete: one version
  that tombstones them);
* ``vacuum``: then ``store.vacuum(keep_versions=1, dry_run=False)``: the same purge as the
  erase's, of the soft-deleted rows.

The peer, ``lance``: the same rows as two plain Lance datasets (the samples in the same 10
appends, the score as one write), and what a Lance user runs to remove the same keys' bytes: a
delete of each dataset by the keys (a merge insert, Lance's fastest for many keys), a compaction
that rewrites every fragment with a deleted row (``materialize_deletions_threshold=0``; the default
leaves fragments with under 10% deleted as they are) and a cleanup of every old version. It keeps
no log, no lineage and no checksums. The peer times its erase only (a vacuum is the same work).

``--baseline REV`` also times the store of git revision ``REV``, imported beside this one; the
sides run one after the other in one process, each on its own store. After each side the script
checks, outside the timers, that no purged key is left in any Lance version of the samples or of
the score table. One JSON line per side and key count.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _store_peers import load_baseline  # noqa: E402

from modyn_store import Store  # noqa: E402


def build(store_cls: Any, path: str, rows: int) -> Any:
    """A store of ``rows`` rows in 10 appends, a score of every key and a training of every key."""
    store = store_cls.open(path, create=True)
    step = -(-rows // 10)
    rng = np.random.default_rng(0)
    for lo in range(0, rows, step):
        n = min(step, rows - lo)
        store.append(pa.table({"ts": np.arange(lo, lo + n, dtype=np.int64), "label": rng.integers(0, 10, n),
                               "x": rng.random(n, dtype=np.float32)}))
    keys = store.as_of().keys()
    store.scores.write("loss", keys, rng.random(keys.size))
    core = store_cls.__module__.rsplit(".", 1)[0]  # (this store's package, or the baseline's)
    train_set = importlib.import_module(f"{core}.trainset").TrainSet.uniform(keys, version=store.version)
    importlib.import_module(f"{core}.trainings").Catalog(store).record_training("all", train_set)
    return store


def left(path: str, keys: np.ndarray) -> int:
    """Rows of ``keys`` still in any version's files of the samples or the score table."""
    found = 0
    for table in ("samples", "scores/loss"):
        ds = lance.dataset(f"{path}/{table}.lance") if Path(f"{path}/{table}.lance").exists() else None
        if ds is None:
            continue
        for v in ds.versions():
            got = lance.dataset(f"{path}/{table}.lance", version=v["version"]).to_table(columns=["key"])
            found += int(np.isin(got.column("key").to_numpy(), keys).sum())
    return found


def lance_peer(root: str, rows: int, n_keys: int) -> None:
    """The same rows as plain Lance datasets, and their keys' removal as a Lance user runs it."""
    from datetime import timedelta

    paths = {t: f"{root}/lance-{n_keys}/{t}.lance" for t in ("samples", "loss")}
    step = -(-rows // 10)
    rng = np.random.default_rng(0)
    for lo in range(0, rows, step):
        n = min(step, rows - lo)
        keys = np.arange(lo, lo + n, dtype=np.int64)
        rows_now = pa.table({"key": keys, "ts": keys, "label": rng.integers(0, 10, n),
                             "x": rng.random(n, dtype=np.float32)})
        lance.write_dataset(rows_now, paths["samples"], mode="append" if lo else "create")
    lance.write_dataset(pa.table({"key": np.arange(rows, dtype=np.int64), "loss": rng.random(rows)}), paths["loss"])
    erased = np.arange(0, rows, max(rows // n_keys, 2), dtype=np.int64)[:n_keys]
    t0 = time.perf_counter()
    for path in paths.values():
        ds = lance.dataset(path)
        ds.merge_insert("key").when_matched_delete().execute(pa.table({"key": erased}))
        ds = lance.dataset(path)
        ds.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        lance.dataset(path).cleanup_old_versions(older_than=timedelta(0), delete_unverified=True)
    t_erase = time.perf_counter() - t0
    rest = sum(int(np.isin(lance.dataset(path, version=v["version"]).to_table(columns=["key"]).column("key").to_numpy(),
                           erased).sum()) for path in paths.values() for v in lance.dataset(path).versions())
    print(json.dumps({"side": "lance", "rows": rows, "keys": int(erased.size), "erase_s": round(t_erase, 3),
                      "rows_left_of_purged_keys": rest}), flush=True)
    assert rest == 0, f"lance: {rest} rows of purged keys remain"
    shutil.rmtree(f"{root}/lance-{n_keys}", ignore_errors=True)


def run(side: str, store_cls: Any, rows: int, n_keys: int, root: str) -> None:
    path = f"{root}/{side}-{n_keys}"
    store = build(store_cls, path, rows)
    stride = max(rows // n_keys, 2)
    erased = np.arange(0, rows, stride, dtype=np.int64)[:n_keys]
    t0 = time.perf_counter()
    report = store.erase(erased, reason="benchmark")
    t_erase = time.perf_counter() - t0
    assert report.keys.size == erased.size and report.trainings == ("all",), (report.keys.size, report.trainings)
    deleted = erased + 1  # (every stride-th key is erased, stride >= 2: these are not)
    t0 = time.perf_counter()
    store.delete(keys=deleted)
    t_delete = time.perf_counter() - t0
    t0 = time.perf_counter()
    vac = store.vacuum(keep_versions=1, dry_run=False)
    t_vacuum = time.perf_counter() - t0
    gone = np.concatenate([erased, deleted])
    rest = left(path, gone)
    print(json.dumps({"side": side, "rows": rows, "keys": int(erased.size), "erase_s": round(t_erase, 3),
                      "delete_s": round(t_delete, 3), "vacuum_s": round(t_vacuum, 3),
                      "vacuum_purged": int(vac.keys.size), "rows_left_of_purged_keys": rest}), flush=True)
    assert rest == 0, f"{side}: {rest} rows of purged keys remain"
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--baseline", metavar="REV", help="also time the store at git revision REV")
    parser.add_argument("--path", default=None, help="folder for the stores (default: a temporary one)")
    args = parser.parse_args()
    sides: dict[str, Any] = {"now": Store}
    if args.baseline:
        sides["before"] = load_baseline(args.baseline)
    root = args.path or tempfile.mkdtemp(prefix="purge-keys-")
    try:
        for n_keys in args.keys:
            for side, cls in sides.items():
                run(side, cls, args.rows, n_keys, root)
            lance_peer(root, args.rows, n_keys)
    finally:
        if args.path is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
