"""Edges an adversarial pass found: each test failed before its fix."""

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
from modyn_store.app.cli.main import main
from modyn_store.core.errors import (
    DuplicateKeyError,
    InvalidArgumentError,
    SchemaMismatchError,
    UnknownKeyError,
)
from modyn_store.core.scores import Scores

MIN = -(1 << 63)
MAX = (1 << 63) - 1
SCHEMA = pa.schema([("key", pa.int64()), ("ts", pa.int64()), ("x", pa.float64())])


# -- the key -2**63 in filters ----------------------------------------------------------------
def test_int64_literals_stay_int64_comparisons() -> None:
    from modyn_store.core._sql import key_range, sql_int
    from modyn_store.core._tables import keys_predicate

    assert sql_int(MIN) == "(-9223372036854775807 - 1)"
    assert sql_int(MAX) == "9223372036854775807" and sql_int(-5) == "-5"
    assert key_range(MIN, 3) == "key >= (-9223372036854775807 - 1) AND key <= 3"
    assert list(keys_predicate(np.array([MIN, 7], np.int64))) == ["key IN ((-9223372036854775807 - 1),7)"]


def test_the_smallest_int64_key_is_refused_again_deleted_and_erased(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"key": [MIN, 3, MAX], "ts": [1, 2, 3]}))
    with pytest.raises(DuplicateKeyError):
        store.append(pa.table({"key": [MIN], "ts": [1]}))
    assert store.version == 1
    assert store.as_of().take([MIN]).column("key").to_pylist() == [MIN]
    assert store.delete(keys=[MIN]).version == 2
    assert store.as_of().keys().tolist() == [3, MAX]
    assert store.as_of(1).keys().tolist() == [MIN, 3, MAX]
    with pytest.raises(UnknownKeyError):
        store.delete(keys=[MIN])
    report = store.erase([MIN], reason="request")
    assert report.version == 3 and report.keys.tolist() == [MIN]
    assert store.as_of(1).keys().tolist() == [3, MAX]
    with pytest.raises(DuplicateKeyError):  # unique for all time, erased included
        store.append(pa.table({"key": [MIN], "ts": [1]}))
    assert store.version == 3


def test_the_smallest_int64_key_has_scores_and_the_cli_erases_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"key": [MIN, 3], "ts": [1, 2]}))
    store.scores.write("loss", [MIN, 3], [0.5, 0.25])
    assert store.scores.as_of(None, "loss").column("key").to_pylist() == [MIN, 3]
    assert main(["erase", path, str(MIN), "--reason", "request"]) == 0
    assert "erased 1 keys in version 3" in capsys.readouterr().out
    again = Store.open(path)
    assert again.version == 3 and again.as_of().keys().tolist() == [3]
    assert again.scores.as_of(None, "loss").column("key").to_pylist() == [3]


# -- a failed write leaves no table it created --------------------------------------------------
@pytest.mark.parametrize("batches", [[], [pa.record_batch({"key": [1, 1], "ts": [1, 2], "x": [1.0, 2.0]})]],
                         ids=["zero rows", "duplicate keys"])
def test_a_failed_first_streamed_append_leaves_no_schema(tmp_path: Path, batches: list[pa.RecordBatch]) -> None:
    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    error = InvalidArgumentError if not batches else DuplicateKeyError
    with pytest.raises(error) as info:
        store.append(pa.RecordBatchReader.from_batches(SCHEMA, batches))
    if error is InvalidArgumentError:
        assert info.value.name == "data"
    assert store.version == 0 and store.schema is None
    assert not os.path.exists(os.path.join(path, "samples.lance"))
    assert Store.open(path).schema is None
    rec = store.append(pa.table({"ts": [1], "text": ["hello"]}))
    assert rec.version == 1
    assert store.schema.names == ["key", "ts", "text"]
    assert store.as_of().to_table().to_pylist() == [{"key": 0, "ts": 1, "text": "hello"}]


