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

from typing import Any

from modyn_store.core._namedlock import NamedLock
from modyn_store.core.errors import ConflictError

__all__ = ["LOCK_DIR", "TrainingLock"]

LOCK_DIR = "_trainings"


class TrainingLock:
    """The lock of training ``training_id`` on ``store`` (see the module docstring);
    :meth:`acquire` raises :class:`ConflictError` when another holder has it."""

    def __init__(self, store: Any, training_id: str) -> None:
        self.store = store
        self.training_id = training_id
        self._doing = "train it"
        self._lock = NamedLock(store, LOCK_DIR, training_id, self._busy, argument="training_id")

    def _busy(self, holder: str) -> ConflictError:
        who = f" ({holder})" if holder else ""
        return ConflictError(
            f"the progress of training {self.training_id!r} on {str(self.store.uri)!r} is held by another "
            f"training with save_every, or a discard_progress, of that id{who}: cannot {self._doing} now; "
            "wait for it to end, or stop it first")

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (never on an object store: no lock there)."""
        return self._lock.held

    def acquire(self, doing: str = "train it") -> TrainingLock:
        """Take the lock at once or raise :class:`ConflictError` (``doing``: what was refused)."""
        self._doing = doing
        self._lock.acquire()
        return self

    def release(self, remove: bool = False) -> None:
        """Give the lock back (nothing when it is not held); ``remove``: remove its file first
        (the training is done, or its progress discarded: no lock file stays behind)."""
        self._lock.release(remove)

    def __enter__(self) -> TrainingLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release(remove=True)
