"""The version log's checked records kept on disk between processes (``_logkept``): a fresh
store object reads them from one entry of the read cache instead of the ``versions`` table, and
answers exactly as a read of the table would, after checkpoints and merges, with damaged or
foreign entries, with keeping off, and never for ``verify``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _kept, _log, _logkept
from modyn_store.core._logdigest import SEALED_SCHEMA, sealed, table_records
from modyn_store.core.records import VersionRecord
from modyn_store.core.verify import verify

_T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(_kept.ENV, str(folder))
    return folder


def _store(uri: str, appends: int) -> Store:
    """A store whose log holds ``appends`` appends and a delete after every fifth, past a checkpoint."""
    s = Store.open(uri, create=True)
    for i in range(appends):
        k = np.arange(10 * i, 10 * i + 10, dtype=np.int64)
        s.append(pa.table({"key": k, "ts": k}), message=f"batch \"{i}\" é")
        if i % 5 == 4:
            s.delete(keys=k[:1])
    return s


def _entries(uri: str) -> list[Path]:
    sub = _kept.table_folder(Path(uri) / "versions.lance")
    assert sub is not None
    return sorted(sub.glob("*.kept")) if sub.is_dir() else []


def _fresh_records(uri: str) -> list[VersionRecord]:
    return Store.open(uri)._log.records()  # a new store object: nothing of the log in memory


def _forge_live(store: Store, shift: int) -> None:
    """Keep an entry for the log's table as it is, but every live count ``shift`` higher: well
    formed, with a valid digest."""
    ds = store._tables.open("versions")
    source = store._tables.kept_source("versions", ds)
    assert source is not None
    rows = ds.to_table()
    live = rows.schema.get_field_index("live")
    forged = rows.set_column(live, "live", pa.array([n + shift for n in rows.column("live").to_pylist()], pa.int64()))
    _kept.save(*source, _logkept.WHAT, _logkept.encoded(forged))


def _without_table_data(uri: str) -> None:
    for f in (Path(uri) / "versions.lance" / "data").iterdir():
        f.unlink()


def test_a_fresh_read_takes_the_kept_records_not_the_table(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    want = s._log.records()
    assert len(want) == 48 and s._log.latest() == 48
    assert _entries(uri) == []  # the writer read the table: writers keep nothing
    assert _fresh_records(uri) == want
    assert len(_entries(uri)) == 1
    _without_table_data(uri)  # a read of the table fails from here on
    assert _fresh_records(uri) == want
    assert Store.open(uri).as_of().count() == 40 * 10 - 8
    with pytest.raises(Exception):  # noqa: B017 (Lance's own error: the data files are gone)
        Store.open(uri)._tables.open("versions").to_table()


def test_the_entry_of_an_earlier_table_is_never_used(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    assert _fresh_records(uri) == s._log.records()
    [old] = _entries(uri)
    for i in range(40, 80):  # checkpoints commit the table again (and merge its fragments)
        k = np.arange(10 * i, 10 * i + 10, dtype=np.int64)
        s.append(pa.table({"key": k, "ts": k}))
    want = s._log.records()
    assert len(want) == 88
    got = _fresh_records(uri)
    assert got == want
    assert len(_entries(uri)) == 2 and old in _entries(uri)


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign"])
def test_a_damaged_or_foreign_entry_is_a_miss(tmp_path: Path, cache: Path, damage: str) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    want = s._log.records()
    assert _fresh_records(uri) == want
    [entry] = _entries(uri)
    data = entry.read_bytes()
    if damage == "flip":
        entry.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    else:  # a valid entry under the right name holding other records: read, but not records
        ds = s._tables.open("versions")
        source = Store.open(uri)._tables.kept_source("versions", ds)
        assert source is not None
        _kept.save(*source, _logkept.WHAT, (np.arange(7), np.array([2]), np.frombuffer(b"[]" + b"\0" * 6, "<i8")))
    assert _fresh_records(uri) == want  # read from the table
    assert _logkept.decoded(_kept.load(*Store.open(uri)._tables.kept_source("versions", s._tables.open("versions")),
                                       _logkept.WHAT)) == want[:32]  # written again whole


def test_a_process_that_read_the_table_before_reads_only_its_new_rows(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    reader = Store.open(uri)
    assert reader._log.records() == s._log.records()  # 48 records, 32 of them in the table
    for i in range(40, 70):  # the next checkpoint
        k = np.arange(10 * i, 10 * i + 10, dtype=np.int64)
        s.append(pa.table({"key": k, "ts": k}))
    want = s._log.records()
    assert _fresh_records(uri) == want  # keeps the new table's records
    assert len(_entries(uri)) == 2
    assert reader._log.records() == want  # its own 32 and the table's new rows, not the entry again


def test_a_forged_entry_that_disagrees_with_the_keys_is_read_around(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    want_records = s._log.records()
    want = {v: s.as_of(v).keys().tolist() for v in (30, 48)}
    _forge_live(Store.open(uri), 1)
    fooled = Store.open(uri)
    assert fooled._log.records()[29].live == want_records[29].live + 1  # (the entry is read)
    assert fooled.as_of(30).keys().tolist() == want[30]  # disagreed: the table read instead
    assert fooled._log.records() == want_records
    assert fooled.as_of(48).keys().tolist() == want[48]
    assert _fresh_records(uri) == want_records  # the entry was written again from the table


def test_a_writer_never_takes_the_kept_records(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 27)  # 32 versions: all folded into the table, no record object left
    assert s._log.latest() == 32 and s._log._listed() == []
    _forge_live(s, 5)
    same = Store.open(uri)
    assert same._log.records()[-1].live == 27 * 10 - 5 + 5  # a read took the entry
    k = np.arange(1000, 1010, dtype=np.int64)
    assert same.append(pa.table({"key": k, "ts": k})).live == 27 * 10 - 5 + 10  # counted from the table
    monkeypatch.setenv(_kept.ENV, "off")
    assert Store.open(uri).as_of().count() == 27 * 10 - 5 + 10


def test_keeping_off_reads_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_kept.ENV, "off")
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    assert _fresh_records(uri) == s._log.records()
    _without_table_data(uri)
    with pytest.raises(Exception):  # noqa: B017 (nothing kept: the table is read)
        _fresh_records(uri)


def test_verify_reads_the_table_not_the_entry(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri, 40)
    _fresh_records(uri)
    assert len(_entries(uri)) == 1
    _without_table_data(uri)
    report = verify(uri)
    assert not report.ok
    assert any("version log cannot be read" in f.what for f in report.findings), report.findings


def _awkward() -> list[VersionRecord]:
    odd = ["plain", 'é ✓ "quoted" \\ back\nslash\ttab', "", "\x00\x1f\u2028", "emoji 🙂", "]]\"],[", "[1, 2]"]
    return [
        VersionRecord(
            v, _T0 + timedelta(microseconds=v * 1_234_567 - 7) - timedelta(days=20_000 * (v % 2)),
            ["append", "delete", "erase", "train", odd[5]][v % 5], odd[v % len(odd)],
            inserted=v * 3, deleted=v % 5, erased=v % 2, live=10**12 + v, max_key=-1 if v == 1 else 2**63 - v,
            details={} if v % 6 == 0 else {"run": [v, 3], "note": odd[(v + 1) % len(odd)], "f": v / 7,
                                          "nested": {"b": [None, True, False, odd[5]]}},
        )
        for v in range(1, 30)
    ]


def test_the_kept_form_reads_back_as_the_table_does() -> None:
    written = _awkward()
    table = pa.Table.from_pylist([sealed(r) for r in written], schema=SEALED_SCHEMA)
    assert table_records(table, "t") == written
    arrays = _logkept.encoded(table)
    assert all(a.dtype == np.int64 for a in arrays)
    assert _logkept.decoded(arrays) == written
    assert _logkept.decoded(_logkept.encoded(table.slice(0, 0))) == []


@pytest.mark.parametrize(
    "arrays",
    [
        (),
        (np.arange(7),),
        (np.arange(7), np.array([2])),
        (np.arange(8), np.array([2]), np.frombuffer(b"[]" + b"\0" * 6, "<i8")),  # 8 numbers: not 7 columns
        (np.arange(7), np.array([9]), np.frombuffer(b"[]" + b"\0" * 6, "<i8")),  # length past the text
        (np.arange(7), np.array([-1]), np.frombuffer(b"[]" + b"\0" * 6, "<i8")),
        (np.arange(7), np.array([17]), np.frombuffer(b'[["a"],[""],[{}]]' + b"\0" * 15, "<i8")),  # padding past 7
        (np.arange(7), np.array([3]), np.frombuffer(b"[1," + b"\0" * 5, "<i8")),  # not JSON
        (np.arange(7), np.array([2]), np.frombuffer(b"\xff\xfe" + b"\0" * 6, "<i8")),  # not UTF-8
        (np.arange(7), np.array([8]), np.frombuffer(b"[[],[],]", "<i8")),
        (np.arange(7), np.array([8]), np.frombuffer(b"[[],[],1", "<i8")),
        (np.arange(7), np.array([8]), np.frombuffer(b"[[],[],{", "<i8")),
        (np.arange(7), np.array([16]), np.frombuffer(b'[["a"],[""],[]]\0', "<i8")),  # a list one short
        (np.arange(7), np.array([10]), np.frombuffer(b"[[],[],[]]" + b"\0" * 6, "<i8")),  # lists of 0, not 1
    ],
)
def test_an_entry_this_module_did_not_write_is_a_miss(arrays: tuple[np.ndarray, ...]) -> None:
    assert _logkept.decoded(arrays) is None


def test_an_earlier_release_table_with_nulls_is_read_but_not_kept(tmp_path: Path, cache: Path) -> None:
    uri = str(tmp_path / "s")
    s = _store(uri, 40)
    want = s._log.records()
    # the table as a release before digests wrote it, plus a null where this release writes none
    ds = s._tables.open("versions")
    rows = ds.to_table().drop_columns(["digest"])
    rows = rows.set_column(rows.schema.get_field_index("message"), "message",
                           pa.array([None] + rows.column("message").to_pylist()[1:], pa.string()))
    import lance

    lance.write_dataset(rows, ds.uri, mode="overwrite")
    got = _fresh_records(uri)
    assert [r.version for r in got] == [r.version for r in want]
    assert _entries(uri) == []
    assert _log.CHECKPOINT_EVERY == 32  # (the store above folds 32 records into the table)