def test_a_failed_transaction_removes_the_extension_table_it_created(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(RuntimeError):
        with store.transaction("note") as txn:
            txn.append("notes", pa.table({"n": [1]}))
            raise RuntimeError("boom")
    assert store.version == 0 and store.read_table("notes") is None
    assert "notes" not in store._tables.names()
    with store.transaction("note") as txn:
        txn.append("notes", pa.table({"text": ["a"]}))
    assert store.read_table("notes").column("text").to_pylist() == ["a"]


_KILLED_CREATE = """
import os, signal, sys
import pyarrow as pa
from modyn_store import Store
store = Store.open(sys.argv[1], create=True)
write = store._tables.append
def append(name, data, **kw):
    out = write(name, data, **kw)
    os.kill(os.getpid(), signal.SIGKILL)  # the table is created in Lance, the version not committed
store._tables.append = append
schema = pa.schema([("key", pa.int64()), ("ts", pa.int64()), ("x", pa.float64())])
store.append(pa.RecordBatchReader.from_batches(schema, [pa.record_batch({"key": [5], "ts": [1], "x": [1.0]}, schema=schema)]))
"""


def test_a_table_created_by_a_killed_write_is_removed_by_the_next_open(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    proc = subprocess.run([sys.executable, "-c", _KILLED_CREATE, path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    intent = json.loads(Path(path, "_txn", "intent.json").read_text())
    assert intent == {"version": 1, "op": "append", "created": ["samples"]}
    assert os.path.exists(os.path.join(path, "samples.lance", "_versions"))
    store = Store.open(path)  # recovers: no writer is active
    assert store.version == 0 and store.schema is None
    assert not os.path.exists(os.path.join(path, "samples.lance"))
    assert store.append(pa.table({"ts": [1], "text": ["hello"]})).version == 1
    assert store.schema.names == ["key", "ts", "text"]


def test_an_intent_naming_a_committed_table_as_created_does_not_remove_it(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"ts": [1, 2]}))
    Path(path, "_txn", "intent.json").write_text(json.dumps({"version": 2, "op": "append", "created": ["samples"]}))
    again = Store.open(path)
    assert again.version == 1 and again.as_of().keys().tolist() == [0, 1]
    assert again.schema.names == ["key", "ts"]


# -- take without columns -------------------------------------------------------------------------
def test_take_without_columns_returns_one_row_per_key(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    snap = store.as_of()
    assert snap.to_table(columns=[]).num_rows == 3
    for keys in ([0], [0, 1, 2] * 40, []):
        out = snap.take(keys, columns=[])
        assert out.num_columns == 0 and out.num_rows == len(keys)
    with pytest.raises(UnknownKeyError):
        snap.take([0, 9], columns=[])


# -- a payload column named "version" -----------------------------------------------------------
def test_delta_refuses_a_payload_column_named_version_and_keeps_its_own(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2], "version": [10, 20]}))
    assert store.schema.names == ["key", "ts", "version"]
    with pytest.raises(InvalidArgumentError) as info:
        store.delta(0, 1, columns=["version"])
    assert info.value.name == "columns"
    d = store.delta(0, 1)
    assert d.inserted.column_names == ["key", "ts", "version"]
    assert d.inserted.column("version").to_pylist() == [1, 1]
    assert store.as_of().to_table(["version"]).column("version").to_pylist() == [10, 20]


# -- two writers creating one score with different types -----------------------------------------
def test_a_score_created_meanwhile_with_another_type_is_a_schema_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "s")
    a = Store.open(path, create=True)
    a.append(pa.table({"ts": [1, 2, 3]}))
    b = Store.open(path)
    checked = Scores._column

    def racing(self: Scores, name: str, n: int, values: object) -> pa.Array:
        col = checked(self, name, n, values)
        if self._store is a:  # b creates the score after a's check, before a takes the lock
            b.scores.write("emb", [0, 1], np.ones((2, 4)))
        return col

    monkeypatch.setattr(Scores, "_column", racing)
    with pytest.raises(SchemaMismatchError):
        a.scores.write("emb", [0, 1], np.array([0.5, 0.25]))
    assert a.version == 2 and [r.op for r in a.log()] == ["append", "scores"]
    got = a.scores.as_of(None, "emb")
    assert got.column("key").to_pylist() == [0, 1]
    assert got.schema.field("value").type == pa.list_(pa.float32(), 4)
