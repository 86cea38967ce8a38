"""The checksum of the key runs a read found, taken from the appends' records where it can be.

An append whose keys are one run of consecutive integers (auto-assigned keys, time-ordered ids)
records it in its details, ``"run": [first, n]``, beside the checksum of its keys, which is then
``run_checksum(first, n)``. A read of the live keys (:class:`~modyn_store.core._keyscan.LiveKeys`)
establishes, batch by batch with one pass over the keys, which of its batches are runs; the
checksum of such a batch is a pure function of its two ends, computed by mixing every key of it
once per process (or taken from the read cache). Where the batches read together cover the whole
run an append recorded (adjacent batches, none overlapping), the keys read there are exactly
that append's keys, and their checksum is the one its record holds: no key is mixed. Only the
parts of batches outside such runs are mixed, as before.

The value is the same either way: the sum over the same keys of the same mix. Records carry a
digest (a changed claim is damage), and ``verify`` checks each claim against its checksum and
row count. Batches that overlap (a key read twice) use no claim at all, so a duplicated
fragment still changes the sum.

Example
-------
>>> from modyn_store.core.integrity import run_checksum
>>> claims = RunClaims.of([(0, 100, run_checksum(0, 100))])
>>> total, mixed = runs_checksum([(0, 64), (64, 40)], claims)
>>> total == run_checksum(0, 104), mixed
(True, [(100, 4)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modyn_store.core._logfold import LogFold
from modyn_store.core.integrity import MASK, run_checksum

__all__ = ["RunClaims", "claim_of", "parsed_claims", "run_claims", "runs_checksum"]

_INT64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True)
class RunClaims:
    """The runs appends recorded, sorted and disjoint: ``first`` and ``last`` keys (int64,
    inclusive) and each run's checksum (``values``, uint64)."""

    first: np.ndarray
    last: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, runs: Sequence[tuple[int, int, int]]) -> RunClaims | None:
        """From ``(first, n, checksum)`` triples; ``None`` if there are none, or if two overlap
        (keys are unique for all time: only damage makes them overlap, and then no claim is used)."""
        runs = sorted(runs)
        if not runs:
            return None
        first = np.array([f for f, _, _ in runs], np.int64)
        last = np.array([f + n - 1 for f, n, _ in runs], np.int64)
        if first.size > 1 and bool((first[1:] <= last[:-1]).any()):
            return None
        return cls(first, last, np.array([v for _, _, v in runs], np.uint64))

    def triples(self) -> list[tuple[int, int, int]]:
        """``(first, n, checksum)`` of each claim, as :meth:`of` takes them."""
        return [(f, last - f + 1, v) for f, last, v in zip(self.first.tolist(), self.last.tolist(), self.values.tolist())]

    def extended(self, runs: Sequence[tuple[int, int, int]]) -> RunClaims | None:
        """These claims and ``runs``, where every one of ``runs`` starts after the last claim
        (an append of keys above every earlier append's, the usual order); else ``None``."""
        more = RunClaims.of(runs)
        if more is None or int(more.first[0]) <= int(self.last[-1]):
            return None
        return RunClaims(np.concatenate([self.first, more.first]), np.concatenate([self.last, more.last]),
                         np.concatenate([self.values, more.values]))


def claim_of(lowest: int, highest: int, count: int) -> list[int] | None:
    """The ``"run"`` detail of an append of ``count`` distinct keys from ``lowest`` to
    ``highest``, or ``None`` where they are not one run (distinct keys that span exactly their
    count are the run, whatever their order; an append commits only distinct keys).

    >>> claim_of(5, 9, 5), claim_of(5, 10, 5)
    ([5, 5], None)
    """
    if count < 1 or highest - lowest + 1 != count:
        return None
    return [int(lowest), int(count)]


def _fold(before: tuple[RunClaims | None, bool] | None, records: Sequence[Any]) -> tuple[RunClaims | None, bool]:
    """(the claims, whether two of them overlap) of the records before, extended by those of
    ``records``: the arrays grow where the new runs start above the others (the usual order)."""
    claims, overlapped = before if before is not None else (None, False)
    new = parsed_claims(records)
    if not new or overlapped:
        return claims, overlapped  # (claims that overlap stay so: none is used)
    grown = RunClaims.of(new) if claims is None else claims.extended(new)
    if grown is None and claims is not None:
        grown = RunClaims.of(claims.triples() + new)
    return grown, grown is None


