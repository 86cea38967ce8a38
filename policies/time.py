"""``Time``: fire every interval of event time."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from modyn_store.core._validate import parse_duration
from modyn_store.core.errors import InvalidArgumentError
from policies.base import Firing, ModelLike, Trigger, TriggerInput, register

__all__ = ["Time"]


@register("time")
class Time(Trigger):
    """Fire at each boundary ``start + j * every`` (j >= 1) of event time (the ``ts`` column).

    The trigger fires at the first sample whose event time reaches a boundary; that sample and
    the ones after it are past the cutoff (the cutoff is the position of that sample). Event time
    only advances with data: a boundary is passed when a sample at or after it arrives. Several
    boundaries passed by one sample (a gap in the data) give one firing. Late samples (event time
    before the current interval) count into the current interval.

    Parameters
    ----------
    every:
        The interval: a duration string (``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"2w"``) for
        datetime event times, or a positive number in the unit of a numeric ``ts`` column.
    start:
        The first boundary's origin: an ISO datetime string or a number; ``None`` uses the event
        time of the first sample.

    Example
    -------
    >>> import numpy as np
    >>> from policies import Time, TriggerInput
    >>> t = Time(every=10, start=0)
    >>> fs = t.fire(TriggerInput(version=1, keys=np.arange(4), ts=np.array([1, 9, 12, 25])))
    >>> [(f.version, f.position) for f in fs]
    [(1, 2), (1, 3)]
    """

    reads_labels = False

    def __init__(self, every: str | float = "1d", start: str | float | None = None) -> None:
        self.every = every
        self.start = start
        self._every = parse_duration("every", every)
        if start is not None and not isinstance(start, (str, int, float)) or isinstance(start, bool):
            raise InvalidArgumentError("start", start, "an ISO datetime string, a number or None")
        if isinstance(start, str):
            _parse_start(start)
        self._origin: Any = None
        self._interval = 0
        self._seen = 0

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"every": 5.0, "start": 0}, {"every": 3}]

    def _check_units(self, delta: TriggerInput) -> None:
        if delta.ts_is_datetime and not isinstance(self.every, str):
            raise InvalidArgumentError("every", self.every, "a duration string like '1d' "
                                       "(the ts column holds datetimes)")
        if not delta.ts_is_datetime and isinstance(self.every, str):
            raise InvalidArgumentError("every", self.every, "a number in the unit of the numeric "
                                       "ts column")
        if not delta.ts_is_datetime and isinstance(self.start, str):
            raise InvalidArgumentError("start", self.start, "a number (the ts column is numeric)")

    def _interval_of(self, delta: TriggerInput, ts: np.ndarray) -> np.ndarray:
        return _interval_index(ts, self._origin, self._every, delta.ts_is_datetime)

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        n = len(delta)
        if n == 0:
            return []
        self._check_units(delta)
        if self._origin is None:
            if self.start is None:
                self._origin = delta.ts[0].item()
            elif isinstance(self.start, str):
                self._origin = _parse_start(self.start)
            else:
                self._origin = self.start
        ts = delta.ts
        if n > 1 and self._interval_of(delta, ts[-1:])[0] <= self._interval and bool((ts[1:] >= ts[:-1]).all()):
            # event times in order and the last one still in the current interval: every one is
            # (the interval is monotone in time), so no boundary is passed (most deltas)
            self._seen += n
            return []
        k = self._interval_of(delta, ts)
        k = np.maximum(np.maximum.accumulate(k), self._interval)
        prev = np.concatenate(([self._interval], k[:-1]))
        ends = np.flatnonzero(k > prev)
        out = []
        for e in ends:
            boundary = self._origin + float(k[e]) * self._every
            shown = (np.datetime64(int(boundary), "ns").astype("datetime64[s]").item().isoformat(sep=" ")
                     if delta.ts_is_datetime else f"{boundary:g}")
            out.append(delta.firing(int(e), f"event time reached {shown}",
                                    trigger=self.name, seen=self._seen + int(e),
                                    statistic=boundary))
        self._interval = int(k[-1])
        self._seen += n
        return out


def _interval_index(ts: np.ndarray, origin: Any, every: float, is_datetime: bool) -> np.ndarray:
    """``floor((ts - origin) / every)`` as int64 (exact integer nanoseconds for datetimes)."""
    if is_datetime:
        k = (ts - np.int64(origin)) // np.int64(round(every))
    else:
        k = np.floor((ts.astype(np.float64) - origin) / every)
    return np.asarray(k, dtype=np.int64)


def _parse_start(start: str) -> int:
    """An ISO datetime string as UTC nanoseconds since the epoch (naive means UTC)."""
    try:
        dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgumentError("start", start, "an ISO datetime string") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
