"""The rows of the log's table read column by column: the same records and the same checks
as row by row, for every field a writer stores."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from modyn_store import CorruptionError
from modyn_store.core._logdigest import (
    RECORD_FIELDS, SEALED_SCHEMA, _row_digest, check, plain_table, records_of, sealed, table_records,
)
from modyn_store.core.records import VERSIONS_SCHEMA, VersionRecord

_T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _records() -> list[VersionRecord]:
    odd = ['plain', 'é ✓ "quoted" \\ back\nslash\ttab', "", "\x00\x1f\u2028", "emoji 🙂"]
    out = []
    for v in range(1, 41):
        out.append(VersionRecord(
            v, _T0 + timedelta(microseconds=v * 1_234_567 - 7), ["append", "delete", "erase", "train"][v % 4],
            odd[v % len(odd)], inserted=v * 3, deleted=v % 5, erased=v % 2, live=10**12 + v,
            max_key=-1 if v == 1 else 2**63 - v,
            details={"checksum": f"{v:016x}", "run": [v, 3], "note": odd[(v + 1) % len(odd)], "f": v / 7,
                     "nested": {"b": [None, True, False]}},
        ))
    return out


def _row_by_row(table: pa.Table) -> list[VersionRecord]:
    rows = table.sort_by("_version").to_pylist()
    for r in rows:
        check(r, "t")
    return [VersionRecord.from_row(r) for r in rows]


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SEALED_SCHEMA)


def test_the_columns_read_as_the_rows_do_in_any_stored_order() -> None:
    written = _records()
    rows = [sealed(r) for r in written]
    shuffled = _table(rows[::-1][:20] + rows[:20])
    assert plain_table(shuffled)  # (read by columns)
    assert table_records(shuffled, "t") == _row_by_row(shuffled) == written
    # rows of an earlier release: no digest (null) or no digest column at all
    mixed = [dict(r, digest=None) if r["_version"] % 3 == 0 else r for r in rows]
    assert table_records(_table(mixed), "t") == written
    bare = pa.Table.from_pylist([r.to_row() for r in written], schema=VERSIONS_SCHEMA)
    assert table_records(bare, "t") == written
    assert table_records(_table([]), "t") == []


@pytest.mark.parametrize(
    "field", ["time", "op", "message", "inserted", "deleted", "erased", "live", "max_key", "details"]
)
def test_a_changed_field_is_damage_read_by_columns(field: str) -> None:
    rows = [sealed(r) for r in _records()]
    bad = dict(rows[16])
    bad[field] = {
        "time": bad["time"] + timedelta(microseconds=1),
        "op": "vacuum",
        "message": bad["message"] + " ",
        "details": bad["details"].replace('"f": ', '"f": 1'),
    }.get(field, bad[field] + 1 if isinstance(bad[field], int) else None)
    rows[16] = bad
    with pytest.raises(CorruptionError, match=r"version 17 in 't' does not match its digest"):
        table_records(_table(rows), "t")


def test_rows_that_are_not_records_are_damage_not_a_type_error() -> None:
    rows = [r.to_row() for r in _records()[:3]]  # (no digests: an earlier release's rows)
    rows[1]["details"] = "{not json"
    with pytest.raises(CorruptionError, match=r"a record in 't' is unreadable"):
        table_records(pa.Table.from_pylist(rows, schema=VERSIONS_SCHEMA), "t")
    rows[1]["details"] = "{}"
    rows[2]["live"] = None  # a null: read row by row
    with pytest.raises(CorruptionError, match=r"a record in 't' is unreadable"):
        table_records(pa.Table.from_pylist(rows, schema=VERSIONS_SCHEMA), "t")


def test_damaged_details_without_digests_never_read_as_other_values() -> None:
    # three damaged texts of an earlier release's rows that, joined into one array, would read
    # as three values ({"a": [1, 2]}, {}, {}): each one alone is no JSON
    rows = [r.to_row() for r in _records()[:3]]
    for row, text in zip(rows, ['{"a": [1', '2]}', "{}, {}"]):
        row["details"] = text
    with pytest.raises(CorruptionError, match="unreadable"):
        table_records(pa.Table.from_pylist(rows, schema=VERSIONS_SCHEMA), "t")


def test_a_details_text_that_is_two_values_is_damage() -> None:
    rows = [sealed(r) for r in _records()[:3]]
    rows[1]["details"] = "{}, {}"  # the digest made for it (a forged row): two values, not one
    rows[1]["digest"] = _row_digest(rows[1])
    with pytest.raises(CorruptionError, match="3 details texts read as 4 values"):
        table_records(_table(rows), "t")


def test_records_made_field_by_field_equal_those_of_the_dataclass() -> None:
    assert tuple(f.name for f in dataclasses.fields(VersionRecord)) == RECORD_FIELDS  # a new field: fill it there
    when = [0, 1_700_000_000_123_456, -5]
    fields = [[1, 2, 3], when, ["append", "delete", "tag"], ["", "m\n", "é"], [10, 0, 0], [0, 4, 0], [0, 0, 0],
              [10, 6, 6], [9, 9, -1]]
    details = [{"checksum": "ab", "run": [0, 10]}, {}, {"tag": "t"}]
    got = records_of(fields, details)
    assert all(tuple(vars(r)) == RECORD_FIELDS for r in got)  # every field set, none more
    want = [VersionRecord(v, datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=t), op, msg, i, d, e, lv, mk, det)
            for v, t, op, msg, i, d, e, lv, mk, det in zip(*fields, details)]
    assert got == want
    assert [repr(r) for r in got] == [repr(r) for r in want]
    assert [r.to_row() for r in got] == [r.to_row() for r in want]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].live = 3  # type: ignore[misc]
