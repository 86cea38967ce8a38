"""The small files of a commit: the writer lock, the intent, the fragment-range journal, merges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import ConflictError, CorruptionError, Store
from modyn_store.core import _log, _txn
from modyn_store.core._lock import WriterLock


def _rows(lo: int, hi: int) -> pa.Table:
    keys = np.arange(lo, hi, dtype=np.int64)
    return pa.table({"key": keys, "ts": keys * 10, "x": keys.astype(np.float32)})


# -- the writer lock ------------------------------------------------------------------------
def test_a_lock_file_replaced_between_writes_still_excludes(tmp_path: Path) -> None:
    path = str(tmp_path / "_lock")
    a = WriterLock(path, timeout=0.0)
    with a:
        pass  # a now keeps the lock file open
    os.remove(path)  # someone removes (or replaces) the file
    b = WriterLock(path, timeout=0.0)
    with a:
        with pytest.raises(ConflictError):
            b.__enter__()
    with b:
        with pytest.raises(ConflictError):
            a.__enter__()


_FORK = """
import os, sys, warnings
warnings.simplefilter("ignore")  # Lance warns about forking a process that loaded it
from modyn_store import ConflictError
from modyn_store.core._lock import WriterLock
lock = WriterLock(sys.argv[1], timeout=0.0)
with lock:
    pass  # the lock file is open now, and a forked child inherits it
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    import time
    time.sleep(0.5)  # the parent holds the lock by now
    try:
        with lock:
            os.write(w, b"acquired")
    except ConflictError:
        os.write(w, b"conflict")
    os._exit(0)
os.close(w)
with lock:
    answer = os.read(r, 100).decode()
os.waitpid(pid, 0)
print(answer)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_share_the_parents_lock(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _FORK, str(tmp_path / "_lock")], capture_output=True, text=True,
                         timeout=120, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["conflict"]


