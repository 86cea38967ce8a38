"""Answers that must never be silently wrong: stale snapshots, purged rows, races, time, filters."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import (
    CorruptionError,
    DataUnavailableError,
    InvalidArgumentError,
    InvalidFilterError,
    ModynStoreError,
    Store,
    UnknownKeyError,
)


@pytest.fixture
def store(store_uri: str) -> Store:
    return Store.open(store_uri, create=True)


def _rows(keys: list[int], label: int = 0) -> pa.Table:
    return pa.table(
        {
            "key": pa.array(keys, pa.int64()),
            "ts": pa.array([k * 10 for k in keys], pa.int64()),
            "label": pa.array([label] * len(keys), pa.int64()),
            "x": pa.array([float(k) * 1.5 for k in keys]),
        }
    )


# -- a snapshot kept across erase and vacuum ------------------------------------------------
def _stale_snapshot(store: Store, erase: int) -> object:
    store.append(_rows([0, 1, 2, 3, 4, 5]))
    old = store.as_of(1)
    assert old.keys().tolist() == [0, 1, 2, 3, 4, 5]  # cached before the maintenance below
    store.delete(keys=[3])
    store.vacuum(keep_versions=1, dry_run=False)
    store.erase([erase], reason="gdpr")
    return old


def test_snapshot_kept_across_erase_never_returns_another_keys_row(store: Store) -> None:
    old = _stale_snapshot(store, erase=2)
    with pytest.raises(UnknownKeyError):
        old.take([2])
    assert 2 not in old.keys().tolist()
    t = old.take([4])
    assert t.column("key").to_pylist() == [4] and t.column("x").to_pylist() == [6.0]


def test_snapshot_kept_across_vacuum_reports_purged_rows(store: Store) -> None:
    old = _stale_snapshot(store, erase=2)
    with pytest.raises(DataUnavailableError):
        old.to_table()
    got = old.to_table(on_unavailable="skip").column("key").to_pylist()
    assert got == [0, 1, 4, 5]
    assert old.unavailable().tolist() == [3]


def test_snapshot_kept_across_erasure_of_the_largest_key(store: Store) -> None:
    old = _stale_snapshot(store, erase=5)
    with pytest.raises(UnknownKeyError):
        old.take([5])
    assert old.take([4, 0]).column("key").to_pylist() == [4, 0]


def _erase_in_other_process(uri: str, key: int) -> None:
    Store.open(uri).erase([key], reason="other process")


def test_snapshot_sees_an_erasure_made_by_another_process(tmp_path: object) -> None:
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    store.append(_rows([0, 1, 2, 3]))
    snap = store.as_of(1)
    assert snap.count() == 4
    p = mp.get_context("spawn").Process(target=_erase_in_other_process, args=(uri, 3))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    with pytest.raises(UnknownKeyError):
        snap.take([3])
    assert snap.to_table().column("key").to_pylist() == [0, 1, 2]


# -- purged rows in scores and deltas ---------------------------------------------------------
def test_scores_as_of_a_purged_version_does_not_drop_rows_silently(store: Store) -> None:
    store.append(_rows(list(range(10))))
    store.scores.write("loss", list(range(10)), np.arange(10, dtype=float))
    store.delete(keys=[1, 2])
    store.vacuum(keep_versions=1, dry_run=False)
    with pytest.raises(DataUnavailableError) as info:
        store.scores.as_of(2, "loss")
    assert sorted(np.asarray(info.value.keys).tolist()) == [1, 2]
    skipped = store.scores.as_of(2, "loss", on_unavailable="skip")
    assert sorted(skipped.column("key").to_pylist()) == [0, 3, 4, 5, 6, 7, 8, 9]
    assert store.scores.as_of(None, "loss").num_rows == 8


def test_delta_over_purged_versions_does_not_drop_rows_silently(store: Store) -> None:
    store.append(_rows([0, 1, 2]))
    store.append(_rows([3, 4, 5]))
    store.delete(keys=[4])
    store.vacuum(keep_versions=1, dry_run=False)
    with pytest.raises(DataUnavailableError):
        store.delta(1, 2)
    d = store.delta(1, 2, on_unavailable="skip")
    assert d.inserted.column("key").to_pylist() == [3, 5]
    assert len(store.delta(0, 1)) == 3  # versions that lost nothing still answer


# -- tags under concurrency ---------------------------------------------------------------------
def _tag_worker(uri: str, name: str, start: float, q: object) -> None:
    store = Store.open(uri)
    while time.time() < start:
        time.sleep(0.001)
    try:
        store.tag(name)
        q.put("ok")  # type: ignore[attr-defined]
    except ModynStoreError as exc:
        q.put(type(exc).__name__)  # type: ignore[attr-defined]


def test_two_processes_cannot_both_create_a_tag(tmp_path: object) -> None:
    uri = str(tmp_path / "s")  # type: ignore[operator]
    Store.open(uri, create=True).append(_rows([0, 1]))
    ctx = mp.get_context("spawn")
    for attempt in range(1):  # the unlocked check lost this race every time (4 of 4 "created")
        q = ctx.Queue()
        start = time.time() + 3.0
        procs = [ctx.Process(target=_tag_worker, args=(uri, f"t{attempt}", start, q)) for _ in range(4)]
        for p in procs:
            p.start()
        results = [q.get(timeout=180) for _ in procs]
        for p in procs:
            p.join(60)
        assert results.count("ok") == 1, results
        store = Store.open(uri)
        assert [r.details.get("tag") for r in store.log() if r.op == "tag"].count(f"t{attempt}") == 1


# -- wall-clock time ---------------------------------------------------------------------------
def test_naive_datetime_is_rejected_not_read_as_utc(store: Store) -> None:
    store.append(_rows([0]))
    store.append(_rows([1]))
    with pytest.raises(InvalidArgumentError, match="timezone"):
        store.as_of(datetime.now() + timedelta(days=1))
    aware = datetime.now().astimezone()
    assert store.as_of(aware).version == 2


# -- filters are expressions, never pasted SQL -------------------------------------------------
@pytest.mark.parametrize("compact", [False, True])
def test_filter_cannot_escape_the_version_bound(store: Store, compact: bool) -> None:
    store.append(_rows([0, 1], label=1))
    store.append(_rows([2, 3], label=1))
    if compact:
        store.compact()
    snap = store.as_of(1)
    for bad in ("label = 1) OR (true", "label = 1 ) OR ( _version > 0"):
        with pytest.raises(InvalidFilterError):
            snap.to_table(filter=bad)
        with pytest.raises(InvalidFilterError):
            store.read_table("samples", 1, filter=bad)
    assert snap.to_table(filter="label = 1 OR true").column("key").to_pylist() == [0, 1]
    assert snap.to_table(filter="key >= 1").column("key").to_pylist() == [1]
    t = store.read_table("samples", 1, filter="label = 1 OR true")
    assert sorted(t.column("key").to_pylist()) == [0, 1]


def test_delete_where_cannot_escape_the_version_bound(store: Store) -> None:
    store.append(_rows([0, 1], label=1))
    with pytest.raises(InvalidFilterError):
        store.delete(where="label = 1) OR (true")
    assert store.version == 1 and store.as_of().count() == 2


# -- readers while maintenance deletes files --------------------------------------------------
@pytest.mark.parametrize("maintenance", ["compact", "erase", "vacuum"])
def test_a_stream_survives_maintenance_that_deletes_its_files(tmp_path: object, maintenance: str) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)  # type: ignore[operator]
    for start in range(0, 400, 50):
        store.append(_rows(list(range(start, start + 50))))
    store.delete(keys=[7, 8])
    snap = store.as_of()
    stream = snap.to_batches(["key", "x"], batch_size=10)
    first = next(stream)
    if maintenance == "compact":
        store.compact()
    elif maintenance == "erase":
        store.erase([399], reason="r")
    else:
        store.vacuum(keep_versions=1, dry_run=False)
    time.sleep(0.2)  # a stream applies an erasure committed meanwhile within 0.1 s
    rest = list(stream)
    keys = np.concatenate([b.column("key").to_numpy() for b in [first, *rest]])
    xs = np.concatenate([b.column("x").to_numpy() for b in [first, *rest]])
    expected = [k for k in range(400) if k not in (7, 8) and not (maintenance == "erase" and k == 399)]
    assert sorted(keys.tolist()) == expected and keys.size == len(expected)
    assert np.array_equal(xs, keys * 1.5)
    taken = snap.take([5, 300, 9])
    assert taken.column("key").to_pylist() == [5, 300, 9]


@pytest.mark.parametrize("maintenance", ["compact", "erase", "vacuum"])
@pytest.mark.parametrize("read", ["keys", "to_table", "take"])
def test_a_read_whose_manifest_lost_its_files_reads_again(tmp_path: object, maintenance: str, read: str) -> None:
    """The interleaving seen across processes, made deterministic: a reader opens the samples
    manifest, then another writer's maintenance deletes that manifest's files, then the reader
    reads."""
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    for start in range(0, 200, 20):
        store.append(_rows(list(range(start, start + 20))))
    store.delete(keys=[3, 4])
    other = Store.open(uri)  # another writer (its own lock handle)
    reader = Store.open(uri)
    snap = reader.as_of()
    opened = reader._tables.open
    fired = []

    def open_then_maintain(name: str) -> object:
        ds = opened(name)
        # the schema lookups open the manifest too, but read no data file
        if name == "samples" and not fired and sys._getframe(1).f_code.co_name != "schema":
            fired.append(name)
            if maintenance == "compact":
                other.compact()
            elif maintenance == "erase":
                other.erase([199], reason="r")
            else:
                other.vacuum(keep_versions=1, dry_run=False)
        return ds

    reader._tables.open = open_then_maintain  # type: ignore[method-assign]
    live = [k for k in range(200) if k not in (3, 4) and not (maintenance == "erase" and k == 199)]
    if read == "keys":
        assert snap.keys().tolist() == live
    elif read == "to_table":
        t = snap.to_table(["key", "x"])
        assert sorted(t.column("key").to_pylist()) == live
        assert np.array_equal(t.column("x").to_numpy(), t.column("key").to_numpy() * 1.5)
    else:
        t = snap.take([150, 2, 77], ["key", "x"])
        assert t.column("key").to_pylist() == [150, 2, 77] and t.column("x").to_pylist() == [225.0, 3.0, 115.5]
    assert fired


def test_take_racing_an_erase_says_erased_not_damaged(tmp_path: object) -> None:
    """An erase that commits after take checked liveness and before it read the rows."""
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    store.append(_rows(list(range(10))))
    other, reader = Store.open(uri), Store.open(uri)
    snap = reader.as_of()
    assert snap.keys().size == 10  # the live set is cached before the erase
    opened = reader._tables.open
    calls: list[str] = []

    def open_then_erase(name: str) -> object:
        ds = opened(name)
        if name == "samples" and sys._getframe(1).f_code.co_name == "_retrying":
            calls.append(name)
            if len(calls) == 2:  # take's row-id lookup, after the liveness check
                other.erase([5], reason="r")
        return ds

    reader._tables.open = open_then_erase  # type: ignore[method-assign]
    with pytest.raises(UnknownKeyError, match="erased"):
        snap.take([6, 5])
    assert len(calls) >= 2
    assert snap.take([6]).column("key").to_pylist() == [6]


def test_a_log_read_whose_files_were_removed_reads_again(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader opens the version log, then another writer's maintenance compacts the log and
    removes the files of that manifest, then the reader reads the log: it reads the new one."""
    from modyn_store.core import _log

    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)  # the log's table holds versions 1-6
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    for start in range(0, 60, 10):
        store.append(_rows(list(range(start, start + 10))))
    store.delete(keys=[3])
    other = Store.open(uri)
    reader = Store.open(uri)
    opened, moved_on = reader._tables.open, reader._tables.moved_on
    fired = []

    def maintain() -> None:
        if sys._getframe(2).f_code.co_name == "_state" and not fired:
            fired.append(True)
            other._tables.compact("versions")
            other._tables.cleanup("versions")

    def open_then_maintain(name: str) -> object:
        ds = opened(name)
        if name == "versions":
            maintain()
        return ds

    def maintain_then_check(name: str, ds: object) -> bool:
        # the reader keeps the log's table as it last found it (from Store.open): the
        # maintenance runs after it took that dataset, before it checks and reads it
        if name == "versions":
            maintain()
        return moved_on(name, ds)  # type: ignore[arg-type]

    reader._tables.open = open_then_maintain  # type: ignore[method-assign]
    reader._tables.moved_on = maintain_then_check  # type: ignore[method-assign]
    assert [r.version for r in reader.log()] == list(range(1, 8))
    assert fired
    assert reader.as_of(6).keys().tolist() == list(range(60))
    assert reader.as_of().keys().tolist() == [k for k in range(60) if k != 3]


