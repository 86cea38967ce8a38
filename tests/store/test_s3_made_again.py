"""On S3 (moto's local server): a reader that outlives a table or a whole store made again at
its path reads the new one, as on a local disk (``tests/store/test_process_races.py``).

A table dropped by recovery and made again restarts Lance's version numbers and fragment ids,
and a store deleted and created again restarts the version log at 1: a reader that only
compares numbers would answer the old incarnation's log records or fragment ranges for the
new one's versions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core._location import resolve
from tests.store.test_process_races import _KILLED_FIRST_APPEND, reads_the_new_table

pytestmark = pytest.mark.s3

_OPEN = r"""
import json, os, signal, sys, numpy as np, pyarrow as pa
from modyn_store import Store as _Store
class Store:
    @staticmethod
    def open(uri, **kw):
        return _Store.open(uri, storage_options=json.loads(sys.argv[2]), **kw)
"""

_RECOVER_AND_WRITE = _OPEN + r"""
store = Store.open(sys.argv[1], lock_timeout=30)  # takes the dead writer's lease, drops its table
store.tag("t1")  # version 2
store.append(pa.table({"key": np.arange(200, 210), "ts": np.arange(10)}))  # version 3: made again
"""

_MAKE_AGAIN = _OPEN + r"""
store = Store.open(sys.argv[1], create=True)
store.append(pa.table({"key": np.arange(100, 150), "ts": np.arange(50)}))
store.tag("a")
store.append(pa.table({"key": np.arange(150, 160), "ts": np.arange(10)}))
store.delete(keys=[100, 101, 102])
"""


def _run(script: str, uri: str, options: dict[str, str], expect: int = 0) -> None:
    env = {**os.environ, "MODYN_STORE_LEASE_SECONDS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, uri, json.dumps(options)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == expect, done.stderr


def test_a_reader_across_a_samples_table_made_again_on_s3_reads_the_new_one(
    s3_store: tuple[str, dict[str, str]],
) -> None:
    uri, options = s3_store
    writer = Store.open(uri, create=True, storage_options=options)
    writer.tag("t0")  # version 1: no samples yet
    reader = Store.open(uri, storage_options=options)
    killed = _OPEN + _KILLED_FIRST_APPEND.split("from modyn_store import Store\n", 1)[1]
    _run(killed, uri, options, expect=-signal.SIGKILL)
    assert reader.as_of(1).to_table().num_rows == 0  # reads while the uncommitted table is there
    _run(_RECOVER_AND_WRITE, uri, options)
    reads_the_new_table(reader)


def test_a_store_object_follows_a_store_made_again_at_its_s3_path(s3_store: tuple[str, dict[str, str]]) -> None:
    """Another process deletes every object of the store and creates a new store there: an open
    ``Store`` reads the new store's log and rows, not the records it kept of the old one, and
    does not call the new store damaged."""
    uri, options = s3_store
    old = Store.open(uri, create=True, storage_options=options)
    for i in range(3):
        old.append(pa.table({"key": np.arange(10 * i, 10 * i + 10), "ts": np.arange(10)}))
    old.erase([1], reason="test")
    assert [old.as_of(v).count() for v in range(5)] == [0, 9, 19, 29, 29]
    loc = resolve(uri, options)
    loc.fs.rm(loc.root, recursive=True)
    _run(_MAKE_AGAIN, uri, options)
    assert [r.op for r in old.log()] == ["append", "tag", "append", "delete"]
    assert [old.as_of(v).count() for v in range(5)] == [0, 50, 50, 60, 57]
    assert [old.as_of(v).to_table().num_rows for v in range(5)] == [0, 50, 50, 60, 57]
    assert old.tags() == {"a": 1}
    assert old.as_of(4).take([103, 159], ["key"]).column("key").to_pylist() == [103, 159]
