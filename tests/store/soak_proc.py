"""One process of the mixed-workload soak test (run as a script).

Usage: python soak_proc.py ROLE STORE WORKDIR SECONDS SEED

Roles: ``writer`` (appends, deletes, erasures, tags in its own key range), ``maintainer``
(compact and vacuum), ``reader`` (snapshots streamed with ``to_batches`` and read with
``take``, every row checked against a model rebuilt from the writers' journals). Writers
journal each committed version to ``WORKDIR/journal-<role><seed>.jsonl``; every process
writes its counts and failures to ``WORKDIR/result-<role><seed>.json``.
"""

from __future__ import annotations

import glob
import json
import sys
import time
import traceback
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store import DataUnavailableError, Store, UnknownKeyError


def payload(keys: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "key": pa.array(keys, pa.int64()),
            "ts": pa.array(keys % 100_000, pa.int64()),
            "x": pa.array(keys.astype(np.float64) * 0.25),
            "text": pa.array([f"k{int(k)}" for k in keys]),
        }
    )


class Journal:
    def __init__(self, path: str) -> None:
        self.fh = open(path, "a", buffering=1)

    def log(self, version: int, op: str, keys: Any = (), **extra: Any) -> None:
        self.fh.write(json.dumps({"v": int(version), "op": op, "keys": [int(k) for k in keys], **extra}) + "\n")