_FORK_BESIDE_A_WRITE = """
import os, sys, threading, warnings
warnings.simplefilter("ignore")  # Lance warns about forking a process that loaded it
from modyn_store.core._lock import WriterLock
lock = WriterLock(sys.argv[1], timeout=5.0)
inside, leave = threading.Event(), threading.Event()
def write():
    with lock:
        inside.set()
        leave.wait()
writer = threading.Thread(target=write)
writer.start()
inside.wait()
pid = os.fork()  # while another thread is inside a write through ``lock``
if pid == 0:
    import time
    start = time.monotonic()
    try:
        with lock:  # that thread is not in the child: its write ends in the parent
            # not before the parent's thread left its write (0.3 s after the fork): the OS lock of
            # the child's own open file waits for it
            print("acquired", 0.2 <= time.monotonic() - start < 2.0, flush=True)
    except BaseException as exc:
        print(type(exc).__name__, flush=True)
    os._exit(0)
import time
time.sleep(0.3)
leave.set()
writer.join()
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_beside_a_write_of_another_thread_writes_once_the_parent_is_done(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _FORK_BESIDE_A_WRITE, str(tmp_path / "_lock")], capture_output=True,
                         text=True, timeout=120, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["acquired", "True"]  # not a ConflictError after the 5 s timeout


# -- the intent -----------------------------------------------------------------------------
def test_a_finished_write_leaves_no_pending_intent_and_a_pending_one_is_undone(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(0, 3))
    assert _txn.read_intent(store) is None
    with open(store.path(_txn.INTENT), "rb") as fh:
        assert json.loads(fh.read())["done"] is True
    # an append killed after its rows: the intent says pending, in place over the done one
    store._tables.append("samples", pa.table({"key": [7], "ts": [70], "x": pa.array([7.0], pa.float32()), "_version": [2]}))
    _txn._write_json(store, _txn.INTENT, {"version": 2, "op": "append"})
    assert _txn.read_intent(store) == {"version": 2, "op": "append"}
    again = Store.open(uri)
    assert _txn.read_intent(again) is None
    assert again.append(_rows(3, 5)).version == 2
    assert again.as_of().keys().tolist() == [0, 1, 2, 3, 4]


# -- the fragment-range journal -------------------------------------------------------------
def _no_column_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    read: list[int] = []
    original = lance.LanceFragment.to_table

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        read.append(self.fragment_id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(lance.LanceFragment, "to_table", spy)
    return read


def test_the_journal_gives_every_fragment_range_and_a_torn_line_costs_only_a_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for v in range(5):
        store.append(_rows(10 * v, 10 * v + 10))
    journal = store.path("_meta/samples.fragments.jsonl")
    with open(journal, "rb") as fh:
        lines = [json.loads(x) for x in fh.read().split(b"\n") if x.strip()]
    assert len(lines) == 5  # one appended line per version, not a rewrite
    assert [list(line.values())[0][:2] for line in lines] == [[v, v] for v in range(1, 6)]

    read = _no_column_reads(monkeypatch)
    fresh = Store.open(uri)
    ds = fresh._tables.open("samples")
    assert sorted(fresh._tables.fragment_versions("samples", ds).values()) == [(v, v) for v in range(1, 6)]
    assert read == []  # every range came from the journal
    with open(journal, "ab") as fh:  # a writer killed mid-append leaves a torn line
        fh.write(b'\n{"99": [1, ')
    with open(journal, "rb") as fh:
        body = fh.read()
    last = body.rstrip().rsplit(b"\n", 2)[-2]  # the last whole line, for version 5
    with open(journal, "wb") as fh:
        fh.write(body.replace(last, last[: len(last) // 2]))  # and tear it too
    torn = Store.open(uri)
    assert sorted(torn._tables.fragment_versions("samples", torn._tables.open("samples")).values()) == [
        (v, v) for v in range(1, 6)
    ]
    assert len(read) == 1  # only version 5's fragment was read
    assert [torn.as_of(v).count() for v in range(6)] == [0, 10, 20, 30, 40, 50]
    # the next write appends after the torn bytes on a line of its own
    assert torn.append(_rows(50, 60)).version == 6
    assert Store.open(uri).as_of(6).count() == 60


def test_the_single_object_file_of_earlier_releases_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for v in range(3):
        store.append(_rows(10 * v, 10 * v + 10))
    ds = store._tables.open("samples")
    ranges = store._tables.fragment_versions("samples", ds)
    os.remove(store.path("_meta/samples.fragments.jsonl"))
    rows = {f.fragment_id: f.physical_rows for f in ds.get_fragments()}
    with open(store.path("_meta/samples.fragments.json"), "w") as fh:
        json.dump({str(k): [lo, hi, rows[k]] for k, (lo, hi) in ranges.items()}, fh)
    read = _no_column_reads(monkeypatch)
    old = Store.open(uri)
    assert old._tables.fragment_versions("samples", old._tables.open("samples")) == ranges
    assert read == []
    old.append(_rows(30, 40))  # its writer records the ranges in the journal from now on
    assert Store.open(uri).as_of(2).count() == 20


def test_a_writer_never_takes_another_writers_fragments_for_its_own(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    a = Store.open(uri, create=True)
    b = Store.open(uri)
    a.append(_rows(0, 10))
    b.append(_rows(10, 20))
    os.remove(a.path("_meta/samples.fragments.jsonl"))  # b's line is lost (b killed after commit)
    a.append(_rows(20, 30))
    fresh = Store.open(uri)
    assert [fresh.as_of(v).count() for v in range(4)] == [0, 10, 20, 30]
    ds = fresh._tables.open("samples")
    assert sorted(fresh._tables.fragment_versions("samples", ds).values()) == [(1, 1), (2, 2), (3, 3)]


# -- merging small fragments ----------------------------------------------------------------
def test_merges_are_tiered_large_fragments_are_not_rewritten(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(0, 5000))  # version 1: one large fragment
    for v in range(2, 12):  # versions 2..11: ten small ones
        store.append(_rows(5000 + 10 * v, 5010 + 10 * v))
    ds = store._tables.open("samples")
    large = [f for f in ds.get_fragments() if f.physical_rows == 5000]
    assert len(large) == 1
    files = [d.path for d in large[0].data_files()]
    store._tables.compact_if_fragmented("samples", max_fragments=8)
    after = store._tables.open("samples").get_fragments()
    assert len(after) < 8
    kept = [f for f in after if f.fragment_id == large[0].fragment_id]
    assert kept and [d.path for d in kept[0].data_files()] == files  # not rewritten
    fresh = Store.open(uri)
    assert [fresh.as_of(v).count() for v in range(12)] == [0] + [5000 + 10 * i for i in range(11)]
    assert fresh.as_of(6).keys().tolist() == list(range(5000)) + [k for v in range(2, 7) for k in range(5000 + 10 * v, 5010 + 10 * v)]


def test_small_deletes_keep_the_tombstone_table_in_few_fragments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each delete adds a fragment to the tombstone table, which reads without a kept entry
    (object storage, the first process after a delete) read whole: it is merged past
    MAX_FRAGMENTS_READ_WHOLE, not past the 64 fragments other tables may have; every version's
    answer stays as it was, through a key index built on the way."""
    from modyn_store.core._table_maintenance import MAX_FRAGMENTS, MAX_FRAGMENTS_READ_WHOLE

    bound = MAX_FRAGMENTS_READ_WHOLE["tombstones"]
    assert bound < MAX_FRAGMENTS
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(0, 1000))
    counts = []
    for i in range(2 * bound + 5):
        store.delete(keys=[3 * i])
        if i == bound // 2:
            store.index_keys()
        counts.append(len(store._tables.open("tombstones").get_fragments()))
    assert max(counts) <= bound and counts[bound] < counts[bound - 1]  # merged where it passed the bound
    monkeypatch.setenv("MODYN_STORE_READ_CACHE", "off")  # (the tables answer, not kept entries)
    fresh = Store.open(uri)
    for v in range(1, store.version + 1):
        gone = {3 * i for i in range(v - 1)}
        assert fresh.as_of(v).keys().tolist() == [k for k in range(1000) if k not in gone]
    assert fresh.as_of().contains([0, 1, 3 * (2 * bound + 4), 3 * (2 * bound + 5)]).tolist() == [False, True, False, True]