@pytest.mark.parametrize("bad", [12345, None, "", "zz", "1" * 17, ["00"]])
def test_a_record_with_a_malformed_checksum_is_damage_not_a_skipped_check(tmp_path, bad) -> None:  # type: ignore[no-untyped-def]
    # A record from before checksums has no "checksum" at all and is read unchecked; one that
    # holds something else must not switch the check off.
    import json

    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(_rows([1, 2, 3]))
    s.append(_rows([4, 5]))
    path = os.path.join(uri, "_log", f"{2:012d}.json")
    with open(path) as fh:
        row = json.load(fh)
    with open(path, "w") as fh:  # changed under its digest: damage before any field is used
        json.dump({**row, "details": json.dumps({"checksum": bad})}, fh)
    with pytest.raises(CorruptionError, match="does not match its digest"):
        Store.open(uri).as_of(2).keys()
    del row["digest"]  # a record of an earlier release (no digest): its fields are checked
    details = json.loads(row["details"])
    details["checksum"] = bad
    row["details"] = json.dumps(details)
    with open(path, "w") as fh:
        json.dump(row, fh)
    with pytest.raises(CorruptionError, match="malformed key checksum"):
        Store.open(uri).as_of(2).keys()
    from modyn_store.core.verify import verify

    assert any("checksum" in f.what for f in verify(uri).findings)
    del details["checksum"]  # a record without one: the count is still checked, not the keys
    row["details"] = json.dumps(details)
    with open(path, "w") as fh:
        json.dump(row, fh)
    assert Store.open(uri).as_of(2).keys().tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("read", ["keys", "iter_keys", "to_batches", "take"])
