"""The store stays usable and answers with store errors: killed cache builds, killed creates,
read-only folders, out-of-range input and damaged files."""

from __future__ import annotations

import glob
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import (
    CorruptionError,
    InvalidArgumentError,
    NotAStoreError,
    ReadOnlyStoreError,
    Store,
)

REPO = Path(__file__).resolve().parents[2]


def _rows(keys: list[int]) -> pa.Table:
    return pa.table({"key": pa.array(keys, pa.int64()), "ts": pa.array(keys, pa.int64()), "x": [float(k) for k in keys]})


# -- a loader cache build killed mid-way ----------------------------------------------------
def _build_forever(uri: str, keys: list[int]) -> None:
    from training.cache import cache_for
    from training.columns import ColumnSpec

    store = Store.open(uri)
    spec = {"x": ColumnSpec("x", "fixed", "<f4", ())}

    def fill(alloc):  # type: ignore[no-untyped-def]
        alloc(spec["x"], len(keys))[:] = 1.0
        time.sleep(3600)  # killed here, with a half-written folder on disk
        return np.array(keys), {}

    cache_for(store).get_or_build("entry", np.array(keys), spec, fill)


def test_a_killed_cache_build_neither_breaks_erase_nor_open(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows([0, 1, 2, 3]))
    p = mp.get_context("spawn").Process(target=_build_forever, args=(uri, [1, 2]))
    p.start()
    deadline = time.time() + 60
    while not glob.glob(f"{uri}/_cache/.tmp-entry-*/c0.npy") and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    tmp = glob.glob(f"{uri}/_cache/.tmp-entry-*")
    assert tmp, "the build was not caught mid-way"
    # what an older build left: a published folder whose keys file is empty
    os.makedirs(f"{uri}/_cache/legacy")
    open(f"{uri}/_cache/legacy/keys.npy", "wb").close()
    report = store.erase([2], reason="gdpr")
    assert report.version == 2 and report.caches_removed == 2
    assert not any(os.path.exists(t) for t in tmp) and not os.path.exists(f"{uri}/_cache/legacy")
    assert store.caches.entries() == []
    assert Store.open(uri).as_of().keys().tolist() == [0, 1, 3]


