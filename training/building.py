"""A cache entry built in a background thread and readable while its rows land.

:class:`Building` is what :func:`training.entries.start_entry` returns when the entry of a train
set is not in the cache yet: the rows' layout (``layout.keys``: the key of every entry row, in
storage order) is known before any row is read, and every reading task writes its range of
rows sequentially, so "row ``r`` has landed" is one comparison with its task's high-water mark.
The loader serves its first epoch from the arrays being filled, waiting per batch for exactly
the rows it needs (see docs/training.md).

Example
-------
>>> import numpy as np
>>> from training.building import Building
>>> b = Building(np.array([5, 7, 9]), [(0, 2), (2, 3)])
>>> b.allocated("x", np.zeros(3)); b.reading()
>>> b.progress(0, 2)
>>> b.landed(np.array([1, 0])), b.landed(np.array([2]))
(True, False)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Building"]


class Building:
    """Rows ``keys`` (entry order) being written by tasks over the row ranges ``jobs``."""

    def __init__(self, keys: np.ndarray, jobs: list[tuple[int, int]]) -> None:
        self.keys = keys
        self._starts = np.array([lo for lo, _ in jobs], dtype=np.int64)
        self._high = self._starts.copy()  # rows [start, high) of each task have landed
        self._cond = threading.Condition()
        self.fixed: dict[str, np.ndarray] = {}
        self._streaming = False
        self._done = False
        self._error: BaseException | None = None
        self._entry: Any = None
        self.staged: dict[str, np.ndarray] | None = None
        self._thread: threading.Thread | None = None
        self._opener: Callable[[], Any] = lambda: None

    # -- the builder's side -----------------------------------------------------------
    def allocated(self, name: str, array: np.ndarray) -> None:
        """The output buffer of a fixed column (called by the builder before any row is read)."""
        with self._cond:
            self.fixed[name] = array

    def reading(self) -> None:
        """Every fixed column's buffer is allocated: rows may be read as they land from now on."""
        with self._cond:
            self._streaming = True
            self._cond.notify_all()

    def progress(self, job: int, row: int) -> None:
        """Rows ``jobs[job][0]:row`` have been written."""
        with self._cond:
            self._high[job] = row
            self._cond.notify_all()

    def run(
        self, build: Callable[[Building], tuple[Any, dict[str, np.ndarray] | None]], opener: Callable[[], Any]
    ) -> None:
        """Run ``build(self) -> (entry or None, staged arrays or None)`` in a background thread;
        ``opener()`` opens the published entry when ``build`` returned None (in the caller's
        thread: opening parses ``.npy`` headers)."""
        self._opener = opener

        def target() -> None:
            try:
                entry, staged = build(self)
            except BaseException as exc:  # handed to the reader, which re-raises it
                with self._cond:
                    self._error, self._done = exc, True
                    self._cond.notify_all()
                return
            with self._cond:
                self._entry, self.staged, self._done = entry, staged, True
                self._cond.notify_all()

        self._thread = threading.Thread(target=target, name="modyn-store-materialize")
        self._thread.start()

    # -- the reader's side -------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done

    def landed(self, rows: np.ndarray) -> bool:
        """True when every entry row in ``rows`` has been written."""
        if not self._streaming:
            return False
        if rows.size == 0:
            return True
        job = np.searchsorted(self._starts, rows, side="right") - 1
        need = np.zeros(self._starts.size, np.int64)
        np.maximum.at(need, job, rows + 1)
        return bool(np.all(self._high >= need))

    def wait_streaming(self) -> bool:
        """Wait until rows can be read as they land (True), or the build ended without it (False:
        the entry was built elsewhere, or the build failed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._streaming or self._done)
            if self._error is not None:
                raise self._error
            return self._streaming

    def wait_rows(self, rows: np.ndarray) -> None:
        """Wait until every entry row in ``rows`` has been written; re-raises a build error."""
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or self.landed(rows) or self._done)
            if self._error is not None:
                raise self._error

    def result(self) -> tuple[Any, dict[str, np.ndarray] | None]:
        """The published entry and the in-memory arrays it was staged in (or None)."""
        with self._cond:
            self._cond.wait_for(lambda: self._done)
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        if self._entry is None:
            self._entry = self._opener()
        return self._entry, self.staged