def writer(store: Store, journal: Journal, seconds: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    base = seed * 10**9
    next_key = base
    live: list[int] = []
    stored: list[int] = []
    ops: dict[str, int] = {}
    tags = 0
    end = time.time() + seconds
    while time.time() < end:
        r = rng.random()
        if r < 0.55 or len(live) < 20:
            n = int(rng.integers(20, 300))
            keys = np.arange(next_key, next_key + n, dtype=np.int64)
            rng.shuffle(keys)
            rec = store.append(payload(keys))
            next_key += n
            live += keys.tolist()
            stored += keys.tolist()
            journal.log(rec.version, "append", keys)
            op = "append"
        elif r < 0.8:
            chosen = sorted(set(rng.choice(live, size=int(rng.integers(1, 8))).tolist()))
            rec = store.delete(keys=chosen)
            live = [k for k in live if k not in set(chosen)]
            journal.log(rec.version, "delete", chosen)
            op = "delete"
        elif r < 0.9:
            chosen = sorted(set(rng.choice(stored, size=int(rng.integers(1, 3))).tolist()))
            report = store.erase(chosen, reason="soak", missing="ignore")
            gone = set(report.keys.tolist())
            live = [k for k in live if k not in gone]
            stored = [k for k in stored if k not in gone]
            if report.version is not None:
                journal.log(report.version, "erase", report.keys)
            op = "erase"
        else:
            tags += 1
            rec = store.tag(f"w{seed}-t{tags}")
            journal.log(rec.version, "tag", name=f"w{seed}-t{tags}")
            op = "tag"
        ops[op] = ops.get(op, 0) + 1
    return {"ops": ops}


def maintainer(store: Store, journal: Journal, seconds: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ops = {"compact": 0, "vacuum": 0}
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(float(rng.uniform(0.5, 2.0)))
        if rng.random() < 0.5:
            store.compact()
            ops["compact"] += 1
        else:
            report = store.vacuum(keep_versions=int(rng.integers(2, 8)), dry_run=False)
            if report.version is not None:
                journal.log(report.version, "vacuum", report.keys)
            ops["vacuum"] += 1
    return {"ops": ops}


class Model:
    """The expected live set of any version, from every journal."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.entries: dict[int, dict[str, Any]] = {}

    def load(self, upto: int, wait: float = 30.0) -> None:
        deadline = time.time() + wait
        while True:
            for path in glob.glob(f"{self.workdir}/journal-*.jsonl"):
                with open(path) as fh:
                    for line in fh:
                        if line.endswith("\n"):
                            e = json.loads(line)
                            self.entries[e["v"]] = e
            if all(v in self.entries for v in range(1, upto + 1)) or time.time() > deadline:
                return
            time.sleep(0.05)

    def live(self, version: int, erased_upto: int) -> set[int]:
        keys: set[int] = set()
        for v in range(1, version + 1):
            e = self.entries[v]
            if e["op"] == "append":
                keys.update(e["keys"])
            elif e["op"] == "delete":
                keys.difference_update(e["keys"])
        for v in range(1, erased_upto + 1):
            e = self.entries.get(v)
            if e is not None and e["op"] == "erase":
                keys.difference_update(e["keys"])
        return keys

    def erased(self, upto: int) -> set[int]:
        return {k for v, e in self.entries.items() if v <= upto and e["op"] == "erase" for k in e["keys"]}

    def purged(self, upto: int) -> set[int]:
        return {k for v, e in self.entries.items() if v <= upto and e["op"] == "vacuum" for k in e["keys"]}


def _check_rows(batch: pa.RecordBatch | pa.Table, wrong: list[str]) -> np.ndarray:
    k = batch.column(batch.schema.get_field_index("key")).to_numpy()
    x = batch.column(batch.schema.get_field_index("x")).to_numpy()
    text = batch.column(batch.schema.get_field_index("text")).to_pylist()
    if not np.array_equal(x, k.astype(np.float64) * 0.25) or text != [f"k{int(v)}" for v in k]:
        wrong.append(f"rows whose payload is not their key's, e.g. key {int(k[0])}")
    return k


def reader(store: Store, seconds: float, seed: int, workdir: str) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    model = Model(workdir)
    reads = rows = takes = 0
    errors: list[str] = []
    wrong: list[str] = []
    end = time.time() + seconds
    while time.time() < end:
        try:
            start = store.version
            if start == 0:
                time.sleep(0.05)
                continue
            v = start if rng.random() < 0.4 else int(rng.integers(max(1, start - 12), start + 1))
            snap = store.as_of(v)
            parts = [
                _check_rows(b, wrong)
                for b in snap.to_batches(["key", "x", "text"], batch_size=int(rng.integers(50, 2000)), on_unavailable="skip")
            ]
            got = np.concatenate(parts) if parts else np.empty(0, np.int64)
            unavailable = set(snap.unavailable().tolist())
            stop = store.version
            reads += 1
            rows += int(got.size)
            if np.unique(got).size != got.size:
                wrong.append(f"version {v}: a key returned twice")
            model.load(stop)
            hi = model.live(v, start)  # erasures known when the read began
            lo = model.live(v, stop)  # erasures committed before it ended
            seen = set(got.tolist()) | unavailable
            if not (lo <= seen <= hi):
                wrong.append(
                    f"version {v}: {len(seen - hi)} keys that are not live, {len(lo - seen)} live keys missing"
                )
            if got.size:
                want = rng.choice(got, size=min(25, got.size), replace=False)
                try:
                    t = snap.take(want, ["key", "x", "text"])
                    takes += 1
                    if not np.array_equal(_check_rows(t, wrong), want):
                        wrong.append(f"version {v}: take returned other keys than asked")
                except UnknownKeyError:
                    now = store.version
                    model.load(now)
                    if not (set(want.tolist()) & model.erased(now)):
                        errors.append(f"version {v}: take refused keys that nothing erased")
                except DataUnavailableError:
                    now = store.version
                    model.load(now)
                    if not (set(want.tolist()) & model.purged(now)):
                        errors.append(f"version {v}: take says purged for keys vacuum did not purge")
        except Exception:  # noqa: BLE001 - every failure of a read is what this test counts
            errors.append(traceback.format_exc(limit=6))
    return {"reads": reads, "rows": rows, "takes": takes, "errors": errors, "wrong": wrong}


def main() -> None:
    role, uri, workdir, seconds, seed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    store = Store.open(uri, lock_timeout=120.0)
    result: dict[str, Any]
    try:
        if role == "writer":
            result = writer(store, Journal(f"{workdir}/journal-{role}{seed}.jsonl"), seconds, seed)
        elif role == "maintainer":
            result = maintainer(store, Journal(f"{workdir}/journal-{role}{seed}.jsonl"), seconds, seed)
        else:
            result = reader(store, seconds, seed, workdir)
    except Exception:  # noqa: BLE001 - reported to the test, which fails on it
        result = {"errors": [traceback.format_exc()]}
    with open(f"{workdir}/result-{role}{seed}.json", "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
