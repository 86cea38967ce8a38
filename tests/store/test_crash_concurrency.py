"""Crash safety (SIGKILL at random moments) and concurrent writer processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
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
    if store.schema is not None:  # None: killed while creating the samples table
        table = store.as_of().to_table(["key", "text", "x"])
        keys = table.column("key").to_numpy()
        assert table.column("text").to_pylist() == _expected_text(keys)
        assert np.array_equal(table.column("x").to_numpy(), keys * 0.5)
    else:
        assert v == 0
    # no leftover rows of the interrupted write in any table (samples, tombstones, erasures, ...)
    for name in store._tables.names():
        ds = store._tables.open(name)
        if ds is not None and "_version" in ds.schema.names and ds.count_rows():
            assert ds.to_table(columns=["_version"]).column(0).to_numpy().max() <= v, name
    # and the store takes new writes
    rec = store.append({"key": [10**9 + v], "ts": [0], "text": ["after"], "x": [0.0]})
    assert rec.version == v + 1


def _uncommitted_rows(uri: str) -> int:
    """Rows on disk, in any table, of versions past the last committed one (read with Lance
    directly, before the store's next open rolls them back)."""
    root = Path(uri)
    # the log: a table of versions 1..C, then one record object per later version
    committed = lance.dataset(str(root / "versions.lance")).count_rows() if (root / "versions.lance").exists() else 0
    objects = {int(p.stem) for p in (root / "_log").glob("[0-9]*.json")}
    while committed + 1 in objects:
        committed += 1
    rows = 0
    for table in [*root.glob("*.lance"), *root.glob("scores/*.lance")]:
        ds = lance.dataset(str(table))
        if "_version" in ds.schema.names:
            rows += ds.count_rows(filter=f"_version > {committed}")
    return rows


def _writer(uri: str, seed: int, kill_at: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "MODYN_TEST_KILL_AT": str(kill_at)}
    return subprocess.Popen([sys.executable, WRITER, uri, str(seed), "40", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _crash_inside_a_write(tmp: Path, seed: int) -> None:
    """The writer kills itself after an operation's rows reach disk, before its version commits:
    those rows must be on disk, and the next open must roll them back."""
    uri = str(tmp / f"store{seed}")
    kill_at = int(np.random.default_rng(seed).integers(2, 30))
    proc = _writer(uri, seed, kill_at)
    out, err = proc.communicate(timeout=300)
    lines = out.splitlines()
    assert proc.returncode == -signal.SIGKILL, err
    assert lines[-1].startswith("WROTE "), lines[-3:]
    assert sum(l.startswith("BEGIN ") for l in lines) == kill_at
    assert _uncommitted_rows(uri) > 0, "the kill landed outside the write"
    _check_store(uri, lines)
    assert _uncommitted_rows(uri) == 0


def _crash_at_a_random_time(tmp: Path, seed: int) -> None:
    """SIGKILL a few milliseconds after a randomly chosen operation begins."""
    uri = str(tmp / f"store{seed}")
    rng = np.random.default_rng(seed)
    target = int(rng.integers(2, 30))
    proc = _writer(uri, seed)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if sum(l.startswith("BEGIN ") for l in lines) == target:
            break
    time.sleep(float(rng.uniform(0.0, 0.05)))
    proc.send_signal(signal.SIGKILL)
    # read on through the same buffered stream: communicate() reads the raw pipe and would
    # drop the lines the loop above had already buffered but not yet returned
    with proc.stdout, proc.stderr:  # type: ignore[union-attr]
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.wait()
    lines += out.splitlines()
    assert proc.returncode == -signal.SIGKILL, "the writer ended before the kill: " + err
    _check_store(uri, lines)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_inside_a_write_is_rolled_back(tmp_path: Path, seed: int) -> None:
    _crash_inside_a_write(tmp_path, seed)


@pytest.mark.parametrize("seed", [4, 5])
def test_sigkill_at_a_random_time_leaves_no_half_visible_version(tmp_path: Path, seed: int) -> None:
    _crash_at_a_random_time(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 132))
def test_sigkill_many_trials(tmp_path: Path, seed: int) -> None:
    (_crash_inside_a_write if seed % 2 else _crash_at_a_random_time)(tmp_path, seed)


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
