"""Processes racing on one store: creating it at once, a reader across a killed write."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store

_CREATOR = r"""
import os, sys, time
from modyn_store import Store
root, start, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
for r in range(rounds):
    at = start + 0.25 * r  # every process opens store r at this moment
    time.sleep(max(0.0, at - time.time() - 0.005))
    while time.time() < at:
        pass
    try:
        Store.open(os.path.join(root, f"store{r}"), create=True)
        print("ok", flush=True)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", flush=True)
"""


def test_processes_creating_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Every process that opens a new path with ``create=True`` at the same moment as others
    gets the store; none is refused because another's marker file was half made."""
    n, rounds = 4, 10
    start = time.time() + 3.0  # after every process imported the store
    procs = [
        subprocess.Popen([sys.executable, "-c", _CREATOR, str(tmp_path), str(start), str(rounds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results += out.splitlines()
    assert len(results) == n * rounds
    assert [r for r in results if r != "ok"] == []


_KILLED_CREATOR = r"""
import os, sys
from modyn_store.core import _marker
def killed(loc):  # the marker's bytes are in its temporary file; the move never happens
    tmp = loc.path(_marker.MARKER) + ".0123456789ab.tmp"
    with open(tmp, "w") as fh:
        fh.write("{}")
    os._exit(9)
_marker._write = killed
from modyn_store import Store
Store.open(sys.argv[1], create=True)
"""


def test_a_store_whose_creator_died_before_its_marker_landed_can_be_created(tmp_path: Path) -> None:
    """A process killed while it wrote the marker (its temporary file is all the folder holds)
    leaves a folder that ``create=True`` makes a store of, not "not empty but holds no store"."""
    uri = str(tmp_path / "store")
    died = subprocess.run([sys.executable, "-c", _KILLED_CREATOR, uri], capture_output=True, text=True)
    assert died.returncode == 9, died.stderr
    assert [p.name.endswith(".tmp") for p in Path(uri).iterdir()] == [True]
    store = Store.open(uri, create=True)
    assert store.append(pa.table({"key": [1, 2], "ts": [0, 0]})).version == 1
    assert Store.open(uri).as_of().count() == 2


_KILLED_FIRST_APPEND = r"""
import os, signal, sys, numpy as np, pyarrow as pa
from modyn_store import Store
store = Store.open(sys.argv[1])
write = store._tables.append
def append(name, data):
    out = write(name, data)
    if name == "samples":  # the table is made and holds the rows; the version never commits
        os.kill(os.getpid(), signal.SIGKILL)
    return out
store._tables.append = append
store.append(pa.table({"key": np.arange(100, 110), "ts": np.arange(10)}))
"""

_RECOVER_AND_WRITE = r"""
import sys, numpy as np, pyarrow as pa
from modyn_store import Store
store = Store.open(sys.argv[1])  # drops the samples table the killed write made
store.tag("t1")  # version 2
store.append(pa.table({"key": np.arange(200, 210), "ts": np.arange(10)}))  # version 3: made again
"""


def reads_the_new_table(reader: Store) -> None:
    """After ``_RECOVER_AND_WRITE``: versions 1 and 2 hold no rows, version 3 keys 200..209,
    through every read path (no stale handle, no fragment range of the dropped table)."""
    assert reader.version == 3
    for version, expected in ((1, []), (2, []), (3, list(range(200, 210)))):
        snap = reader.as_of(version)
        assert snap.to_table().column("key").to_pylist() == expected, version
        got = np.concatenate([np.empty(0, np.int64), *snap.iter_keys()])
        assert sorted(got.tolist()) == expected, version
        assert snap.keys().tolist() == expected, version


@pytest.mark.parametrize("look_between", [False, True])
def test_a_reader_across_a_samples_table_made_again_reads_the_new_one(tmp_path: Path, look_between: bool) -> None:
    """A killed first append leaves a samples table that recovery drops; the next append
    makes it again with the same Lance version and fragment numbers. A reader process that
    looked at the old table must read the new one: no stale handle ("damaged" files) and no
    fragment ranges of the old table (rows of version 3 in version 2)."""
    uri = str(tmp_path / "store")
    writer = Store.open(uri, create=True)
    writer.tag("t0")  # version 1: no samples yet
    reader = Store.open(uri)
    killed = subprocess.run([sys.executable, "-c", _KILLED_FIRST_APPEND, uri], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert reader.as_of(1).to_table().num_rows == 0  # reads while the uncommitted table is there
    if look_between:
        Store.open(uri)  # recovery drops the table
        assert reader.as_of(1).to_table().num_rows == 0
    done = subprocess.run([sys.executable, "-c", _RECOVER_AND_WRITE, uri], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    reads_the_new_table(reader)


_MAKE_AGAIN = r"""
import shutil, sys, numpy as np, pyarrow as pa
from modyn_store import Store
shutil.rmtree(sys.argv[1])
store = Store.open(sys.argv[1], create=True)
store.append(pa.table({"key": np.arange(100, 150), "ts": np.arange(50)}))
store.tag("a")
store.append(pa.table({"key": np.arange(150, 160), "ts": np.arange(10)}))
store.delete(keys=[100, 101, 102])
"""


def test_a_store_object_follows_a_store_made_again_at_its_path(tmp_path: Path) -> None:
    """Another process deletes the store's folder and makes a new store there: an open
    ``Store`` must read the new store's log (not the records it kept of the old one) and its
    counts, not call the new store damaged."""
    uri = str(tmp_path / "store")
    old = Store.open(uri, create=True)
    for i in range(3):
        old.append(pa.table({"key": np.arange(10 * i, 10 * i + 10), "ts": np.arange(10)}))
    old.erase([1], reason="test")
    assert [old.as_of(v).count() for v in range(5)] == [0, 9, 19, 29, 29]
    done = subprocess.run([sys.executable, "-c", _MAKE_AGAIN, uri], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [r.op for r in old.log()] == ["append", "tag", "append", "delete"]
    assert [old.as_of(v).count() for v in range(5)] == [0, 50, 50, 60, 57]
    assert old.as_of(4).to_table().num_rows == 57


_REINDEX = r"""
import sys, numpy as np, pyarrow as pa
from modyn_store import Store
store = Store.open(sys.argv[1])
store.append(pa.table({"key": [10**6], "ts": [0]}))
store.index_keys()  # a new build folder, the pointer replaced, the old folder removed
"""


def test_a_point_read_racing_a_key_index_rebuild_reads_the_new_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A point read that found the key index pointer just before another process rebuilt the
    index (and removed the build the pointer named) reads the new build: not CorruptionError."""
    from modyn_store.core import keyindex

    uri = str(tmp_path / "store")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(1000), "ts": np.arange(1000)}))
    store.index_keys()
    probe = keyindex._probe
    raced: list[int] = []

    def probe_after_a_rebuild(*args: object, **kwargs: object) -> object:
        if not raced:  # the pointer was read; another process rebuilds before the files are
            done = subprocess.run([sys.executable, "-c", _REINDEX, uri], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            raced.append(1)
        return probe(*args, **kwargs)

    monkeypatch.setattr(keyindex, "_probe", probe_after_a_rebuild)
    snap = Store.open(uri).as_of(1)
    assert snap.take([5, 999], columns=["key"]).column("key").to_pylist() == [5, 999]
    assert raced == [1]


_DELETE = "import sys\nfrom modyn_store import Store\nStore.open(sys.argv[1]).delete(keys=[3])\n"


def _delete_after_first(monkeypatch: pytest.MonkeyPatch, tables: object, look: str, uri: str) -> dict[str, int]:
    """Make the first ``tables.<look>("tombstones")`` return, then let another process delete a
    key (creating and committing the table) before the reader goes on; counts those looks."""
    looked = {"n": 0}
    real = getattr(tables, look)

    def look_then_commit(name: str) -> bool:
        out = real(name)
        if name == "tombstones" and not looked["n"]:
            looked["n"] += 1
            subprocess.run([sys.executable, "-c", _DELETE, uri], check=True, timeout=120)
        return bool(out)

    monkeypatch.setattr(tables, look, look_then_commit)
    return looked


def test_a_table_another_process_creates_between_a_readers_looks_is_opened(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader finds no tombstones folder; another process then creates the table and commits
    before the reader reads the log: the table is opened, not reported as lost manifests."""
    uri = str(tmp_path / "store")
    Store.open(uri, create=True).append({"key": np.arange(10), "ts": np.arange(10)})
    reader = Store.open(uri)
    tables = reader._tables
    looked = _delete_after_first(monkeypatch, tables, "exists", uri)
    ds = tables.open("tombstones")
    assert looked["n"] == 1 and ds is not None
    assert ds.to_table(columns=["key"]).column("key").to_pylist() == [3]
    assert reader.as_of(1).count() == 10 and reader.as_of(2).count() == 9


def test_a_table_created_between_a_failed_open_and_its_listing_is_opened(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader's open of a table being created fails and its listing finds no manifest yet; the
    create commits before the reader reads the log: the table is opened on the next try."""
    uri = str(tmp_path / "store")
    Store.open(uri, create=True).append({"key": np.arange(10), "ts": np.arange(10)})
    reader = Store.open(uri)
    tables = reader._tables
    Path(uri, "tombstones.lance", "_versions").mkdir(parents=True)  # the create has begun
    listed = _delete_after_first(monkeypatch, tables, "_has_manifest", uri)
    ds = tables.open("tombstones")
    assert listed["n"] == 1 and ds is not None
    assert ds.to_table(columns=["key"]).column("key").to_pylist() == [3]