def test_vacuums_keep_the_purged_table_in_few_fragments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each vacuum that purges rows adds a fragment to the purged table, which reads of a
    version without a kept entry read whole: it is merged past its MAX_FRAGMENTS_READ_WHOLE bound
    too, and every version still names the rows vacuum took from it."""
    from modyn_store.core._table_maintenance import MAX_FRAGMENTS_READ_WHOLE

    bound = MAX_FRAGMENTS_READ_WHOLE["purged"]
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(_rows(0, 100))
    counts = []
    for i in range(bound + 3):
        store.delete(keys=[i])
        store.vacuum(keep_versions=1, dry_run=False)
        counts.append(len(store._tables.open("purged").get_fragments()))
    assert counts[: bound] == list(range(1, bound + 1))  # a fragment a vacuum
    assert max(counts) <= bound and counts[bound] < bound  # merged where it passed the bound
    monkeypatch.setenv("MODYN_STORE_READ_CACHE", "off")  # (the tables answer, not kept entries)
    fresh = Store.open(uri)
    assert fresh.as_of(1).unavailable().tolist() == list(range(bound + 3))


# -- record files rewritten for later versions ----------------------------------------------
def test_record_files_are_reused_and_the_log_stays_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    inodes = []
    for v in range(1, 15):
        store.append(_rows(100 * v, 100 * v + v))  # version v inserts v rows
        if os.path.exists(store.path(f"_log/{v:012d}.json")):
            inodes.append(os.stat(store.path(f"_log/{v:012d}.json")).st_ino)
    assert len(set(inodes)) < len(inodes)  # later versions' records live in earlier files
    fresh = Store.open(uri)
    assert [(r.version, r.inserted) for r in fresh.log()] == [(v, v) for v in range(1, 15)]
    assert [fresh.as_of(v).count() for v in range(15)] == [v * (v + 1) // 2 for v in range(15)]


def test_a_free_file_that_is_still_a_record_is_never_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for v in range(1, 6):
        store.append(_rows(10 * v, 10 * v + 1))
    names = sorted(n for n in os.listdir(store.path("_log")) if n.endswith(".json"))
    assert names  # the latest version's record is an object
    record = store.path(f"_log/{names[-1]}")
    with open(record, "rb") as fh:
        body = fh.read()
    # a writer killed between linking a free file as a record and unlinking its free name
    free = store.path(_log.FREE)
    for name in os.listdir(free):
        os.unlink(os.path.join(free, name))
    os.link(record, os.path.join(free, "000000000000"))
    witness = str(tmp_path / "witness")
    os.link(record, witness)  # the record's body, whatever name it has by then
    store.append(_rows(100, 101))
    with open(witness, "rb") as fh:
        assert fh.read() == body
    assert [r.inserted for r in Store.open(uri).log()] == [1] * 6


def test_a_record_read_with_another_versions_body_is_read_again_and_damage_still_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    for v in range(1, 4):
        store.append(_rows(10 * v, 10 * v + 1))
    path2, path3 = store.path("_log/000000000002.json"), store.path("_log/000000000003.json")
    with open(path2, "rb") as fh:
        body2 = fh.read()
    with open(path3, "rb") as fh:
        body3 = fh.read()
    reads = {"n": 0}
    original = store.fs.cat_file

    def racing(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads["n"] += 1
        if path == path3 and reads["n"] <= 2:
            return body2  # the file was rewritten for another version just before this read
        return original(path, *args, **kwargs)

    reader = Store.open(uri)
    monkeypatch.setattr(type(reader.fs), "cat_file", lambda self, path, *a, **k: racing(path, *a, **k))
    assert [r.version for r in reader.log()] == [1, 2, 3]
    with open(path3, "wb") as fh:
        fh.write(body2)  # damage that persists
    with pytest.raises(CorruptionError, match="holds version 2"):
        Store.open(uri).log()
    with open(path3, "wb") as fh:
        fh.write(body3)


# -- the _version column buffer kept between appends ----------------------------------------
def test_every_row_carries_its_own_version_across_appends_of_any_size(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(_rows(0, 70_000))  # version 1: larger than the first buffer
    store.append(_rows(70_000, 70_010))  # version 2: a prefix of the buffer
    batches = [_rows(lo, hi).to_batches()[0] for lo, hi in ((80_000, 80_005), (80_005, 230_005), (230_005, 230_007))]
    store.append(pa.RecordBatchReader.from_batches(batches[0].schema, batches))  # version 3: grows mid-stream
    store.append({"key": np.arange(300_000, 300_003), "ts": np.arange(3), "x": np.zeros(3, np.float32)})
    t = store.samples_dataset().to_table(columns=["key", "_version"])
    got = dict(zip(t.column("key").to_pylist(), t.column("_version").to_pylist()))
    want = {k: 1 for k in range(70_000)} | {k: 2 for k in range(70_000, 70_010)}
    want |= {k: 3 for k in range(80_000, 230_007)} | {k: 4 for k in range(300_000, 300_003)}
    assert got == want
    assert [store.as_of(v).count() for v in range(5)] == [0, 70_000, 70_010, 220_017, 220_020]


# -- what a writer keeps in memory between its writes ----------------------------------------
_OTHER_PROCESS = """
import sys
import numpy as np
from modyn_store import Store
from modyn_store.core import _log
_log.CHECKPOINT_EVERY = 4
s = Store.open(sys.argv[1])
for i in range(9):  # two checkpoints: the log's table moves, record objects leave _log/
    k = np.arange(100 + 10 * i, 110 + 10 * i, dtype=np.int64)
    s.append({"key": k, "ts": k * 10, "x": k.astype(np.float32)})