def test_erase_keeps_caches_that_hold_no_erased_key(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(_rows([0, 1, 2]))
    os.makedirs(store.path("_cache/a"))
    os.makedirs(store.path("_cache/b"))
    store.caches.register("a", [0, 1], folders=["a"])
    store.caches.register("b", [2], folders=["b"])
    assert store.erase([2], reason="r").caches_removed == 1
    assert os.path.isdir(store.path("_cache/a")) and not os.path.exists(store.path("_cache/b"))
    assert store.caches.entries() == ["a"]


def test_an_interrupted_erase_recovers_with_a_damaged_cache_record(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows([0, 1, 2]))
    os.makedirs(store.path("_cache/a"))
    store.caches.register("a", [1], folders=["a"])
    with open(store.path("_meta/caches/a.keys.npy"), "wb") as fh:
        fh.write(b"\x93NUMPY")  # truncated
    # an erase that committed but was killed before its physical purge
    store.erase([1], reason="r")
    os.makedirs(store.path("_cache/a"))
    store.caches.register("a", [1], folders=["a"])
    with open(store.path("_txn/intent.json"), "w") as fh:
        json.dump({"version": 2, "op": "erase"}, fh)
    assert Store.open(uri).as_of().keys().tolist() == [0, 2]
    assert not os.path.exists(store.path("_cache/a"))


# -- a table whose creation never committed ---------------------------------------------------
def test_recovery_tolerates_a_table_whose_creation_never_committed(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows([0, 1]))
    # a writer killed while Lance created a new table: folder and _versions, no manifest
    os.makedirs(f"{uri}/progress.lance/_versions")
    os.makedirs(f"{uri}/progress.lance/data")
    with open(f"{uri}/_txn/intent.json", "w") as fh:
        json.dump({"version": 2, "op": "note"}, fh)
    again = Store.open(uri)
    assert again.read_table("progress") is None
    with again.transaction("note") as txn:
        txn.append("progress", pa.table({"step": [1]}))
    assert again.read_table("progress").column("step").to_pylist() == [1]


def test_a_table_left_uncommitted_without_intent_is_not_an_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    os.makedirs(f"{uri}/notes.lance/_versions")
    assert store.read_table("notes") is None
    with store.transaction("note") as txn:
        txn.append("notes", pa.table({"t": ["a"]}))
    assert store.read_table("notes").num_rows == 1


# -- a read-only store ----------------------------------------------------------------------
_READ_ONLY_CHECK = """
import json, sys
from modyn_store import Store, ReadOnlyStoreError
import pyarrow as pa
s = Store.open(sys.argv[1])
out = {"keys": s.as_of().keys().tolist(), "version": s.version}
try:
    s.append(pa.table({"key": [9], "ts": [9], "x": [9.0]}))
    out["write"] = "ok"
except ReadOnlyStoreError as exc:
    out["write"] = "ReadOnlyStoreError"
for name in ("compact", "index_keys"):
    try:
        getattr(s, name)()
        out[name] = "ok"
    except ReadOnlyStoreError:
        out[name] = "ReadOnlyStoreError"
    except Exception as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


def test_a_read_only_store_with_a_leftover_intent_reads_and_refuses_writes() -> None:
    base = tempfile.mkdtemp()
    try:
        os.chmod(base, 0o755)
        uri = os.path.join(base, "s")
        store = Store.open(uri, create=True)
        store.append(_rows([0, 1, 2]))
        with store.transaction("note") as txn:
            txn.append("notes", pa.table({"t": ["a"]}))
        # an append killed after writing rows: intent and rows of version 3 are on disk
        store._tables.append("samples", pa.table({"key": [7], "ts": [7], "x": [7.0], "_version": [3]}))
        with open(os.path.join(uri, "_txn", "intent.json"), "w") as fh:
            json.dump({"version": 3, "op": "append"}, fh)
        for root, dirs, files in os.walk(uri):
            for n in dirs + files:
                os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
        if os.geteuid() == 0:  # root ignores permissions: a read-only bind mount in a private namespace
            if shutil.which("unshare") is None:
                pytest.skip("running as root without unshare: cannot make a read-only folder")
            script = os.path.join(base, "check.py")
            with open(script, "w") as fh:
                fh.write(_READ_ONLY_CHECK)
            shell = (
                f"mount --bind {uri} {uri} && mount -o remount,bind,ro {uri} {uri} && "
                f"{sys.executable} {script} {uri}"
            )
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            run = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, env=env, timeout=120)
            if run.returncode != 0 and "mount" in run.stderr and "Traceback" not in run.stderr:
                pytest.skip(f"no read-only bind mount here: {run.stderr.strip()}")
        else:
            for root, dirs, files in os.walk(uri):
                for n in dirs + files:
                    os.chmod(os.path.join(root, n), 0o555 if n in dirs else 0o444)
            os.chmod(uri, 0o555)
            run = subprocess.run([sys.executable, "-c", _READ_ONLY_CHECK, uri], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out == {"keys": [0, 1, 2], "version": 2, "write": "ReadOnlyStoreError",
                       "compact": "ReadOnlyStoreError", "index_keys": "ReadOnlyStoreError"}
    finally:
        for root, dirs, _ in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)


# -- store errors, never raw ones ---------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(str(tmp_path / "s"), create=True)


def test_uint64_keys_above_int64_are_refused(store: Store) -> None:
    store.append(_rows([0]))
    big = pa.table({"key": pa.array([1, 2**63 + 5], pa.uint64()), "ts": [1, 2], "x": [1.0, 2.0]})
    with pytest.raises(InvalidArgumentError, match="int64"):
        store.append(big)
    with pytest.raises(InvalidArgumentError, match="int64"):
        store.delete(keys=np.array([2**63 + 5], np.uint64))
    assert store.version == 1


def test_automatic_keys_exhausted_is_a_store_error_not_an_overflow(store: Store) -> None:
    store.append(pa.table({"key": pa.array([2**63 - 1], pa.int64()), "ts": [1]}))
    for _ in range(2):
        with pytest.raises(InvalidArgumentError, match="exhausted"):
            store.append(pa.table({"ts": [2, 3]}))
    assert store.append(pa.table({"key": [5], "ts": [4]})).version == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_event_times_are_refused(store: Store, bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="ts"):
        store.append(pa.table({"ts": [1.0, bad]}))
    assert store.version == 0


def test_a_marker_holding_a_json_list_is_not_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "_modyn_store.json").write_text("[1, 2]")
    with pytest.raises(NotAStoreError, match="list"):
        Store.open(str(folder))


def test_a_path_under_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match="uri"):
        Store.open(str(tmp_path / "file" / "store"), create=True)
    with pytest.raises(NotAStoreError):
        Store.open(str(tmp_path / "file" / "store"))


def test_a_truncated_data_file_raises_a_corruption_error_naming_it(store: Store) -> None:
    store.append(_rows(list(range(1000))))
    [path] = glob.glob(store.path("samples.lance/data/*.lance"))
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    with pytest.raises(CorruptionError, match=os.path.basename(path)):
        store.as_of().to_table()
    with pytest.raises(CorruptionError, match=os.path.basename(path)):
        store.as_of().keys()
