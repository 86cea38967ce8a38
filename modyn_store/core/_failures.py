"""What a failed read of a store's Lance table means: a file that a concurrent compaction,
erase or vacuum removed (read again from the latest manifest), or damage (name the files)."""

from __future__ import annotations

import re

import lance
import pyarrow as pa

from modyn_store.core._location import Location
from modyn_store.core.errors import ConflictError

__all__ = ["READ_ATTEMPTS", "READ_ERRORS", "damaged_files", "overtaken", "vanished"]

#: reads retried on a fresh manifest when a concurrent compaction, erase or vacuum removed
#: the files of the manifest they started from
READ_ATTEMPTS = 6
#: what a read may raise when a file it started from is gone; :func:`vanished` says which
#: of these are (a filter error is a plain ``ValueError``, the caller's, never retried)
READ_ERRORS = (pa.ArrowException, OSError, ValueError)
#: how Lance words an error raised by a filter evaluated on the rows read
_FILTER_FAILED = "Error applying filter expression"
#: the data file a "Not found" error names (its name in the table's ``data`` folder)
_MISSING_DATA_FILE = re.compile(r"Not found: [^,\s]*/data/([^/,\s]+)")


def vanished(exc: BaseException) -> bool:
    """Whether a read failed because a file it started from is gone or damaged.

    A concurrent compaction, erase or vacuum removes the files of old manifests: Lance reports
    a missing data or index file as an Arrow error or ``OSError``, and a missing manifest it
    reads lazily (a scalar index's description) as ``ValueError("Not found: ...")``. Any other
    ``ValueError`` (a bad filter, a missing column) is not a vanished file, nor is a filter
    that failed on the rows it was applied to (a division by zero, a failed cast: Lance
    raises those as Arrow errors too).

    >>> vanished(ValueError("Not found: t.lance/_versions/2.manifest")), vanished(ValueError("bad"))
    (True, False)
    """
    text = str(exc)
    if _FILTER_FAILED in text:
        return False
    return isinstance(exc, (pa.ArrowException, OSError)) or text.startswith("Not found")


def damaged_files(location: Location, name: str, ds: lance.LanceDataset, *, deep: bool) -> list[str]:
    """Data files of ``ds`` that are missing or whose size differs from the manifest's record.

    With ``deep``, every fragment is also read in full and the files of one that fails are
    listed.
    """
    fs = location.fs
    bad: list[str] = []
    for frag in ds.get_fragments():
        files = frag.data_files()
        frag_bad = False
        for f in files:
            path = location.path(f"{name}.lance/data/{f.path}")
            try:
                size = fs.size(path)
            except FileNotFoundError:
                bad.append(f"{path} (missing)")
                frag_bad = True
                continue
            want = getattr(f, "file_size_bytes", None)
            if want and size != want:
                bad.append(f"{path} ({size} bytes, the manifest records {want})")
                frag_bad = True
        if deep and not frag_bad:
            try:
                frag.to_table()
            except (pa.ArrowException, OSError, ValueError) as exc:
                bad.extend(f"{location.path(f'{name}.lance/data/{f.path}')} (unreadable: {exc})" for f in files)
    return bad


def overtaken(location: Location, name: str, exc: BaseException) -> ConflictError | None:
    """A :class:`ConflictError` when ``exc`` names a missing data file of table ``name`` that
    its latest manifest does not use: the read started from an older manifest whose files a
    concurrent compaction, erase or vacuum removed (on every attempt, when retries ran out),
    so nothing is damaged. ``None`` where that is not so or cannot be told (a file the latest
    manifest uses, an index file, a manifest, an unreadable table): the caller reports damage."""
    found = _MISSING_DATA_FILE.search(str(exc))
    if found is None:
        return None
    try:
        ds = lance.dataset(location.table_uri(name), storage_options=location.storage_options or None)
        used = {f.path for frag in ds.get_fragments() for f in frag.data_files()}
    except (ValueError, OSError):
        return None
    if found.group(1) in used:
        return None
    return ConflictError(
        f"table {name!r} of {location.uri!r}: concurrent compactions, erasures or vacuums removed the "
        f"files this read started from on each of {READ_ATTEMPTS} attempts (nothing is damaged); read again"
    )