#: the claims of the last logs read (see :class:`~modyn_store.core._logfold.LogFold`)
_CLAIMS = LogFold(_fold)


def run_claims(records: Sequence[Any], version: int) -> RunClaims | None:
    """The runs that the appends at or before ``version`` recorded (those with a well-formed
    ``"run"`` detail and a checksum; others claim nothing and their keys are mixed).

    Kept per process by the records read (:class:`~modyn_store.core._logfold.LogFold`): another
    read of the same version looks at no record, a read of the next version at one."""
    got = _CLAIMS(records, version)
    return None if got is None else got[0]


def parsed_claims(records: Sequence[Any]) -> list[tuple[int, int, int]]:
    """``(first, n, checksum)`` of each well-formed claim among ``records`` (the appends' with
    a ``"run"`` of ``inserted`` keys within int64 and a checksum), in their order."""
    out: list[tuple[int, int, int]] = []
    for r in records:
        if r.op != "append":
            continue
        run, cs = r.details.get("run"), r.details.get("checksum")
        if not (isinstance(run, list) and len(run) == 2 and isinstance(cs, str) and 0 < len(cs) <= 16):
            continue  # (a checksum is at most 16 hex digits: anything else is damage, not a claim)
        f, n = run
        if type(f) is not int or type(n) is not int or n < 1 or n != r.inserted:
            continue
        if f < _INT64[0] or f + n - 1 > _INT64[1]:
            continue
        try:
            value = int(cs, 16)
        except ValueError:
            continue
        out.append((f, n, value))
    return out


def _held(runs: np.ndarray, claims: RunClaims) -> np.ndarray | None:
    """Which claims lie wholly inside a stretch of adjacent ``runs`` (an ``(k, 2)`` array of
    first and last keys, sorted by first); ``None`` if two runs overlap."""
    first, last = runs[:, 0], runs[:, 1]
    if first.size > 1 and bool((first[1:] <= last[:-1]).any()):
        return None
    # a stretch ends where the next run does not start right after it (first > last here, so
    # first - 1 cannot wrap)
    breaks = np.flatnonzero(first[1:] - 1 != last[:-1]) if first.size > 1 else np.empty(0, np.intp)
    starts = first[np.concatenate([[0], breaks + 1])]
    ends = last[np.concatenate([breaks, [first.size - 1]])]
    at = np.searchsorted(starts, claims.first, side="right") - 1
    ok = at >= 0
    inside = np.zeros(claims.first.size, bool)
    inside[ok] = claims.last[ok] <= ends[at[ok]]
    return inside


def runs_checksum(runs: Sequence[tuple[int, int]], claims: RunClaims | None) -> tuple[int, list[tuple[int, int]]]:
    """The checksum of every key of ``runs`` (``(first, length)`` each, as a read found them)
    and the ``(first, length)`` pieces whose checksum came from :func:`run_checksum` (mixed, or
    from this process's map of earlier ones), for the read cache to keep."""
    if not runs:
        return 0, []
    arr = np.array(runs, np.int64)
    arr[:, 1] += arr[:, 0] - 1  # (first, last): a run may end at the largest int64
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    inside = _held(arr, claims) if claims is not None else None
    if claims is None or inside is None or not inside.any():
        return sum(run_checksum(f, n) for f, n in runs) & MASK, list(runs)
    total = int(claims.values[inside].sum(dtype=np.uint64))  # (wraps modulo 2^64, as the checksum does)
    lo_c, hi_c = claims.first[inside], claims.last[inside]
    mixed: list[tuple[int, int]] = []
    for f, last in arr.tolist():
        # the parts of [f, last] outside the held claims (sorted, disjoint)
        i = int(np.searchsorted(hi_c, f, side="left"))
        pos = f
        while i < lo_c.size and int(lo_c[i]) <= last:
            if int(lo_c[i]) > pos:
                mixed.append((pos, int(lo_c[i]) - pos))
            pos = int(hi_c[i]) + 1  # (held claims are disjoint: never behind pos)
            i += 1
        if pos <= last:
            mixed.append((pos, last - pos + 1))
    total += sum(run_checksum(f, n) for f, n in mixed)
    return total & MASK, mixed