s.delete(keys=[105])
"""


def test_a_writer_sees_what_another_process_wrote_between_two_of_its_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's table state and the fragment ranges a process keeps are valid only while
    the table has not moved: another process's appends, delete and checkpoints in between
    must be seen by the next read and write (else ranges miss fragments and the log has gaps)."""
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 4)
    uri = str(tmp_path / "s")
    a = Store.open(uri, create=True)
    for i in range(5):  # a checkpoint at 4: the log's table exists
        a.append(_rows(10 * i, 10 * i + 10))
    a.delete(keys=[3])
    assert a.version == 6 and a.as_of().count() == 49
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, uri], capture_output=True, text=True,
                         timeout=300, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = Store.open(uri)
    assert a.version == fresh.version == 16
    assert a.log() == fresh.log()
    assert [r.version for r in a.log()] == list(range(1, 17))
    # every version's keys, through the fragment ranges a kept from before
    for v in range(17):
        assert a.as_of(v).keys().tolist() == fresh.as_of(v).keys().tolist()
    assert a.as_of(15).count() == 49 + 90
    # a's next writes commit on top of the other process's versions and see its rows
    assert a.delete(where="key >= 100").deleted == 89
    record = a.append(_rows(1000, 1010))
    assert (record.version, record.max_key, record.live) == (18, 1009, 59)
    assert Store.open(uri).log() == a.log()


