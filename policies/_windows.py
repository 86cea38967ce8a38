"""A buffer of the most recent rows, bounded by a row count or an event-time span."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["RowBuffer"]


class RowBuffer:
    """The most recent rows of some columns: the last ``size`` rows, or (with ``span``) the rows
    whose event time is within ``span`` of the newest one.

    Example
    -------
    >>> import numpy as np
    >>> b = RowBuffer(size=3)
    >>> b.append({"x": np.arange(5.0)}, np.arange(5))
    >>> b.window()[0]["x"].tolist()
    [2.0, 3.0, 4.0]
    """

    def __init__(self, size: int | None = None, span: float | None = None) -> None:
        self.size = size
        self.span = span
        self._chunks: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        self._rows = 0
        self._newest = -np.inf

    def __len__(self) -> int:
        return self._rows

    def clear(self) -> None:
        self._chunks = []
        self._rows = 0

    def append(self, cols: Mapping[str, np.ndarray], ts: np.ndarray) -> None:
        if ts.size == 0:
            return
        self._chunks.append(({k: np.asarray(v) for k, v in cols.items()}, np.asarray(ts)))
        self._rows += int(ts.size)
        self._newest = max(self._newest, float(np.max(ts)))
        limit = self.size if self.size is not None else 0
        if (self.size is not None and self._rows > 2 * limit) or (
            self.span is not None and len(self._chunks) > 64
        ):
            cols_all, ts_all = self.window()
            self._chunks = [(cols_all, ts_all)]
            self._rows = int(ts_all.size)

    def window(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The current window: ``({column: rows}, ts)``."""
        if not self._chunks:
            return {}, np.empty(0)
        names = list(self._chunks[0][0])
        cols = {k: np.concatenate([c[0][k] for c in self._chunks]) for k in names}
        ts = np.concatenate([c[1] for c in self._chunks])
        if self.size is not None:
            keep = slice(max(0, ts.size - self.size), None)
            return {k: v[keep] for k, v in cols.items()}, ts[keep]
        assert self.span is not None
        mask = ts.astype(np.float64) > self._newest - self.span
        return {k: v[mask] for k, v in cols.items()}, ts[mask]
