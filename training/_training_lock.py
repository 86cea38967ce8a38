"""One process at a time per training id whose progress is saved (``save_every=N``).

A training that saves its progress owns ``models/<id>.progress.json`` and the file it names:
it replaces them at every save and removes them when it is done. Two processes that train one
id at once would each replace the other's pointer (a kill leaves whichever saved last), and the
one that records second would have trained for nothing; :func:`~training.progress.discard_progress`
run beside a training would be undone by its next save. So a training with ``save_every=N``
(in :func:`training.train`, and rank 0 of ``train_distributed``) holds a lock for its id from
before it reads its progress until it returns, and :func:`~training.progress.discard_progress`
takes the same lock: a second holder is refused at once with
:class:`~modyn_store.core.errors.ConflictError` naming the training and the process holding it.

On a local store (``memory://`` alike) the lock is an ``flock`` on
``<store>/_trainings/<id>.lock``, which the operating system releases when its process ends,
SIGKILL included. A training that is done (and a discard) removes the file while it holds the
lock; a process that locked the removed file sees that it is no longer the one at the path and
locks the one there now. Stores on object storage (``s3://``) take no lock: there, the second process
to record the training stops with an ``InvalidArgumentError`` on its id and removes its own
progress.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from modyn_store.core._validate import check_name
from modyn_store.core.errors import ConflictError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_DIR", "TrainingLock"]

LOCK_DIR = "_trainings"


def _same_file(fd: int, path: str) -> bool:
    """Whether the open file ``fd`` is still the one at ``path`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class TrainingLock:
    """The lock of training ``training_id`` on ``store`` (see the module docstring);
    :meth:`acquire` raises :class:`ConflictError` when another holder has it."""

    def __init__(self, store: Any, training_id: str) -> None:
        self.store = store
        self.training_id = check_name("training_id", training_id)
        self._fd: int | None = None
        self._path = ""

    def acquire(self, doing: str = "train it") -> TrainingLock:
        """Take the lock at once or raise :class:`ConflictError` (``doing``: what was refused)."""
        uri = str(self.store.uri)
        if self._fd is not None or fcntl is None or ("://" in uri and not uri.startswith("memory://")):
            return self  # held already, or an object store: no lock (see the module docstring)
        folder = self.store.path(LOCK_DIR)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{self.training_id}.lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path):
                    break
                os.close(fd)  # a holder removed the file when it was done: lock the one there now
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                who = f" ({holder})" if holder else ""
                raise ConflictError(
                    f"the progress of training {self.training_id!r} on {uri!r} is held by another training "
                    f"with save_every, or a discard_progress, of that id{who}: cannot {doing} now; wait "
                    "for it to end, or stop it first") from None
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd, self._path = fd, path
        return self

    def release(self, remove: bool = False) -> None:
        """Give the lock back (nothing when it is not held); ``remove``: remove its file first
        (the training is done, or its progress discarded: no lock file stays behind)."""
        fd, self._fd = self._fd, None
        if fd is not None and fcntl is not None:
            try:
                if remove:
                    try:
                        os.unlink(self._path)  # under the lock: a waiter that opened it locks it again
                    except FileNotFoundError:
                        pass
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> TrainingLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release(remove=True)