def test_a_checkpoint_killed_before_it_removed_its_objects_is_read_right_by_a_writer_that_kept_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's table moves under a process that keeps its row count: a checkpoint by
    another writer, killed after its table commit and before it moved the record objects."""
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    uri = str(tmp_path / "s")
    a = Store.open(uri, create=True)
    a.append(_rows(0, 10))
    assert a.version == 1  # a has read the log: no table yet
    b = Store.open(uri)
    b.append(_rows(10, 20))

    class Killed(BaseException):
        pass

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed

    monkeypatch.setattr(_log.os, "rename", killed)  # (local record files are moved to .free)
    with pytest.raises(Killed):
        b.append(_rows(20, 30))  # version 3 commits, then its checkpoint dies half-way
    monkeypatch.undo()
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 3)
    assert sorted(n for n in os.listdir(a.path("_log")) if n.endswith(".json")) == [f"{v:012d}.json" for v in (1, 2, 3)]
    assert a._tables.open("versions").count_rows() == 3
    assert a.version == 3 and [r.version for r in a.log()] == [1, 2, 3]
    assert a.append(_rows(30, 40)).version == 4
    assert a.as_of().count() == 40
    fresh = Store.open(uri)
    assert [r.version for r in fresh.log()] == [1, 2, 3, 4] and fresh.as_of(3).count() == 30


def test_the_log_table_going_back_under_a_writer_that_kept_it_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost manifest of the log's table (it goes back to before a checkpoint) is found by a
    process that read the table before: its kept row count is never trusted then."""
    import glob

    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    uri = str(tmp_path / "s")
    a = Store.open(uri, create=True)
    for i in range(4):
        a.append(_rows(10 * i, 10 * i + 10))
    assert a.version == 4
    manifests = sorted(glob.glob(a.path("versions.lance/_versions/*.manifest")), key=os.path.getmtime)
    os.remove(manifests[-1])  # the checkpoint of versions 3 and 4 is lost, their objects are gone
    hint = a.path("versions.lance/_versions/latest_version_hint.json")
    if os.path.exists(hint):
        os.remove(hint)
    with pytest.raises(CorruptionError):
        a.append(_rows(100, 110))
    assert a._tables.open("samples").count_rows() == 40  # nothing written on top


