"""Tags and version comparisons at their edges: a tag promises its version can be read, and a
diff compares two versions of one state of the store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import (
    DataUnavailableError,
    InvalidArgumentError,
    UnknownKeyError,
    UnknownVersionError,
)


def _vacuumed(path: Path) -> Store:
    """Version 1 holds keys 0..2, version 2 deletes key 0, vacuum (version 4) purges its row."""
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.delete(keys=[0])
    store.append(pa.table({"ts": [4]}))
    assert store.vacuum(keep_versions=1, dry_run=False).keys.tolist() == [0]
    return store


def test_a_version_whose_rows_vacuum_purged_cannot_be_tagged(tmp_path: Path) -> None:
    store = _vacuumed(tmp_path / "s")
    before = store.version
    with pytest.raises(DataUnavailableError, match=r"version 1 .*purged") as err:
        store.tag("old", 1)
    assert err.value.keys.tolist() == [0]
    assert store.version == before and store.tags() == {}
    assert Store.open(str(tmp_path / "s")).version == before
    # versions vacuum left whole can still be tagged, and read through the tag
    store.tag("now", 2)
    assert store.as_of("now").to_table().num_rows == 2


def test_a_vacuum_that_commits_while_a_tag_waits_for_the_lock_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check runs under the writer lock: a vacuum of another ``Store`` (process) that
    commits after the tag resolved its version, before it took the lock, is not missed."""
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.delete(keys=[0])
    store.append(pa.table({"ts": [4]}))
    other = Store.open(str(path))
    transaction = store.transaction

    def after_a_vacuum(op: str, message: str = "") -> object:
        assert other.vacuum(keep_versions=1, dry_run=False).keys.tolist() == [0]
        return transaction(op, message)

    monkeypatch.setattr(store, "transaction", after_a_vacuum)
    with pytest.raises(DataUnavailableError, match="version 1"):
        store.tag("old", 1)
    assert store.tags() == {} and store.version == 4


def test_tags_of_the_empty_version_and_of_erased_rows_are_readable(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.tag("empty")  # version 0: nothing to read, nothing purged
    store.append(pa.table({"ts": [1, 2]}))
    store.delete(keys=[0])
    store.append(pa.table({"ts": [3]}))
    store.vacuum(keep_versions=1, dry_run=False)
    store.erase([0], reason="request")  # the purged row is erased: version 2 reads in full again
    store.tag("before-delete", 2)
    assert store.as_of("empty").count() == 0
    assert store.as_of("before-delete").to_table().column("key").to_pylist() == [1]


def test_a_tag_removed_and_vacuumed_cannot_be_made_again(tmp_path: Path) -> None:
    """A tag keeps its version's rows; once removed, vacuum may purge them, and the same name
    (or any) cannot point at the version again."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.tag("release", 1)
    store.delete(keys=[0, 1])
    store.append(pa.table({"ts": [4]}))
    assert store.vacuum(keep_versions=1, dry_run=False).keys.tolist() == []  # the tag keeps them
    assert store.as_of("release").count() == 3
    store.untag("release")
    assert store.vacuum(keep_versions=1, dry_run=False).keys.tolist() == [0, 1]
    with pytest.raises(DataUnavailableError, match="version 1 as 'release'") as err:
        store.tag("release", 1)
    assert err.value.keys.tolist() == [0, 1]
    assert "release" not in store.tags()


def test_an_erase_that_commits_while_a_diff_reads_is_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Erasure applies to every version: an erase of another ``Store`` (process) that commits
    between the diff's two reads must not make its keys look deleted from ``a`` to ``b``."""
    from modyn_store.core.snapshot import Snapshot

    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"ts": [1, 2, 3]}))
    store.tag("first")
    store.append(pa.table({"ts": [4]}))
    other = Store.open(path)
    keys = Snapshot.keys
    erased: list[int | None] = []

    def keys_then_erase(snap: Snapshot) -> object:
        out = keys(snap)
        if not erased:
            erased.append(other.erase([0], reason="request").version)
        return out

    monkeypatch.setattr(Snapshot, "keys", keys_then_erase)
    d = store.diff("first", 3)
    assert erased == [4] and (d.inserted.tolist(), d.deleted.tolist()) == ([3], [])
    d = store.diff(3, "first")
    assert (d.inserted.tolist(), d.deleted.tolist()) == ([], [3])


@pytest.mark.parametrize("op", ["tag", "untag", "train"])
def test_an_extension_transaction_named_like_a_store_operation_is_no_damage(tmp_path: Path, op: str) -> None:
    """``transaction(op)`` takes any name: one named ``tag`` (``untag``, ``train``) writes its own
    tables only, so the store must not read its record as a write of ``tags`` (or of the
    trainings) and report those tables lost, refusing every tag from then on."""
    from modyn_store.core.verify import verify

    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"ts": [1, 2]}))
    with store.transaction(op) as txn:
        txn.append("notes", pa.table({"text": ["hello"]}))
    assert store.tags() == {}
    store.tag("after", 1)
    assert store.as_of("after").count() == 2
    assert Store.open(path).read_table("trainings") is None
    report = verify(path)
    assert report.ok, str(report)


def test_a_refused_tag_or_write_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    """The checks under the writer lock come after the write's intent: a refusal puts back the
    finished intent it found, so the store's files are as before the call."""
    path = tmp_path / "s"
    store = Store.open(str(path), create=True)
    store.append(pa.table({"key": [0, 1], "ts": [1, 2]}), key="key", ts="ts")
    store.tag("t1")

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    before, log = files(), [r.version for r in store.log()]
    with pytest.raises(InvalidArgumentError, match="already names version 1"):
        store.tag("t1")
    with pytest.raises(UnknownVersionError):
        store.untag("nope")
    with pytest.raises(UnknownVersionError):
        store.tag("t2", "nope")
    with pytest.raises(UnknownKeyError):
        store.delete(keys=[99])
    assert files() == before
    assert [r.version for r in store.log()] == log
