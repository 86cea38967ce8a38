"""Crash safety (SIGKILL at random moments) and concurrent writer processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modyn_store import ConflictError, Store

WRITER = str(Path(__file__).with_name("writer_proc.py"))


def _expected_text(keys: np.ndarray) -> list[str]:
    return [f"row-{int(k)}-" + "x" * 64 for k in keys]


def _replay(ops: list[dict]) -> list[set[int]]:
    """Live key sets after each operation, from the writer's own account.

    Erased keys leave every version, earlier ones included.
    """
    live: set[int] = set()
    out: list[set[int]] = [set()]
    erased = {k for op in ops if op["op"] == "erase" for k in op["keys"]}
    for op in ops:
        if op["op"] == "append":
            live |= set(range(op["keys"][0], op["keys"][1] + 1))
        else:
            live -= set(op["keys"])
        out.append(live - erased)
    return out


def _check_store(uri: str, lines: list[str], options: dict[str, str] | None = None) -> None:
    begun = [json.loads(l[6:]) for l in lines if l.startswith("BEGIN ")]
    done = [int(l[5:]) for l in lines if l.startswith("DONE ")]
    store = Store.open(uri, storage_options=options)  # the next open (or write) recovers
    v = store.version
    assert done == list(range(1, len(done) + 1)), "versions must be 1, 2, ... without gaps"
    # the interrupted operation either committed entirely or not at all
    assert v in (len(done), len(done) + 1)
    assert v <= len(begun)
    expected = _replay(begun[:v])
    for version in range(v + 1):
        snap = store.as_of(version)
        assert set(snap.keys().tolist()) == expected[version], f"version {version}"
    table = store.as_of().to_table(["key", "text", "x"])
    keys = table.column("key").to_numpy()
    assert table.column("text").to_pylist() == _expected_text(keys)
    assert np.array_equal(table.column("x").to_numpy(), keys * 0.5)
    # no leftover rows of the interrupted write anywhere
    ds = store.samples_dataset()
    if ds is not None:
        assert ds.to_table(columns=["_version"]).column(0).to_numpy().max() <= v
    # and the store takes new writes
    rec = store.append({"key": [10**9 + v], "ts": [0], "text": ["after"], "x": [0.0]})
    assert rec.version == v + 1


def _crash_trial(tmp: Path, seed: int) -> None:
    uri = str(tmp / f"store{seed}")
    proc = subprocess.Popen(
        [sys.executable, WRITER, uri, str(seed), "40", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rng = np.random.default_rng(seed)
    time.sleep(float(rng.uniform(1.0, 4.0)))  # import takes ~1 s; then ops run
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    if proc.returncode != -signal.SIGKILL:
        assert proc.returncode == 0, err
    if not os.path.exists(uri):
        return  # killed before the store was created
    _check_store(uri, out.splitlines())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_leaves_no_half_visible_version(tmp_path: Path, seed: int) -> None:
    _crash_trial(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 132))
def test_sigkill_many_trials(tmp_path: Path, seed: int) -> None:
    _crash_trial(tmp_path, seed)


def test_concurrent_writer_processes(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    Store.open(uri, create=True)
    procs = [
        subprocess.Popen(
            [sys.executable, WRITER, uri, str(seed), "8", str(seed * 1_000_000)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (11, 12, 13)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(out.splitlines())
    store = Store.open(uri)
    versions = sorted(int(l[5:]) for lines in outputs for l in lines if l.startswith("DONE "))
    assert versions == list(range(1, store.version + 1)), "no gap, no duplicate"
    assert [r.version for r in store.log()] == versions
    # every committed row is there exactly once, with its content
    expected: set[int] = set()
    for lines in outputs:
        begun = [json.loads(l[6:]) for l in lines if l.startswith("BEGIN ")]
        expected |= _replay(begun)[-1]
    table = store.as_of().to_table(["key", "text"])
    keys = table.column("key").to_numpy()
    assert keys.size == np.unique(keys).size
    assert set(keys.tolist()) == expected
    assert table.column("text").to_pylist() == _expected_text(keys)


def test_conflict_error_when_lock_is_held(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    store = Store.open(uri, create=True)
    store.append({"ts": [1, 2]})
    with store._lock:
        proc = subprocess.run(
            [sys.executable, WRITER, uri, "5", "1", "100", "0.2"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "CONFLICT another writer held the store lock" in proc.stdout
        with pytest.raises(ConflictError):
            Store.open(uri, lock_timeout=0.1).append({"ts": [3]})
    assert store.version == 1 and store.as_of().count() == 2