def test_fragment_ranges_are_kept_per_lance_version(tmp_path: Path) -> None:
    """The ranges kept for one Lance version of the samples are not answered for another:
    another writer's fragments get theirs, and a reader of an older checkout gets its own."""
    uri = str(tmp_path / "s")
    a = Store.open(uri, create=True)
    b = Store.open(uri)
    a.append(_rows(0, 10))
    old = a._tables.open("samples")
    assert a._tables.fragment_versions("samples", old) == {0: (1, 1)}
    b.append(_rows(10, 20))
    b.append(_rows(20, 30))
    new = a._tables.open("samples")
    assert sorted(a._tables.fragment_versions("samples", new).values()) == [(1, 1), (2, 2), (3, 3)]
    assert a._tables.fragment_versions("samples", old) == {0: (1, 1)}
    got = a._tables.fragment_versions("samples", new)
    got.clear()  # callers get their own copy
    assert len(a._tables.fragment_versions("samples", new)) == 3


def test_a_streamed_append_raises_its_inputs_own_error_and_writes_nothing(tmp_path: Path) -> None:
    """Lance wraps an error raised while it pulls batches in an OSError; a stream's bad rows get
    the same typed error as a table's, and a broken source its own exception."""
    from modyn_store import InvalidArgumentError

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(3.0)}))
    bad = pa.table({"ts": np.array([5.0, np.nan])})
    with pytest.raises(InvalidArgumentError, match="NaN or infinite event times"):
        store.append(pa.RecordBatchReader.from_batches(bad.schema, bad.to_batches()))

    def broken():  # type: ignore[no-untyped-def]
        yield pa.record_batch({"ts": np.array([7.0])})
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        store.append(pa.RecordBatchReader.from_batches(bad.schema, broken()))
    assert store.version == 1 and store.as_of().keys().tolist() == [0, 1, 2]


def test_a_write_on_a_samples_table_that_lost_its_latest_manifest_is_refused(tmp_path: Path) -> None:
    """Lance would commit on the older manifest and reuse the lost one's number, writing over
    the evidence; the head records the samples table's Lance version, and a write checks it."""
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    for i in range(4):
        store.append(pa.table({"ts": np.arange(i * 10, (i + 1) * 10)}))
    manifests = sorted((path / "samples.lance" / "_versions").glob("*.manifest"))
    latest = min(manifests, key=lambda p: int(p.stem))  # Lance names manifests by 2^64 - 1 - version
    latest.unlink()
    left = sorted(p.name for p in (path / "samples.lance" / "_versions").iterdir())
    again = Store.open(str(path))
    with pytest.raises(CorruptionError, match="latest manifests were lost"):
        again.append(pa.table({"ts": [99]}))
    assert sorted(p.name for p in (path / "samples.lance" / "_versions").iterdir()) == left
    intent = path / "_txn" / "intent.json"  # no write was started
    assert not intent.exists() or json.loads(intent.read_text()).get("done") is True


def test_checkpoints_keep_the_log_table_in_few_fragments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each checkpoint adds a fragment to the log's table, which every process's first read of
    the log reads whole: it is merged past its MAX_FRAGMENTS_READ_WHOLE bound, and the log a
    fresh process reads stays exact."""
    from modyn_store.core._table_maintenance import MAX_FRAGMENTS, MAX_FRAGMENTS_READ_WHOLE

    bound = MAX_FRAGMENTS_READ_WHOLE["versions"]
    assert bound < MAX_FRAGMENTS
    monkeypatch.setattr(_log, "CHECKPOINT_EVERY", 2)
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    counts = []
    for v in range(1, 2 * (3 * bound + 2) + 1):
        store.append(_rows(10 * v, 10 * v + 1))
        if v % 2 == 0:
            counts.append(len(store._tables.open("versions").get_fragments()))
    assert counts[:bound] == list(range(1, bound + 1))  # a fragment a checkpoint
    assert max(counts) <= bound and counts[bound] < bound  # merged where it passed the bound
    assert Store.open(uri).log() == store.log() and [r.version for r in Store.open(uri).log()] == list(range(1, v + 1))
    assert Store.open(uri).as_of().keys().tolist() == [10 * k for k in range(1, v + 1)]
