"""Tags: names of versions, kept as rows of the ``tags`` table (a negative target removes one).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://tags-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2]}))
>>> store.tag("first").version, store.tags()
(2, {'first': 1})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from modyn_store.core._validate import check_name
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError, UnknownVersionError
from modyn_store.core.records import VersionRecord

if TYPE_CHECKING:
    from modyn_store.core.store import Store, VersionRef

__all__ = ["tag", "tags", "untag"]


def tags(store: Store) -> dict[str, int]:
    """Tag name -> version."""
    t = store._tables.scan("tags", None, f"_version <= {store.version}")
    out: dict[str, int] = {}
    if t is None:
        return out
    for row in t.sort_by("_version").to_pylist():
        if row["target"] < 0:
            out.pop(row["name"], None)
        else:
            out[row["name"]] = int(row["target"])
    return out


def tag(store: Store, name: str, version: VersionRef, message: str) -> VersionRecord:
    """:meth:`Store.tag <modyn_store.core.store.Store.tag>`: a new tag, checked under the
    writer lock (never two writers creating one name; no purge between the check and the
    commit)."""
    check_name("tag", name)
    target = store._resolve(version)
    with store.transaction("tag", message) as txn:
        # checked under the writer lock: two writers can never both create the tag, and no
        # vacuum can purge the version's rows between the check and the commit
        existing = store.tags()
        if name in existing:
            raise InvalidArgumentError(
                "tag", name, f"a new tag name; {name!r} already names version {existing[name]}"
            )
        purged = store.as_of(target).unavailable()
        if purged.size:
            raise DataUnavailableError(
                f"cannot tag version {target} as {name!r}: {purged.size} of its live rows were purged "
                f"by vacuum (e.g. keys {purged[:5].tolist()}), so it cannot be read in full",
                keys=purged,
            )
        txn._write("tags", pa.table({"name": [name], "target": pa.array([target], pa.int64())}))
        txn.details = {"tag": name, "target": target}
    assert txn.record is not None
    return txn.record


def untag(store: Store, name: str, message: str) -> VersionRecord:
    """:meth:`Store.untag <modyn_store.core.store.Store.untag>`."""
    check_name("tag", name)
    with store.transaction("untag", message) as txn:
        existing = store.tags()
        if name not in existing:
            raise UnknownVersionError(f"unknown tag {name!r}; tags are {sorted(existing)}")
        txn._write("tags", pa.table({"name": [name], "target": pa.array([-1], pa.int64())}))
        txn.details = {"tag": name}
    assert txn.record is not None
    return txn.record