def test_a_samples_manifest_removed_under_a_read_is_read_again(
    store: Store, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """Lance reports a manifest that a concurrent cleanup removed under a lazily read part of
    it as ``ValueError("Not found: ...")``: every samples read retries it, as it retries a
    vanished data file. Any other ``ValueError`` reaches the caller as it was raised."""
    from modyn_store.core import _lookup
    from modyn_store.core.snapshot import Snapshot

    store.append(_rows(list(range(40))))
    store.delete(keys=[3, 17])
    want = sorted(set(range(40)) - {3, 17})
    raised: list[str] = []

    def failing(message: str) -> object:
        raised.append(message)
        raise ValueError(message)
        yield  # pragma: no cover

    def once(message: str, m: pytest.MonkeyPatch) -> None:
        """The first read of the samples raises ``ValueError(message)``."""
        if read == "take":  # reads rows by row id, not through the scanners
            real_take = _lookup.take

            def take(*args: object) -> object:
                if not raised:
                    list(failing(message))
                return real_take(*args)  # type: ignore[arg-type]

            m.setattr(_lookup, "take", take)
            return
        real = Snapshot._readers

        def readers(self: Snapshot, *args: object, **kwargs: object) -> list[object]:
            got = real(self, *args, **kwargs)
            return got if raised else [failing(message), *got[1:]]

        m.setattr(Snapshot, "_readers", readers)

    def run() -> list[int]:
        snap = store.as_of()
        if read == "keys":
            return snap.keys().tolist()
        if read == "iter_keys":
            return sorted(int(k) for a in snap.iter_keys(batch_size=8) for k in a)
        if read == "to_batches":
            return sorted(k for b in snap.to_batches(batch_size=8) for k in b.column("key").to_pylist())
        return sorted(snap.take(want, ["key", "x"]).column("key").to_pylist())

    with monkeypatch.context() as m:
        once("Not found: samples.lance/_versions/18446744073709551613.manifest", m)
        assert run() == want
    assert raised  # the read met the error, and read again
    raised.clear()
    before = store.version
    with monkeypatch.context() as m:
        once("something else", m)
        with pytest.raises(ValueError, match="something else") as info:
            run()
    assert raised and not isinstance(info.value, CorruptionError)
    assert store.version == before and store.as_of().keys().tolist() == want


@pytest.mark.parametrize("on_unavailable", ["error", "skip"])
def test_a_stream_whose_rows_a_concurrent_vacuum_purges_says_so(tmp_path: object, on_unavailable: str) -> None:
    """A stream that resumes after a vacuum removed its files re-checks what was purged: rows it
    has not read yet are an error (default), or skipped when asked; never dropped silently."""
    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    n, parts = 300, 40
    for i in range(parts):  # many fragments: the stream has not opened the late ones yet
        store.append(pa.table({"key": np.arange(i * n, (i + 1) * n), "ts": np.arange(i * n, (i + 1) * n)}))
    snap = store.as_of()
    stream = snap.to_batches(batch_size=100, on_unavailable=on_unavailable)  # type: ignore[arg-type]
    got = [next(stream)]
    purged = np.arange(30 * n, 31 * n)
    other = Store.open(uri)
    other.delete(keys=purged)
    other.vacuum(keep_versions=1, dry_run=False)
    assert np.array_equal(snap.unavailable(), purged)
    if on_unavailable == "error":
        with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
            list(stream)
        assert np.array_equal(info.value.keys, purged)
        return
    got += list(stream)
    keys = np.sort(np.concatenate([b.column("key").to_numpy() for b in got]))
    assert np.array_equal(keys, np.setdiff1d(np.arange(parts * n), purged))


def test_a_score_stream_drops_keys_erased_while_it_streams(tmp_path: object) -> None:
    """Like a samples stream, a score stream applies an erase committed meanwhile to the rest of
    the stream (within ERASE_CHECK_S): erased keys' scores are not served after erase returns."""
    from modyn_store.core import _stream

    uri = str(tmp_path / "s")  # type: ignore[operator]
    store = Store.open(uri, create=True)
    keys = np.arange(6000)
    for part in np.array_split(keys, 6):
        store.append(pa.table({"key": part, "ts": part}))
    for part in np.array_split(keys, 6):
        store.scores.write("loss", part, part * 1.0)
    stream = store.scores.batches(None, "loss", batch_size=500)
    first = next(stream)
    assert first.column("key").to_pylist()[0] == 0
    victims = np.arange(4000, 4100)
    Store.open(uri).erase(victims, reason="r")
    time.sleep(_stream.ERASE_CHECK_S * 2)
    rest = np.concatenate([b.column("key").to_numpy() for b in stream])
    assert not np.isin(victims, rest).any()
    assert np.array_equal(np.concatenate([first.column("key").to_numpy(), rest]), np.setdiff1d(keys, victims))
