"""Reads racing another process's writes: answers stay exact, or the read raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import DataUnavailableError, Store

_VACUUM = r"""
import sys
from modyn_store import DataUnavailableError, Store
Store.open(sys.argv[1]).vacuum(keep_versions=1, dry_run=False)
"""

_ERASE_ONE = r"""
import sys
from modyn_store import Store
Store.open(sys.argv[1]).erase([int(sys.argv[2])], reason="r")
"""


def _key_7_deleted(tmp_path: Path) -> tuple[str, Store]:
    """A store of keys 0..99 (version 1) whose key 7 was deleted at version 2, and a second
    ``Store`` object (another reader) on it."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(100), "ts": np.arange(100)}))
    store.delete(keys=[7])
    return uri, Store.open(uri)


def test_contains_racing_a_vacuum_still_counts_the_purged_row_live(tmp_path: Path) -> None:
    """A point lookup looked at the log, then another process vacuumed (committed, and removed
    the rows) before the samples were read: the key, live at the snapshot's version, is still
    live (purged rows count as live), not "absent"."""
    uri, reader = _key_7_deleted(tmp_path)
    snap = reader.as_of(1)
    assert snap.contains([7, 8]).tolist() == [True, True]
    opened = reader._tables.open
    fired: list[int] = []

    def open_after_a_vacuum(name: str) -> Any:
        if name == "samples" and sys._getframe(1).f_code.co_name == "_retrying" and not fired:
            fired.append(1)
            done = subprocess.run([sys.executable, "-c", _VACUUM, uri], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return opened(name)

    reader._tables.open = open_after_a_vacuum  # type: ignore[method-assign]
    assert snap.contains([7, 8, 500]).tolist() == [True, True, False]
    assert fired == [1]
    assert snap.unavailable().tolist() == [7]


def _racing_vacuum(reader: Store, uri: str, tables: tuple[str, ...], caller: str | None) -> list[int]:
    """Make ``reader``'s first open of one of ``tables`` (from a function named ``caller``, if
    given) run another process's vacuum first; returns the list that records it ran."""
    opened = reader._tables.open
    fired: list[int] = []

    def open_after_a_vacuum(name: str) -> Any:
        if name in tables and not fired and (caller is None or sys._getframe(1).f_code.co_name == caller):
            fired.append(1)
            done = subprocess.run([sys.executable, "-c", _VACUUM, uri], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return opened(name)

    reader._tables.open = open_after_a_vacuum  # type: ignore[method-assign]
    return fired


def test_a_stream_opened_after_a_vacuum_checked_it_raises(tmp_path: Path) -> None:
    """``to_table`` checked for purged rows, then another process vacuumed before the stream
    opened its files: the purged row is an error (the default), not a shorter table."""
    uri, reader = _key_7_deleted(tmp_path)
    snap = reader.as_of(1)
    fired = _racing_vacuum(reader, uri, ("samples",), "_retrying")
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        snap.to_table()
    assert fired == [1] and info.value.keys.tolist() == [7]
    kept = snap.to_table(on_unavailable="skip").column("key").to_numpy()
    assert np.array_equal(np.sort(kept), np.setdiff1d(np.arange(100), [7]))


def test_a_delta_read_after_a_vacuum_checked_it_raises(tmp_path: Path) -> None:
    """``delta`` checked for purged inserts, then another process vacuumed before it read the
    inserted rows: the purged row is an error (the default), not missing from ``inserted``."""
    uri, reader = _key_7_deleted(tmp_path)
    fired = _racing_vacuum(reader, uri, ("samples",), "_inserted")
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        reader.delta(0, 1)
    assert fired == [1] and info.value.keys.tolist() == [7]
    kept = reader.delta(0, 1, on_unavailable="skip").inserted.column("key").to_numpy()
    assert np.array_equal(kept, np.setdiff1d(np.arange(100), [7]))


@pytest.mark.ray  # (CI runs it in its Ray step, where Ray is installed)
def test_a_ray_dataset_planned_after_a_vacuum_checked_it_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``to_ray`` checked for purged rows, then another process vacuumed before it read the
    samples manifest its Dataset reads: an error (the default), not a Dataset without the row."""
    pytest.importorskip("ray.data")
    from modyn_store.core import ray_io

    planned: list[int] = []  # the Dataset itself is not needed: it would read the purged files
    monkeypatch.setattr(ray_io, "_read", lambda ray, store, ds, *rest: planned.append(ds.version))
    uri, reader = _key_7_deleted(tmp_path)
    snap = reader.as_of(1)
    fired = _racing_vacuum(reader, uri, ("samples",), "to_ray")
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        snap.to_ray()
    assert fired == [1] and info.value.keys.tolist() == [7] and planned == []


def test_scores_read_after_a_vacuum_checked_them_raise(tmp_path: Path) -> None:
    """``scores.as_of`` checked for purged rows, then another process vacuumed (purging the
    score of a key live at the version) before the score table was read: an error, not a
    table without that key's score."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(100), "ts": np.arange(100)}))
    store.scores.write("loss", np.arange(100), np.arange(100) * 1.0)  # version 2
    store.delete(keys=[7])
    reader = Store.open(uri)
    fired = _racing_vacuum(reader, uri, ("scores/loss",), None)
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        reader.scores.as_of(2, "loss")
    assert fired == [1] and info.value.keys.tolist() == [7]
    kept = reader.scores.as_of(2, "loss", on_unavailable="skip").column("key").to_numpy()
    assert np.array_equal(kept, np.setdiff1d(np.arange(100), [7]))


def test_a_score_stream_resuming_after_a_vacuum_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A score stream whose file vanished (as a concurrent vacuum's rewrite removes it) after
    another process's vacuum purged rows it has not yielded yet resumes on the new files and
    raises for them, instead of leaving their scores out."""
    from modyn_store.core import _score_stream

    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": np.arange(60000)}))
    for i in range(3):
        keys = np.arange(i, 60000, 2)
        store.scores.write("loss", keys, np.full(keys.size, float(i)))
    version = store.version
    purged = np.arange(50000, 50010)
    real = _score_stream._readers
    builds: list[object] = []

    def vanishing(*args: Any, **kwargs: Any) -> list[tuple[Any, int]]:
        builds.append(args[3])
        readers = real(*args, **kwargs)
        if len(builds) > 1:
            return readers

        def broken(it: Any) -> Any:
            for n, batch in enumerate(it):
                if n == 3:
                    other = Store.open(uri)
                    other.delete(keys=purged)
                    other.vacuum(keep_versions=1, dry_run=False)
                    raise OSError("Not found: a data file the vacuum removed")
                yield batch

        return [(broken(r), w) for r, w in readers]

    monkeypatch.setattr(_score_stream, "_readers", vanishing)
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        list(store.scores.batches(version, "loss", batch_size=4096))
    assert builds == [None]  # the resume checked before it read again
    assert info.value.keys.tolist() == purged.tolist()
    monkeypatch.setattr(_score_stream, "_readers", real)
    kept = store.scores.as_of(version, "loss", on_unavailable="skip").column("key").to_numpy()
    assert np.array_equal(kept, np.setdiff1d(np.arange(60000), purged))


_DELETE_AND_VACUUM = r"""
import sys
import numpy as np
from modyn_store import Store
store = Store.open(sys.argv[1])
store.delete(keys=np.arange(int(sys.argv[2]), int(sys.argv[3])))
store.vacuum(keep_versions=1, dry_run=False)
"""


def test_a_resuming_stream_that_a_vacuum_races_says_so(tmp_path: Path) -> None:
    """A stream whose files a compaction removed resumes; another process's vacuum that
    commits after the resume's check for purged rows and before it opens the new files makes
    unread rows of the stream's version unavailable: an error, not a shorter stream."""
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    n, parts = 300, 40
    for i in range(parts):  # many fragments: the stream has not opened the late ones yet
        store.append(pa.table({"key": np.arange(i * n, (i + 1) * n), "ts": np.arange(i * n, (i + 1) * n)}))
    reader = Store.open(uri)
    snap = reader.as_of()
    stream = snap.to_batches(batch_size=100)
    first = next(stream)
    Store.open(uri).compact()  # removes the files the stream started from
    purged = (30 * n, 31 * n)
    opened = reader._tables.open
    fired: list[int] = []

    def open_after_a_vacuum(name: str) -> Any:
        if name == "samples" and not fired and sys._getframe(1).f_code.co_name == "live_stream":
            fired.append(1)
            args = [sys.executable, "-c", _DELETE_AND_VACUUM, uri, str(purged[0]), str(purged[1])]
            done = subprocess.run(args, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return opened(name)

    reader._tables.open = open_after_a_vacuum  # type: ignore[method-assign]
    with pytest.raises(DataUnavailableError, match="purged by vacuum") as info:
        list(stream)
    assert fired == [1] and first.num_rows == 100
    assert info.value.keys.tolist() == list(range(*purged))


def test_a_score_batch_assembled_across_an_erase_drops_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A score stream batch is assembled from several merge steps; another process's erase that
    returns (and ERASE_CHECK_S passes) after the first step, before the batch is yielded: the
    erased key's score is not in that batch, as a samples stream would drop it."""
    import time

    from modyn_store.core import _score_stream, _stream

    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(60000), "ts": np.arange(60000)}))
    for lo in (0, 20000, 40000):  # three runs, one after the other in key order
        keys = np.arange(lo, lo + 20000)
        store.scores.write("loss", keys, keys * 1.0)
    merge = _score_stream._merge
    erased: list[int] = []

    def erase_after_the_first_step(*args: Any, **kwargs: Any) -> Any:
        for n, step in enumerate(merge(*args, **kwargs)):
            yield step
            if n == 0:  # the first step (keys from 0) waits to be coalesced into a batch
                done = subprocess.run([sys.executable, "-c", _ERASE_ONE, uri, "5"], capture_output=True, text=True)
                assert done.returncode == 0, done.stderr
                erased.append(1)
                time.sleep(_stream.ERASE_CHECK_S * 2)

    monkeypatch.setattr(_score_stream, "_merge", erase_after_the_first_step)
    first = next(store.scores.batches(None, "loss", batch_size=30000))
    assert erased == [1] and first.num_rows > 10000  # several steps made the batch
    assert 5 not in first.column("key").to_pylist()


def test_keys_racing_two_erases_is_not_damage(tmp_path: Path) -> None:
    """Another process erases a key while ``keys()`` reads, and again while it reads once more:
    the store is not damaged, so the answer is the live set (not ``CorruptionError``)."""
    uri = str(tmp_path / "s")
    Store.open(uri, create=True).append(pa.table({"key": np.arange(100), "ts": np.arange(100)}))
    reader = Store.open(uri)
    snap = reader.as_of(1)
    opened = reader._tables.open
    erased: list[int] = []

    def open_after_an_erase(name: str) -> Any:
        if name == "samples" and sys._getframe(1).f_code.co_name == "_retrying" and len(erased) < 2:
            erased.append(len(erased) + 1)
            args = [sys.executable, "-c", _ERASE_ONE, uri, str(erased[-1])]
            done = subprocess.run(args, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return opened(name)

    reader._tables.open = open_after_an_erase  # type: ignore[method-assign]
    assert snap.keys().tolist() == [0, *range(3, 100)]
    assert erased == [1, 2]


def test_a_score_stream_overtaken_on_every_attempt_is_a_conflict_not_damage(tmp_path: Path) -> None:
    """Another process erases (rewriting the score table, removing its old files) each time
    the score stream opened the table and before it read: every attempt fails on a file the
    latest manifest no longer uses. The store is not damaged: ``ConflictError`` (read again),
    not ``CorruptionError``."""
    from modyn_store import ConflictError
    from modyn_store.core._failures import READ_ATTEMPTS

    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"key": np.arange(100), "ts": np.arange(100)}))
    for lo in range(0, 100, 10):
        store.scores.write("loss", np.arange(lo, lo + 10), np.ones(10))
    reader = Store.open(uri)
    opened = reader._tables.open
    erased: list[int] = []

    def open_then_erase(name: str) -> Any:
        ds = opened(name)
        if name == "scores/loss" and sys._getframe(1).f_code.co_name == "stream_latest":
            erased.append(len(erased))
            args = [sys.executable, "-c", _ERASE_ONE, uri, str(len(erased))]
            done = subprocess.run(args, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
        return ds

    reader._tables.open = open_then_erase  # type: ignore[method-assign]
    with pytest.raises(ConflictError, match="read again"):
        reader.scores.as_of(None, "loss")
    assert len(erased) == READ_ATTEMPTS
    reader._tables.open = opened  # type: ignore[method-assign]
    assert reader.scores.as_of(None, "loss").column("key").to_pylist() == [0, *range(READ_ATTEMPTS + 1, 100)]
