"""SIGKILL during maintenance and catalog writes: compact, vacuum, tag, untag, erase, key index
builds and recorded trainings.

A child process appends and deletes, then runs one of those operations, over and over, printing
``BEGIN <op>`` before and ``DONE <version> <count> <key sum>`` after each write. The parent kills
it a random moment after a chosen ``BEGIN``. The next open must show the last committed version
(or the interrupted one, committed whole), with the keys and rows the child saw, a clean
``verify``, point reads that return the right rows, and a store that takes new writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from modyn_store import Store
from modyn_store.core.verify import verify

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from modyn_store import Store
    from modyn_store.core.trainings import Catalog
    from modyn_store.core.trainset import TrainSet

    uri, seed, ops = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    rng = np.random.default_rng(seed)
    store = Store.open(uri, create=True)
    catalog = Catalog(store)

    def done() -> None:
        keys = store.as_of(store.version).keys()
        print("DONE", store.version, keys.size, int(keys.sum()), flush=True)

    next_key, i = 0, 0
    while True:
        i += 1
        keys = np.arange(next_key, next_key + 300, dtype=np.int64)
        next_key += 300
        store.append({"key": keys, "ts": keys, "x": keys * 0.5})
        done()
        live = store.as_of().keys()
        store.delete(keys=rng.choice(live, 20, replace=False))
        done()
        op = ops[i % len(ops)]
        print("BEGIN", op, flush=True)
        if op == "compact":
            store.compact()
        elif op == "vacuum":
            store.vacuum(keep_versions=1, dry_run=False)
        elif op == "tag":
            store.tag(f"t{i}")
            done()
            store.untag(f"t{i}")
        elif op == "erase":
            store.erase(rng.choice(live, 10, replace=False), reason="crash test", missing="ignore")
        elif op == "record":
            v = store.version
            catalog.record_training(f"tr{i}", TrainSet.uniform(store.as_of(v).keys()[:200], version=v))
        elif op == "index":
            store.index_keys()
        done()
""")


def _kill_during(tmp: Path, ops: str, seed: int) -> None:
    uri = str(tmp / "store")
    rng = np.random.default_rng(seed)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, uri, str(seed), ops],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    target, begun, lines = int(rng.integers(2, 5)), 0, []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        begun += line.startswith("BEGIN ")
        if begun == target:
            break
    time.sleep(float(rng.uniform(0.0, 0.3)))
    os.kill(proc.pid, signal.SIGKILL)
    with proc.stdout, proc.stderr:
        lines += proc.stdout.read().splitlines()
        err = proc.stderr.read()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the child ended before the kill: " + err
    done = [line.split()[1:] for line in lines if line.startswith("DONE ")]
    assert done, lines
    last = int(done[-1][0])
    store = Store.open(uri)
    v = store.version
    assert v in (last, last + 1), (v, last, lines[-3:])
    keys = store.as_of(v).keys()
    if v == last and not lines[-1].startswith("BEGIN erase"):  # an erase changes earlier versions too
        assert [str(keys.size), str(int(keys.sum()))] == done[-1][1:]
    report = verify(uri, deep=True)
    assert report.ok, [str(f) for f in report.findings]
    pick = np.random.default_rng(seed).choice(keys, 40, replace=False)
    rows = store.as_of(v).take(pick, ["key", "x"])
    assert rows.column("key").to_pylist() == pick.tolist()
    assert np.array_equal(rows.column("x").to_numpy(), pick * 0.5)
    assert store.as_of(v).contains(pick).all()
    new = np.arange(10**9, 10**9 + 5)
    assert store.append({"key": new, "ts": new, "x": new * 0.5}).version == v + 1
    store.compact()
    store.vacuum(keep_versions=1, dry_run=False)
    assert verify(uri, deep=True).ok


@pytest.mark.parametrize("ops", ["compact,vacuum"])
def test_sigkill_during_maintenance_leaves_the_last_committed_version(tmp_path: Path, ops: str) -> None:
    _kill_during(tmp_path, ops, 1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("ops", ["compact,vacuum", "vacuum,erase", "tag,compact", "record,vacuum", "index,erase",
                                 "record,erase,compact"])
def test_sigkill_during_maintenance_many_trials(tmp_path: Path, ops: str, seed: int) -> None:
    _kill_during(tmp_path, ops, seed)
