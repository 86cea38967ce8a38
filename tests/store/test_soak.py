"""A long mixed workload: writers, maintenance and readers in separate processes at once.

Two writer processes append, delete, erase and tag in their own key ranges; a maintainer
compacts and vacuums; two readers stream snapshots of recent versions with ``to_batches`` and
read samples with ``take``, checking every row against a model rebuilt from the writers'
journals. Passes only with zero reader errors, zero wrong rows, and a version log in which
every committed write appears exactly once. ``MODYN_SOAK_SECONDS`` sets the duration (60).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modyn_store import Store
from modyn_store.core.verify import verify

PROC = str(Path(__file__).with_name("soak_proc.py"))
ROLES = [("writer", 1), ("writer", 2), ("maintainer", 3), ("reader", 4), ("reader", 5)]


@pytest.mark.slow
def test_mixed_workload_soak(tmp_path: Path) -> None:
    seconds = float(os.environ.get("MODYN_SOAK_SECONDS", "60"))
    uri = str(tmp_path / "store")
    Store.open(uri, create=True)
    work = str(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, PROC, role, uri, work, str(seconds), str(seed)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for role, seed in ROLES
    ]
    for p in procs:
        _, err = p.communicate(timeout=seconds * 6 + 300)
        assert p.returncode == 0, err
    results = {}
    for role, seed in ROLES:
        with open(f"{work}/result-{role}{seed}.json") as fh:
            results[f"{role}{seed}"] = json.load(fh)
    for name, r in results.items():
        assert not r.get("errors"), f"{name}: {r['errors'][:3]}"
        assert not r.get("wrong"), f"{name}: {r['wrong'][:3]}"
    # every committed write is in the log exactly once, and the log has no gap
    store = Store.open(uri)
    journaled: dict[int, str] = {}
    for path in glob.glob(f"{work}/journal-*.jsonl"):
        with open(path) as fh:
            for line in fh:
                e = json.loads(line)
                assert e["v"] not in journaled, f"version {e['v']} was handed to two writes"
                journaled[e["v"]] = e["op"]
    log = store.log()
    assert [r.version for r in log] == list(range(1, len(log) + 1))
    assert sorted(journaled) == [r.version for r in log], "a write is missing from the log, or the log has one no writer made"
    assert all(journaled[r.version] == r.op for r in log)
    reads = sum(r.get("reads", 0) for r in results.values())
    assert reads >= 20 and all(results[f"reader{s}"]["takes"] > 0 for s in (4, 5))
    report = verify(uri, deep=True)
    assert report.ok, [str(f) for f in report.findings]
    figures = {
        "seconds": seconds,
        "versions": len(log),
        "ops": {op: sum(r.get("ops", {}).get(op, 0) for r in results.values())
                for op in ("append", "delete", "erase", "tag", "compact", "vacuum")},
        "reads": reads,
        "rows_checked": sum(r.get("rows", 0) for r in results.values()),
        "takes": sum(r.get("takes", 0) for r in results.values()),
    }
    print("SOAK " + json.dumps(figures))
