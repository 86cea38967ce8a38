"""The store's read and write API on every backend."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modyn_store import (
    DataUnavailableError,
    DuplicateKeyError,
    InvalidArgumentError,
    NestedWriteError,
    Store,
    UnknownKeyError,
)


@pytest.fixture
def store(store_uri: str) -> Store:
    return Store.open(store_uri, create=True)


def _rows(keys: list[int]) -> pa.Table:
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.repeat(np.array(keys, np.float32), 4)), 4)
    return pa.table(
        {
            "key": pa.array(keys, pa.int64()),
            "ts": pa.array([k * 10 for k in keys], pa.int64()),
            "label": pa.array([k % 3 for k in keys], pa.int64()),
            "emb": emb,
            "text": [f"t{k}" for k in keys],
            "img": pa.array([bytes([k % 256]) * 5 for k in keys], pa.binary()),
        }
    )


def test_payload_types_round_trip(store: Store) -> None:
    store.append(_rows([1, 2, 3]))
    t = store.as_of().to_table()
    assert t.column_names == ["key", "ts", "label", "emb", "text", "img"]
    assert t.column("emb").to_pylist()[1] == [2.0] * 4
    assert t.column("img").to_pylist()[2] == bytes([3]) * 5


def test_reopen_sees_same_store(store: Store) -> None:
    store.append(_rows([1, 2]))
    again = Store.open(store.uri)
    assert again.version == 1 and again.as_of().keys().tolist() == [1, 2]


def test_stream_and_pandas_input(store: Store) -> None:
    reader = pa.RecordBatchReader.from_batches(_rows([1]).schema, _rows([1, 2, 3, 4]).to_batches(max_chunksize=1))
    assert store.append(reader).inserted == 4
    df = pd.DataFrame({"ts": [5, 6], "x": [1.0, 2.0]})
    other = Store.open(store.uri + "-pd" if "://" not in store.uri else store.uri + "pd", create=True)
    rec = other.append(df)
    assert rec.inserted == 2 and other.as_of().keys().tolist() == [0, 1]


def test_column_roles_are_renamed(store: Store) -> None:
    store.append(pa.table({"id": [7, 8], "when": [1, 2], "y": [1, 0], "f": [0.5, 0.25]}), key="id", ts="when", label="y")
    t = store.as_of().to_table()
    assert t.column_names == ["key", "ts", "label", "f"]
    assert t.column("label").to_pylist() == [1, 0]


def test_assigned_keys_continue_after_largest(store: Store) -> None:
    store.append(pa.table({"key": [100], "ts": [1]}))
    store.append(pa.table({"ts": [2, 3]}))
    assert store.as_of().keys().tolist() == [100, 101, 102]


def test_as_of_by_tag_and_time(store: Store) -> None:
    store.append(_rows([1]))
    store.tag("first")
    store.append(_rows([2]))
    t1 = store.log()[0].time
    assert store.as_of("first").keys().tolist() == [1]
    assert store.as_of(t1).keys().tolist() == [1]
    assert store.as_of(datetime.now(timezone.utc) + timedelta(days=1)).version == store.version
    store.untag("first")
    assert "first" not in store.tags()


def test_diff_and_delta(store: Store) -> None:
    store.append(_rows([5, 1, 3]))
    store.append(_rows([9, 7]))
    store.delete(keys=[1, 9])
    d = store.diff(1, 3)
    assert d.inserted.tolist() == [7] and d.deleted.tolist() == [1]
    delta = store.delta(0, 2, columns=["text"])
    assert delta.inserted.column("key").to_pylist() == [1, 3, 5, 7, 9]  # by (version, ts, key)
    assert delta.inserted.column("version").to_pylist() == [1, 1, 1, 2, 2]
    assert delta.inserted.column_names == ["key", "ts", "label", "text", "version"]
    d3 = store.delta(2, 3)
    assert len(d3) == 0 and d3.deleted.tolist() == [1, 9]


def test_take_keeps_order_and_rejects_dead_keys(store: Store) -> None:
    store.append(_rows([1, 2, 3, 4]))
    store.delete(keys=[2])
    t = store.as_of().take([4, 1, 3], ["text"])
    assert t.column("text").to_pylist() == ["t4", "t1", "t3"]
    assert store.as_of(1).take([2], ["text"]).column("text").to_pylist() == ["t2"]
    with pytest.raises(UnknownKeyError, match="not live"):
        store.as_of().take([2])


def test_to_batches_streams_with_filter(store: Store) -> None:
    store.append(_rows(list(range(100))))
    store.delete(keys=[0, 3, 6])
    batches = list(store.as_of().to_batches(["key"], "label = 0", batch_size=10))
    assert all(b.num_rows <= 10 for b in batches)
    keys = sorted(k for b in batches for k in b.column(0).to_pylist())
    assert keys == [k for k in range(100) if k % 3 == 0 and k not in (0, 3, 6)]


def test_scores_latest_per_key_and_vectors(store: Store) -> None:
    store.append(_rows([1, 2, 3]))
    v1 = store.scores.write("loss", [1, 2], [0.5, 0.6], training_id="t-1").version
    store.scores.write("loss", [2, 3], [0.9, 0.1])
    store.delete(keys=[3])
    latest = store.scores.as_of(None, "loss").to_pydict()
    assert latest["key"] == [1, 2] and latest["value"] == [0.5, 0.9]
    assert store.scores.as_of(v1, "loss").column("training_id").to_pylist() == ["t-1", "t-1"]
    store.scores.write("emb", [1, 2], np.ones((2, 3)))
    emb = store.scores.as_of(None, "emb")
    assert emb.column("value").type.list_size == 3
    assert sorted(store.scores.names()) == ["emb", "loss"]


def test_transaction_rolls_back_on_error(store: Store) -> None:
    store.append(_rows([1]))
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction("note") as txn:
            txn.append("notes", pa.table({"text": ["x"]}))
            raise RuntimeError("boom")
    assert store.version == 1
    assert store.read_table("notes") is None or store.read_table("notes").num_rows == 0
    with store.transaction("note", message="ok") as txn:
        txn.append("notes", pa.table({"text": ["y"]}))
    assert store.read_table("notes").column("text").to_pylist() == ["y"]
    assert store.log()[-1].op == "note"


def test_a_write_inside_an_open_transaction_of_the_same_store_is_refused_at_once(store_uri: str) -> None:
    store = Store.open(store_uri, create=True, lock_timeout=5.0)
    store.append(_rows([1, 2]))
    done: list[int] = []
    with store.transaction("note") as txn:
        txn.append("notes", pa.table({"text": ["x"]}))
        start = time.monotonic()
        for write in (lambda: store.erase([1], reason="r"), lambda: store.append(_rows([3])),
                      lambda: store.delete(keys=[2]), lambda: store.transaction("note").__enter__()):
            with pytest.raises(NestedWriteError, match="nested inside an open transaction"):
                write()
        assert time.monotonic() - start < 2.0  # not after the lock's timeout
        # another thread's write is no nested one: it waits for the lock, then commits
        other = threading.Thread(target=lambda: done.append(store.append(_rows([4])).version))
        other.start()
        time.sleep(0.3)
        assert not done
    other.join(10)
    assert done == [3] and store.log()[1].op == "note"
    assert store.read_table("notes").column("text").to_pylist() == ["x"]
    assert store.as_of().keys().tolist() == [1, 2, 4]  # nothing of the refused writes
    assert store.erase([1], reason="r").version == 4  # the lock is free again


def test_a_write_nested_through_a_second_handle_of_the_store_is_refused_at_once(store_uri: str) -> None:
    # a small lock_timeout: a write that waited for the lock would fail with ConflictError, not hang
    first = Store.open(store_uri, create=True, lock_timeout=1.5)
    first.append(_rows([1, 2]))
    second = Store.open(store_uri, lock_timeout=1.5)
    done: list[int] = []
    with first.transaction("note") as txn:
        txn.append("notes", pa.table({"text": ["x"]}))
        start = time.monotonic()
        for write in (lambda: second.append(_rows([3])), lambda: second.erase([1], reason="r"),
                      lambda: second.tag("t"), lambda: second.transaction("note").__enter__(),
                      lambda: Store.open(store_uri, lock_timeout=1.5).delete(keys=[2])):
            with pytest.raises(NestedWriteError, match="through another handle of the store"):
                write()
        assert time.monotonic() - start < 1.0  # at once, not after the lock's timeout
        # another thread's write through the second handle waits for the lock, then commits
        other = threading.Thread(target=lambda: done.append(Store.open(store_uri, lock_timeout=10.0)
                                                            .append(_rows([4])).version))
        other.start()
        time.sleep(0.3)
        assert not done
    other.join(10)
    assert done == [3] and [r.op for r in second.log()] == ["append", "note", "append"]
    assert second.as_of().keys().tolist() == [1, 2, 4] and second.tags() == {}  # nothing of the refused writes
    assert second.append(_rows([5])).version == 4 and first.erase([1], reason="r").version == 5  # both free


def test_two_handles_in_two_threads_wait_for_each_other(store_uri: str) -> None:
    Store.open(store_uri, create=True).append(_rows([0]))
    versions: list[int] = []
    errors: list[BaseException] = []

    def write(first_key: int) -> None:
        handle = Store.open(store_uri, lock_timeout=20.0)
        try:
            for k in range(first_key, first_key + 5):
                versions.append(handle.append(_rows([k])).version)
        except BaseException as exc:  # noqa: BLE001  (asserted empty below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in (10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and sorted(versions) == list(range(2, 17))
    assert Store.open(store_uri).as_of().count() == 16


def test_vacuum_reports_unavailable_rows(store: Store) -> None:
    store.append(_rows([1, 2, 3]))
    store.delete(keys=[2])
    store.append(_rows([4]))
    dry = store.vacuum(keep_versions=1)
    assert dry.dry_run and dry.keys.tolist() == [2] and store.version == 3
    done = store.vacuum(keep_versions=1, dry_run=False)
    assert done.keys.tolist() == [2] and store.version == 4
    old = store.as_of(1)
    assert old.keys().tolist() == [1, 2, 3]
    assert old.unavailable().tolist() == [2]
    with pytest.raises(DataUnavailableError) as info:
        old.to_table()
    assert info.value.keys.tolist() == [2]
    assert old.to_table(on_unavailable="skip").column("key").to_pylist() == [1, 3]
    assert store.as_of().unavailable().size == 0


def test_several_scores_in_one_version(store: Store) -> None:
    store.append(_rows([1, 2, 3]))
    rec = store.scores.write_many([1, 3], {"loss": [0.5, 0.25], "entropy": [1.0, 2.0]}, training_id="t-2")
    assert rec.version == 2 and rec.details["scores"] == ["entropy", "loss"]
    assert store.scores.as_of(2, "entropy").column("value").to_pylist() == [1.0, 2.0]
    before = store.version
    with pytest.raises(InvalidArgumentError, match="NaN or inf"):
        store.scores.write_many([1], {"loss": [0.1], "entropy": [float("nan")]})
    assert store.version == before
    assert store.scores.as_of(None, "loss").column("value").to_pylist() == [0.5, 0.25]


def test_vacuumed_keys_cannot_be_reused(store: Store) -> None:
    store.append(_rows([1, 2]))
    store.delete(keys=[2])
    store.vacuum(keep_versions=1, dry_run=False)
    with pytest.raises(DuplicateKeyError, match="already exist"):
        store.append(_rows([2]))
    assert store.as_of(1).unavailable().tolist() == [2]


@pytest.mark.parametrize("table", ["samples", "tombstones", "erasures", "purged", "versions", "tags"])
def test_a_transaction_cannot_write_the_stores_own_tables(store: Store, table: str) -> None:
    # raw rows in `samples` would bypass the key checks; raw tombstones would delete without a record
    store.append(_rows([1, 2]))
    before = store.version
    with pytest.raises(InvalidArgumentError, match="extension table"):
        with store.transaction("note") as txn:
            txn.append(table, pa.table({"key": pa.array([1], pa.int64())}))
    assert store.version == before
    assert store.as_of().keys().tolist() == [1, 2]
