"""Versions named on the command line: a number, a tag or an ISO time (:func:`version_ref`).

A time names the latest version committed at or before it. It has a time of day (a date alone
is refused, :data:`TIME_FORMATS`); without an offset it is local time, refused where a
daylight-saving change makes the local clock show it twice or never; given to the hour, minute
or second it covers that whole hour, minute or second. Text no tag can spell (a tag starts with
a letter) is refused as a bad time (``25:00``, ``12:00`` without its date) or as no reference at
all (``../x``), never looked up as an unknown tag.

>>> version_ref("3"), version_ref("nightly")
(3, 'nightly')
>>> version_ref("2024-01-02T10:30Z").isoformat()
'2024-01-02T10:30:59.999999+00:00'
"""

from __future__ import annotations

import re
from datetime import datetime

from modyn_store.core._validate import check_name
from modyn_store.core.errors import InvalidArgumentError, InvalidNameError
from modyn_store.core.store import VersionRef

__all__ = ["TIME_FORMATS", "version_ref"]

#: what a time on the command line may look like (named when one is refused)
TIME_FORMATS = ("an ISO time with a time of day, e.g. 2024-01-02T00:00:00Z (UTC), 2024-01-02T09:30+01:00 or "
                "2024-01-02T09:30 (no offset: local time)")

#: the time of day of an ISO time: hours, then minutes and seconds when given, then a fraction
_TIME_OF_DAY = re.compile(r"([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})([.,][0-9]+)?)?)?")


#: the date an ISO time starts with (what ``datetime.fromisoformat`` reads)
_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}-[0-9]{2}|-W[0-9]{2}(?:-[0-9])?|W[0-9]{2}[0-9]?|[0-9]{4})")


def _time_of_day(text: str) -> re.Match[str] | None:
    """The time of day of an ISO time ``datetime.fromisoformat`` reads (``None``: a date alone):
    what follows the date (2024-01-02, 20240102, 2024-W01-2, 2024W012, 2024-W01, 2024W01) and
    its one separator character."""
    start = _DATE.match(text)
    if start is None or len(text) <= start.end():
        return None
    return _TIME_OF_DAY.match(text, start.end() + 1)


#: a time of day without its date: hours, then minutes, seconds and a fraction or an offset
_CLOCK = re.compile(r"[0-9]{1,2}:[0-9]{1,2}(?::[0-9]{1,2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9:]+)?", re.IGNORECASE)


def _spells_a_tag(text: str) -> bool:
    """Whether ``text`` is a valid tag name (the store's own check, :func:`check_name`)."""
    try:
        check_name("tag", text)
    except InvalidNameError:
        return False
    return True


def _tag_name(text: str, arg: str) -> str:
    """``text`` as a tag name, or the error naming what it is not: text a tag cannot spell (a
    tag starts with a letter; ``25:00``, ``../x``) is a bad time or no version reference."""
    if _spells_a_tag(text):
        return text
    tag = "a tag name (1-128 characters: a letter, then letters, digits, '_', '.', '-'; no '..')"
    if _CLOCK.fullmatch(text):
        try:
            datetime.fromisoformat(f"2000-01-01T{text.upper()}")
        except ValueError as bad:  # 25:00, 12:60
            why = f"{text!r} is neither a valid time ({bad}) nor {tag}"
        else:
            why = f"{text!r} is a time of day without its date: give the date too, e.g. 2024-01-02T{text}"
    elif len(text) > 128 and _spells_a_tag(text[:128]) and ".." not in text:
        why = f"a tag name has at most 128 characters, this text has {len(text)}"
    else:
        why = f"{text!r} is none of these"
    raise InvalidArgumentError(arg, text, f"a version number, {tag} or {TIME_FORMATS}; {why}") from None


def version_ref(text: str | None, arg: str = "VERSION") -> VersionRef:
    """A version number, an ISO time or a tag name.

    A time names the latest version committed at or before it (the times ``log`` prints paste
    back). A time given to the hour, minute or second covers that whole hour, minute or second
    (``2024-01-02T10:30`` is 10:30:59.999999); one without an offset is local time, and refused
    where a daylight-saving change makes the local clock show it twice or never. A date alone is
    refused (:data:`TIME_FORMATS`): it says neither the time of day nor the zone."""
    if text is None:
        return None
    if re.fullmatch(r"-?[0-9]+", text):  # ASCII digits only: int() also reads '٣', str.isdigit '²'
        if len(text.lstrip("-")) > 19:  # (int() refuses more than 4300 digits with a ValueError)
            raise InvalidArgumentError(arg, text if len(text) <= 40 else f"{text[:20]}... ({len(text)} digits)",
                                       "a version number (at most 19 digits), a tag name or " + TIME_FORMATS)
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        if _DATE.match(text):  # a tag name starts with a letter: text that starts as a date is a bad time
            raise InvalidArgumentError(arg, text, f"a version number, a tag name or {TIME_FORMATS}; {text!r} is "
                                                  f"neither a valid time ({exc}) nor a tag name (a letter, then "
                                                  "letters, digits, '_', '.', '-')") from None
        return _tag_name(text, arg)
    day = _time_of_day(text)
    if day is None:  # 2024-01-02, 2024-W01-2: which time of that day, in which zone?
        raise InvalidArgumentError(arg, text, TIME_FORMATS + "; a date alone does not say which time of "
                                                              "the day, nor in which zone")
    if day.group(4) is None:  # no fraction: the time covers its last given unit
        when = when.replace(microsecond=999_999, second=59 if day.group(3) is None else when.second,
                            minute=59 if day.group(2) is None else when.minute)
    if when.tzinfo is not None:
        return when
    try:  # a time without offset is local time: both readings of a clock that is set back or on
        first, second = when.replace(fold=0).astimezone(), when.replace(fold=1).astimezone()
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00 west of UTC: before year 1
        raise InvalidArgumentError(arg, text, "an ISO time between years 1 and 9999 in UTC") from None
    if first.utcoffset() != second.utcoffset():  # a daylight-saving change passes it twice or skips it
        a, b = (t.isoformat()[len(t.replace(tzinfo=None).isoformat()):] for t in (first, second))  # +hh:mm
        raise InvalidArgumentError(arg, text, f"a local time the clock shows once ({text} is at UTC offset {a} "
                                              f"or {b} around a daylight-saving change): give its offset, "
                                              f"e.g. {text}{a}")
    return first
