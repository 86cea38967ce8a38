"""How many live keys a version holds, counted in bounded memory: :func:`live_count`.

``Snapshot.count()`` is ``keys().size`` without the sorted array of every live key (8 bytes a
key: 8 GB at 10^9 rows): it streams the keys (``iter_keys``), adds the purged ones, and checks
the sum against the count the version log predicts
(:func:`~modyn_store.core.integrity.expected_live`), as ``keys()`` checks its array: a version
whose files hold fewer or more live keys than the log recorded raises :class:`CorruptionError`
instead of a wrong count (the keys' checksum, which ``keys()`` also checks, cannot change a
count and is not computed). A snapshot whose keys are in memory already answers from them.
``keys()`` shares the rule for reading again after a disagreement (:func:`read_again`) and the
error when the disagreement stays (:func:`log_mismatch`).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://count-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
>>> _ = store.delete(keys=[1])
>>> live_count(store.as_of()), live_count(store.as_of(1))
(2, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modyn_store.core import integrity
from modyn_store.core._failures import READ_ATTEMPTS
from modyn_store.core.errors import ConflictError, CorruptionError

if TYPE_CHECKING:
    from modyn_store.core.snapshot import Snapshot

__all__ = ["live_count", "log_mismatch", "read_again"]


def live_count(snap: Snapshot) -> int:
    """The number of keys live at ``snap``'s version, purged ones included (``keys().size``)."""
    snap._refresh()
    if snap._keys_cache is not None:
        return int(snap._keys_cache.size)
    for attempt in range(READ_ATTEMPTS):
        began = snap._committed
        try:
            n = sum(int(k.size) for k in snap.iter_keys()) + int(snap.unavailable().size)
        except ConflictError:
            # files removed under a stream that cannot resume (keys read out of key order past
            # what it keeps): a count needs no resume, it starts over, as keys() reads again
            if attempt + 1 == READ_ATTEMPTS:
                raise
            snap._refresh()
            continue
        expected = integrity.expected_live(snap._store, snap.version, snap._committed, snap._records())
        if expected is None or expected == n:
            return n
        if not read_again(snap, began, attempt):
            break
    raise log_mismatch(snap, f"{n} live keys, but", expected)


def read_again(snap: Snapshot, began: int, attempt: int) -> bool:
    """Whether a read of ``snap``'s keys that disagreed with the log (on its ``attempt``-th try,
    begun when ``began`` was the latest committed version) reads again: on the first try, with no
    entries kept on disk (see ``_kept``), or when an erase or vacuum committed meanwhile (and
    removed rows) and tries are left. Forgets the sets it must read again."""
    snap._refresh()
    raced = any(r.op in ("erase", "vacuum") for r in snap._records()[began : snap._committed])
    if attempt == 0 or (raced and attempt + 1 < READ_ATTEMPTS):
        snap._dead_cache = snap._unavailable_cache = None
        snap._kept_ok = False
        integrity.distrust_kept_runs()
        snap._store._log.distrust_kept()
        snap._records_cache = None
        return True
    return False


def log_mismatch(snap: Snapshot, what: str, expected: int | None = None) -> CorruptionError:
    """The error of a read of ``snap``'s keys that has ``what`` (e.g. ``"10 live keys, but"``)
    the version log records (``expected`` keys, if the count differs)."""
    count = "" if expected is None else f" ({expected})"
    return CorruptionError(
        f"version {snap.version} of {snap._store.uri!r} has {what} the version log records{count}: data or "
        "manifests are missing or damaged; run `modyn-store verify`"
    )
