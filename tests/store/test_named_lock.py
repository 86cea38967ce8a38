"""The named lock of pipelines and trainings (``core._namedlock``): one holder at a time,
given back when it cannot write its holder line, on local and ``memory://`` stores."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from modyn_store import Store
from modyn_store.core import _namedlock
from modyn_store.core._namedlock import NamedLock
from modyn_store.core.errors import ConflictError


def _busy(holder: str) -> ConflictError:
    return ConflictError(f"busy: {holder}")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_one_holder_at_a_time_and_the_file_removed_on_release(tmp_path: Path, where: str) -> None:
    store = Store.open(str(tmp_path / "s") if where == "local" else "memory://named-lock-test", create=True)
    first = NamedLock(store, "_jobs", "a", _busy).acquire()
    with pytest.raises(ConflictError, match=f"busy: process {os.getpid()} on "):
        NamedLock(store, "_jobs", "a", _busy).acquire()
    NamedLock(store, "_jobs", "b", _busy).acquire().release(remove=True)  # another name: its own lock
    first.release(remove=True)
    assert not os.path.exists(os.path.join(store.path("_jobs"), "a.lock"))
    NamedLock(store, "_jobs", "a", _busy).acquire().release()


def test_a_holder_line_that_cannot_be_written_gives_the_lock_back(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk when the holder wrote its line left the file locked and open: every later
    run of the pipeline in the process was refused as "already running"."""
    store = Store.open(str(tmp_path / "s"), create=True)

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_namedlock.os, "pwrite", full)
    with pytest.raises(OSError, match="No space"):
        NamedLock(store, "_jobs", "a", _busy).acquire()
    monkeypatch.undo()
    NamedLock(store, "_jobs", "a", _busy).acquire().release(remove=True)


def test_names_are_checked(tmp_path: Path) -> None:
    from modyn_store.core.errors import InvalidArgumentError

    store = Store.open(str(tmp_path / "s"), create=True)
    with pytest.raises(InvalidArgumentError, match="training_id"):
        NamedLock(store, "_jobs", "../x", _busy, argument="training_id")
