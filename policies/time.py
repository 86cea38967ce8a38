"""``Time``: fire every interval of event time."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from modyn_store.core._validate import parse_duration
from modyn_store.core.errors import InvalidArgumentError
from policies._windows import restored_on_error
from policies.base import Firing, ModelLike, RowSource, Trigger, TriggerInput, register
from policies._state_shape import PARAMS, is_finite, own_state

__all__ = ["Time"]

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
#: The most intervals event time may lie from the start (interval indices are int64).
_MAX_INTERVALS = 2**62
_FLOAT_MAX = float(np.finfo(np.float64).max)


@register("time")
class Time(Trigger):
    """Fire at each boundary ``start + j * every`` (j >= 1) of event time (the ``ts`` column).

    The trigger fires at the first sample whose event time reaches a boundary; that sample and
    the ones after it are past the cutoff (the cutoff is the position of that sample). Event time
    only advances with data: a boundary is passed when a sample at or after it arrives. Several
    boundaries passed by one sample (a gap in the data) give one firing. Late samples (event time
    before the current interval) count into the current interval. Integer event times (e.g.
    nanoseconds since the epoch in an int64 column) are taken from the start exactly, in int64,
    and with a whole-number ``every`` the boundaries they reach are exact too. Otherwise boundary
    ``j`` is one float64, the one the firing reports: the float nearest to ``start + j * every``
    taken in decimals (``3 * 0.1`` is ``0.3``) while ``start`` and ``every`` are short decimals
    and ``j * every`` stays within 2**53 of their last digit, else ``start + j * every`` in
    float64; an event time reaches it exactly when it is at or after that float (integer event
    times are compared with it above the start's whole part, exactly). An interval below the
    spacing of floats at the start makes several boundaries one float, reached together. A
    firing's reason names its boundary: for datetime event times an
    ISO-8601 UTC time (``2024-03-31T23:00:00Z``, with the fraction of a second it has). Intervals
    are fixed durations (``"1d"`` is 86 400 s): they do not follow a time zone's daylight-saving
    changes, and a ``start`` offset is a fixed offset.

    Parameters
    ----------
    every:
        The interval: a duration string (``"90s"``, ``"15m"``, ``"1h"``, ``"1d"``, ``"2w"``) for
        datetime event times, from 1ns to ``2**63 - 1`` ns (about 292 years; rounded to whole
        nanoseconds), or a finite positive number in the unit of a numeric ``ts`` column. A
        number may be as large as any float: an interval longer than the span of the event
        times is never completed, so the trigger does not fire (no boundary is reached).
    start:
        The first boundary's origin: an ISO datetime string (within the range of
        ``datetime64[ns]``, 1677-09-21 to 2262-04-11; exact to the nanosecond, so at most 9
        fractional digits of seconds; naive means UTC) or a finite number; ``None`` uses the
        event time of the first sample. Event time more than ``2**62`` intervals away from the
        start is refused when it arrives, and so are datetime event times outside the
        ``datetime64[ns]`` range or NaT (:class:`TriggerInput` refuses them, naming ``ts[i]``).

    Example
    -------
    >>> import numpy as np
    >>> from policies import Time, TriggerInput
    >>> t = Time(every=10, start=0)
    >>> fs = t.fire(TriggerInput(version=1, keys=np.arange(4), ts=np.array([1, 9, 12, 25])))
    >>> [(f.version, f.position) for f in fs]
    [(1, 2), (1, 3)]
    >>> t = Time(every="1d", start="2024-03-30T00:00:00+01:00")
    >>> ts = np.array(["2024-03-30T12:00", "2024-03-31T23:00"], dtype="datetime64[ns]")
    >>> [f.reason for f in t.fire(TriggerInput(version=1, keys=np.arange(2), ts=ts))]
    ['event time reached 2024-03-31T23:00:00Z']
    """

    reads_labels = False

    def __init__(self, every: str | float = "1d", start: str | float | None = None) -> None:
        self.every = every
        self.start = start
        self._every: float | int
        if isinstance(every, (int, np.integer)) and not isinstance(every, (bool, np.bool_)) and every > 0:
            # kept exact: as a float, an integer beyond 2**53 would round (beyond ~1.8e308, fail)
            self._every = int(every)
        else:
            self._every = parse_duration("every", every)
        if isinstance(every, str):
            # datetime event times are whole nanoseconds: the interval is too
            if not math.isfinite(self._every) or round(self._every) > _I64_MAX:
                raise InvalidArgumentError("every", every, "a duration of at most 2**63 - 1 ns "
                                                           "(about 292 years)")
            if round(self._every) < 1:
                raise InvalidArgumentError("every", every, "a duration of at least 1ns (event "
                                                           "times are whole nanoseconds)")
            self._every = float(round(self._every))
        if start is not None and not isinstance(start, (str, int, float)) or isinstance(start, bool):
            raise InvalidArgumentError("start", start, "an ISO datetime string, a number or None")
        if isinstance(start, (int, float)) and not math.isfinite(start):
            raise InvalidArgumentError("start", start, "a finite number, an ISO datetime string "
                                                       "or None")
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
        if delta.ts_is_datetime and isinstance(self.start, (int, float)) and \
                not _I64_MIN <= self.start <= _I64_MAX:
            raise InvalidArgumentError("start", self.start, "nanoseconds since the epoch within "
                                       "int64 (the ts column holds datetimes)")

    def _admit(self, delta: TriggerInput) -> tuple[int, int] | None:
        span = super()._admit(delta)
        if span is not None and len(delta):
            self._check_units(delta)  # before a composite's other parts count the delta
        return span

    def _interval_of(self, delta: TriggerInput, ts: np.ndarray) -> np.ndarray:
        return _interval_index(ts, self._origin, self._every, delta.ts_is_datetime,
                               start_given=self.start is not None)

    def _in_interval(self, delta: TriggerInput, last: np.ndarray) -> bool:
        """Whether the event time ``last`` (one row) is still in the current interval; an event
        time refused here is refused again by the full pass, which names its row."""
        try:
            return bool(self._interval_of(delta, last)[0] <= self._interval)
        except InvalidArgumentError:
            return False

    def _float_boundaries(self, k: np.ndarray, delta: TriggerInput) -> list[float]:
        """Boundaries ``k`` as compared with float event times (see :func:`_boundary`); integer
        event times are compared with them above the origin's whole part, exactly. (One frame
        for all: a delta may pass thousands of boundaries.)"""
        exact = _exact(delta.ts, delta.ts_is_datetime)
        every = float(self._every) if self._every <= _FLOAT_MAX else _FLOAT_MAX
        base, decimal = _frame(self._origin, every, exact)
        above = _boundary(np.asarray(k, dtype=np.int64), base, every, decimal)
        return [_whole(self._origin)[0] + float(a) for a in above] if exact else above.tolist()

    def state(self) -> dict[str, Any]:
        """``{"params", "origin", "interval", "seen"}``: the parameters (``every`` and ``start``,
        which the interval's index counts in), the first boundary's origin (``None`` before the
        first sample), the current interval's index and the samples fed so far."""
        origin = self._origin.item() if isinstance(self._origin, np.generic) else self._origin
        return {PARAMS: self._state_params(), "origin": origin, "interval": int(self._interval),
                "seen": int(self._seen)}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take :meth:`state`'s data; a state saved by a time trigger with another ``every`` or
        ``start`` (or without its parameters) is refused, naming ``state.params.every`` (or
        ``state.params.start``, ``state.params``)."""
        state = own_state(state, self._state_params(), "a time trigger's state")
        number = is_finite
        ok = isinstance(state, Mapping) and set(state) == {"origin", "interval", "seen"}
        origin, interval, seen = (state["origin"], state["interval"], state["seen"]) if ok else (None, None, None)
        if not (ok and (origin is None or number(origin)) and isinstance(interval, int) and number(interval)
                and isinstance(seen, int) and number(seen) and seen >= 0):
            raise InvalidArgumentError("state", state, "a time trigger's state: {'params': its parameters, "
                                                       "'origin': number or None, 'interval': int, 'seen': int >= 0}")
        # the origin is the start (once a sample came), or the first event time: whole
        # nanoseconds for datetimes; another one is a state of another time trigger
        start = _parse_start(self.start) if isinstance(self.start, str) else self.start
        if origin is None and (interval != 0 or seen != 0):
            raise InvalidArgumentError("state", state, "a time trigger's state before its first sample: "
                                                       "{'origin': None, 'interval': 0, 'seen': 0}")
        if origin is not None and start is not None and origin != start:
            raise InvalidArgumentError("state", state, f"a time trigger's state whose origin is its start "
                                                       f"({start})")
        # (a numeric start is the origin as given, checked above: a float one is kept a float)
        if origin is not None and isinstance(self.every, str) and start is None and not isinstance(origin, int):
            raise InvalidArgumentError("state", state, "a time trigger's state whose origin is whole "
                                                       "nanoseconds (every is a duration)")
        if abs(interval) > _MAX_INTERVALS:
            raise InvalidArgumentError("state", state, f"a time trigger's state whose interval is within "
                                                       f"2**62 of 0 (got {interval})")
        self._origin, self._interval, self._seen = origin, int(interval), int(seen)

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        # a refused delta (an event time too far from the start, a NaN, wrong units) leaves the
        # trigger as it was: in particular the origin is not taken from the refused delta
        with restored_on_error(self, "_origin", "_interval", "_seen"):
            return self._consume(delta)

    def _consume(self, delta: TriggerInput) -> list[Firing]:
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
        if n > 1 and self._in_interval(delta, ts[-1:]) and bool((ts[1:] >= ts[:-1]).all()):
            # event times in order and the last one still in the current interval: every one is
            # (the interval is monotone in time), so no boundary is passed (most deltas)
            self._seen += n
            return []
        k = self._interval_of(delta, ts)
        k = np.maximum(np.maximum.accumulate(k), self._interval)
        prev = np.concatenate(([self._interval], k[:-1]))
        ends = np.flatnonzero(k > prev)
        out = []
        # a whole-number boundary of integer event times is exact (an int); others are floats
        whole, frac = _whole(self._origin) if _exact(ts, delta.ts_is_datetime) else (0, 1.0)
        steps = _is_whole(self._every)
        floats = [] if frac == 0.0 and steps else self._float_boundaries(k[ends], delta)
        for j, e in enumerate(ends):
            stepped = whole + int(k[e]) * int(self._every) if steps else 0  # exact for whole steps
            boundary: float | int = stepped if frac == 0.0 and steps else floats[j]
            if delta.ts_is_datetime:
                shown = iso_utc(int(boundary))
            elif isinstance(boundary, int):
                shown = str(boundary)
            elif steps and frac < 1.0:  # a fractional start: the boundary's whole part is exact
                shown = str(stepped) + np.format_float_positional(frac)[1:]
            else:
                shown = f"{boundary:g}"
            out.append(delta.firing(int(e), f"event time reached {shown}",
                                    trigger=self.name, seen=self._seen + int(e),
                                    statistic=float(boundary)))
        self._interval = int(k[-1])
        self._seen += n
        return out


def iso_utc(ns: int) -> str:
    """Nanoseconds since the epoch as an ISO-8601 UTC time, to the second or to the finest of
    milli-, micro- and nanoseconds that keeps it exact (also before 1970).

    >>> iso_utc(0), iso_utc(1_500_000_000), iso_utc(-1)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.500Z', '1969-12-31T23:59:59.999999999Z')
    """
    units: tuple[tuple[Literal["s", "ms", "us", "ns"], int], ...] = (
        ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))
    unit = next(u for u, per in units if ns % per == 0)
    return str(np.datetime_as_string(np.datetime64(ns, "ns"), unit=unit, timezone="UTC"))


def _exact(ts: np.ndarray, is_datetime: bool) -> bool:
    """Whether event times are taken from the origin in int64 (exactly): datetimes, and integer
    event times (as float64, times of nanoseconds since the epoch are 256 apart, and a boundary
    would move by up to that much); float event times are computed in float64."""
    return is_datetime or ts.dtype.kind == "i"


def _whole(origin: Any) -> tuple[int, float]:
    """``origin`` as its whole part (an int) and the fraction above it (0.0 for an integer)."""
    if isinstance(origin, (float, np.floating)):
        whole = math.floor(origin)
        return whole, float(origin - whole)
    return int(origin), 0.0


def _is_whole(every: float | int) -> bool:
    """Whether the interval is a whole number (an int, or a float without a fraction)."""
    return isinstance(every, int) or float(every).is_integer()


def _interval_index(ts: np.ndarray, origin: Any, every: float | int, is_datetime: bool, *,
                    start_given: bool = False) -> np.ndarray:
    """``floor((ts - origin) / every)`` as int64; for datetimes and integer event times (see
    :func:`_exact`) ``ts - origin`` is taken in int64 from the origin's whole part, and divided
    exactly when the interval is a whole number (a fractional origin lies between two integer
    times), else in float64.

    Event time whose index would not fit (an interval far too small for the span of event time,
    or a start far from it) raises :class:`InvalidArgumentError` naming ``start`` or ``every``.
    An interval longer than any int64 difference gives index 0 (-1 for a time before the
    origin): no boundary is ever reached.
    """
    if ts.size == 0:
        return np.empty(0, dtype=np.int64)
    step = every
    every = float(every) if every <= _FLOAT_MAX else _FLOAT_MAX  # an int past any float
    if _exact(ts, is_datetime):
        whole, frac = _whole(origin)
        lo, hi = int(ts.min()) - whole, int(ts.max()) - whole
        unit = " ns" if is_datetime else ""
        if lo < _I64_MIN or hi > _I64_MAX:  # ts - origin would wrap around in int64
            if not start_given:  # the origin is the first event time: name the one too far away
                bad = int(ts.argmin()) if lo < _I64_MIN else int(ts.argmax())
                raise InvalidArgumentError(f"ts[{bad}]", int(ts[bad]), f"an event time within "
                                           f"2**63{unit} of the first one ({origin}{unit})")
            raise InvalidArgumentError("start", origin, f"a start within 2**63{unit} of the event "
                                       f"times (they reach {int(ts.min())}..{int(ts.max())}{unit})")
        d = ts.astype(np.int64, copy=False) - np.int64(whole)
        if is_datetime or _is_whole(step):
            step = round(step)
            if step > _I64_MAX:
                # longer than any int64 difference: the index is 0, or -1 for a time before the
                # origin (at or before it, for a fractional origin)
                return np.where(d < (1 if frac != 0.0 else 0), np.int64(-1), np.int64(0))
            if frac == 0.0:
                return np.asarray(d // np.int64(step), dtype=np.int64)
            # an integer time reaches whole + frac + j * every (0 < frac < 1) exactly when it
            # reaches whole + 1 + j * every: the index is (d - 1) // step, taken without d - 1
            # (which wraps around at the smallest int64)
            q, r = np.divmod(d, np.int64(step))
            return np.asarray(q - (r == 0), dtype=np.int64)
        # from the origin's whole part (exact): boundaries are frac + k * every above it
        base, decimal = _frame(origin, every, True)
        rel = d.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.floor((rel - frac) / every)
    else:
        (base, decimal), rel = _frame(origin, every, False), ts.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.floor((rel - base) / every)
    t = ts.astype(np.float64)
    worst = float(np.max(np.abs(k)))
    if not worst < _MAX_INTERVALS:  # also NaN / inf: looked into only here, off the common path
        if not np.isfinite(t).all():
            bad = int(np.flatnonzero(~np.isfinite(t))[0])
            raise InvalidArgumentError(f"ts[{bad}]", float(t[bad]), "finite event times")
        # with the interval fine for the span of the data, the start is what lies too far away
        name, value = ("start", origin) if start_given and _fits(t, t[0], every) else ("every", every)
        raise InvalidArgumentError(name, value, f"event time within 2**62 intervals of the start "
                                   f"(every={every:g}, start={origin:g}, event times "
                                   f"{t.min():g}..{t.max():g})")
    return _settle(np.asarray(k, dtype=np.int64), rel, base, every, decimal)


def _frame(origin: Any, every: float, exact: bool) -> tuple[float, tuple[int, int, int] | None]:
    """Where boundaries are counted from, and their decimal form.

    Float event times count from the origin; integer ones from the origin's whole part (see
    :func:`_exact`), so the base is the fraction above it. The decimal form ``(E, O, D)`` has
    ``every == E / D`` and ``base == O / D`` (``D = 10**p``) when both are short decimals as
    written (``0.1`` is ``1 / 10``), else it is ``None``."""
    base = _whole(origin)[1] if exact else float(origin)
    try:
        ds = [Decimal(repr(float(every))), Decimal(int(origin)) if isinstance(origin, (int, np.integer))
              else Decimal(repr(float(origin)))]
    except OverflowError:  # an integer origin beyond any float
        return base, None
    digits = max(0, *(-int(d.as_tuple().exponent) for d in ds))
    if digits > 22:  # 10**p is exact in float64 up to 10**22
        return base, None
    scale = 10**digits
    e, o = int(ds[0] * scale), int(ds[1] * scale) - (_whole(origin)[0] * scale if exact else 0)
    if e > 2**53 or abs(o) > 2**53 or e / scale != every or o / scale != base:
        return base, None
    return base, (e, o, scale)


def _boundary(k: np.ndarray, base: float, every: float,
              decimal: tuple[int, int, int] | None) -> np.ndarray:
    """Boundary ``k`` as the trigger reports it (from the frame's base, see :func:`_frame`):
    the float64 nearest to ``base + k * every`` taken in decimals (``3 * 0.1`` is ``0.3``)
    while ``O + k * E`` is within ``2**53``, else ``base + k * every`` in float64."""
    kf = k.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = base + kf * every
        if decimal is not None:
            e, o, scale = decimal
            small = np.abs(kf) * e + abs(o) <= 2.0**53
            if small.any():  # an exact integer over an exact power of ten: rounded once
                out = np.where(small, (o + np.where(small, kf, 0.0) * e) / scale, out)
    return out


def _settle(k: np.ndarray, t: np.ndarray, base: float, every: float,
            decimal: tuple[int, int, int] | None) -> np.ndarray:
    """The largest ``k`` whose boundary (:func:`_boundary`) is at or before ``t``, starting from
    the estimate ``floor((t - base) / every)``: the division rounds (``0.3 / 0.1`` is
    ``2.9999999999999996``), so the estimate may be one off, or more where the interval is
    below the spacing of floats at the origin. Boundaries are non-decreasing in ``k``."""
    for _ in range(4):
        up = _boundary(k + 1, base, every, decimal) <= t
        down = _boundary(k, base, every, decimal) > t
        if not (up.any() or down.any()):
            return k
        k = k + up - down
    # boundaries closer than the spacing of floats: bracket the index and bisect
    lo, hi, step = k.copy(), k + 1, np.ones_like(k)
    while (m := _boundary(lo, base, every, decimal) > t).any():
        lo = np.where(m, np.maximum(lo - step, -_MAX_INTERVALS), lo)
        step = np.where(m, step * 2, step)
    step[:] = 1
    while (m := _boundary(hi, base, every, decimal) <= t).any():
        hi = np.where(m, np.minimum(hi + step, _MAX_INTERVALS), hi)
        step = np.where(m, step * 2, step)
        if (hi[m] == _MAX_INTERVALS).all():
            break
    while (m := hi - lo > 1).any():
        mid = lo + (hi - lo) // 2
        below = _boundary(mid, base, every, decimal) <= t
        lo, hi = np.where(m & below, mid, lo), np.where(m & ~below, mid, hi)
    return lo


def _fits(t: np.ndarray, origin: float, every: float) -> bool:
    """Whether the event times ``t`` are within ``2**62`` intervals of ``origin``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(float(np.max(np.abs(np.floor((t - origin) / every)))) < _MAX_INTERVALS)


_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)[.,](\d+)")


def _parse_start(start: str) -> int:
    """An ISO datetime string as UTC nanoseconds since the epoch (naive means UTC).

    Fractional seconds are exact to the nanosecond (``datetime`` keeps microseconds and would
    drop the rest); more than 9 digits are refused rather than rounded."""
    extra_ns = 0
    m = _FRACTION.search(start)
    if m is not None:
        digits = m.group(1)
        if len(digits) > 9:
            raise InvalidArgumentError("start", start, "an ISO datetime string with at most 9 "
                                       "fractional digits of seconds (nanoseconds)")
        extra_ns = int(digits[6:].ljust(3, "0"))
        start_us = start[:m.start()] + "." + digits[:6].ljust(6, "0") + start[m.end():]
    else:
        start_us = start
    try:
        dt = datetime.fromisoformat(start_us.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgumentError("start", start, "an ISO datetime string") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    ns = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + extra_ns
    if not _I64_MIN < ns <= _I64_MAX:  # datetime64[ns] holds 1677-09-21 .. 2262-04-11
        raise InvalidArgumentError("start", start, "an ISO datetime within the datetime64[ns] "
                                   "range (1677-09-21 to 2262-04-11)")
    return ns
