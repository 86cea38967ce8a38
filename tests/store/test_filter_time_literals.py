"""A filter comparing a time column with text or a number says how to write a time literal, on
every read and write that takes a filter; with the literal written so, it selects the rows."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidFilterError


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "s"), create=True)
    ts = pa.array([dt.datetime(2007, 1, 1), dt.datetime(2009, 1, 1)], pa.timestamp("us", tz="UTC"))
    day = pa.array([dt.date(2007, 1, 1), dt.date(2009, 1, 1)], pa.date32())
    s.append(pa.table({"ts": ts, "day": day, "x": [1.0, 2.0]}))
    return s


READS = {
    "to_table": lambda s, f: s.as_of().to_table(filter=f),
    "to_batches": lambda s, f: list(s.as_of().to_batches(filter=f)),
    "delete": lambda s, f: s.delete(where=f),
}


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize(("flt", "hint"), [
    ("ts < '2008-01-01'", "TIMESTAMP '2008-01-01 00:00:00'"),
    ("ts < 5", "TIMESTAMP '2008-01-01 00:00:00'"),
    ("day < 5", "DATE '2008-01-01'"),
])
def test_a_time_compared_with_text_or_a_number_names_the_literal(store: Store, read: str, flt: str,
                                                                  hint: str) -> None:
    before = store.version
    with pytest.raises(InvalidFilterError, match=f"invalid filter.*write a .* as {hint}"):
        READS[read](store, flt)
    assert store.version == before


def test_the_literal_the_hint_names_selects_the_rows(store: Store) -> None:
    assert store.as_of().to_table(filter="ts < TIMESTAMP '2008-01-01 00:00:00'").column("x").to_pylist() == [1.0]
    assert store.as_of().to_table(filter="day > DATE '2008-01-01'").column("x").to_pylist() == [2.0]


def test_other_filter_errors_get_no_time_hint(store: Store) -> None:
    with pytest.raises(InvalidFilterError) as err:
        store.as_of().to_table(filter="nope = 1")
    assert "TIMESTAMP" not in str(err.value) and "DATE" not in str(err.value)


@pytest.mark.parametrize("tz", ["America/New_York", "+05:30"])
def test_a_time_literal_on_a_zoned_column_is_refused_not_read_as_local_time(tmp_path: Path, tz: str) -> None:
    """Lance read TIMESTAMP '2024-01-01 00:00:00' as midnight in the column's zone, so on a New
    York column the filter matched (and delete removed) rows up to 05:00 UTC."""
    s = Store.open(str(tmp_path / "z"), create=True)
    midnight = 1704067200  # 2024-01-01 00:00:00 UTC
    s.append(pa.table({"ts": pa.array([midnight - 3600, midnight, midnight + 3600], pa.timestamp("s", tz=tz))}))
    for flt in ("ts < TIMESTAMP '2024-01-01 00:00:00'", "ts < TIMESTAMP '2024-01-01T00:00:00Z'",
                "ts < CAST('2024-01-01 00:00:00' AS TIMESTAMP)", "ts < to_timestamp(1704067200)",
                "ts < arrow_cast('2024-01-01 00:00:00', 'Timestamp(Second, None)')"):
        for read in sorted(READS):
            with pytest.raises(InvalidFilterError, match=f"zone {re.escape(tz)}.*arrow_cast"):
                READS[read](s, flt)
        with pytest.raises(InvalidFilterError, match="arrow_cast"):
            s.read_table("samples", filter=flt)
    assert s.version == 1 and s.as_of().count() == 3
    utc = "ts < arrow_cast('2024-01-01 00:00:00', 'Timestamp(Microsecond, Some(\"UTC\"))')"
    assert s.as_of().to_table(filter=utc).column("key").to_pylist() == [0]
    assert s.delete(where=utc).deleted == 1


def test_a_time_literal_on_a_utc_column_still_filters(store: Store) -> None:
    assert store.as_of().to_table(filter="`ts` < TIMESTAMP '2008-01-01 00:00:00'").column("x").to_pylist() == [1.0]


def test_a_time_literal_on_a_utc_column_filters_beside_a_zoned_column(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "z"), create=True)
    midnight = 1704067200  # 2024-01-01 00:00:00 UTC
    s.append(pa.table({"ts": pa.array([midnight - 3600, midnight, midnight + 3600], pa.timestamp("s", tz="UTC")),
                       "local": pa.array([midnight] * 3, pa.timestamp("s", tz="Europe/Berlin"))}))
    assert s.as_of().to_table(filter="ts < TIMESTAMP '2024-01-01 00:00:00'").column("key").to_pylist() == [0]
    with pytest.raises(InvalidFilterError, match="zone Europe/Berlin"):  # the zoned column named: refused
        s.as_of().to_table(filter="`local` < TIMESTAMP '2024-01-01 00:00:00'")
    assert s.delete(where="ts < TIMESTAMP '2024-01-01 00:00:00'").deleted == 1


@pytest.mark.parametrize("tz", ["GMT", "Etc/GMT", "UCT", "Zulu", "-00:00"])
def test_a_time_literal_on_a_column_of_utc_by_another_name_filters(tmp_path: Path, tz: str) -> None:
    s = Store.open(str(tmp_path / "z"), create=True)
    midnight = 1704067200  # 2024-01-01 00:00:00 UTC
    s.append(pa.table({"ts": pa.array([midnight - 3600, midnight, midnight + 3600], pa.timestamp("s", tz=tz))}))
    assert s.as_of().to_table(filter="ts < TIMESTAMP '2024-01-01 00:00:00'").column("key").to_pylist() == [0]
