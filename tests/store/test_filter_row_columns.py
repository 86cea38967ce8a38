"""User filters cannot name Lance's row columns, whose rows and versions are not the store's,
nor use SQL that Lance reads otherwise than written or cannot plan."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidFilterError


_N = itertools.count()


def _store() -> Store:
    s = Store.open(f"memory://filter-row-columns-{next(_N)}", create=True)
    s.append(pa.table({"ts": [1, 2], "x": [0.1, 0.2], "label": [0, 1]}))
    s.tag("a")  # store version 2 leaves the samples table alone: the two version counts differ
    s.append(pa.table({"ts": [3, 4], "x": [0.3, 0.4], "label": [0, 1]}))
    return s


@pytest.mark.parametrize("flt", ["_row_created_at_version = 3", "_rowoffset = 0", "x > 0 AND _rowid >= 0",
                                 "`_rowaddr` >= 0", '"_row_last_updated_at_version" > 0'])
def test_row_columns_are_refused_in_reads_and_deletes(flt: str) -> None:
    s = _store()
    with pytest.raises(InvalidFilterError, match="row columns"):
        s.as_of().to_table(filter=flt)
    before = [r.version for r in s.log()]
    with pytest.raises(InvalidFilterError, match="row columns"):
        s.delete(where=flt)
    assert [r.version for r in s.log()] == before
    assert s.as_of().count() == 4


def test_the_store_version_column_and_look_alike_text_still_filter() -> None:
    s = _store()
    assert s.as_of().to_table(filter="_version = 3").column("key").to_pylist() == [2, 3]
    assert s.as_of().to_table(filter="x > 0.15 AND label = 1").column("key").to_pylist() == [1, 3]


@pytest.mark.parametrize("flt", ["bogus > 1", "x >"])
def test_a_bad_filter_is_refused_at_a_version_without_rows(flt: str) -> None:
    """Version 0 has no rows, so no scan checks the filter; it is checked against the columns
    all the same (it was an empty answer)."""
    s = _store()
    for version in (0, 1):
        with pytest.raises(InvalidFilterError, match="invalid filter"):
            s.as_of(version).to_table(filter=flt)
        with pytest.raises(InvalidFilterError, match="invalid filter"):
            s.as_of(version).to_batches(["x"], flt)
    assert s.as_of(0).to_table(["x"], filter="x > 0").num_rows == 0


@pytest.mark.parametrize("flt", ["bogus > 1", "x >", "label = 1", "ts = 'abc'", "_rowid >= 0"])
def test_a_bad_filter_is_refused_before_the_first_append(flt: str) -> None:
    """No append yet, so no samples table and no schema: the filter is checked against the
    columns every store has (key, ts, _version), not accepted on trust."""
    s = Store.open(f"memory://filter-before-rows-{next(_N)}", create=True)
    with pytest.raises(InvalidFilterError, match="invalid (filter|where)"):
        s.delete(where=flt)
    assert s.version == 0 and s.log() == []
    with pytest.raises(InvalidFilterError, match="invalid filter"):
        s.as_of().to_table(filter=flt)


@pytest.mark.parametrize("flt", ["key >= 0", "key % 5 = 0", "ts < 30", "ts > timestamp '2024-01-01 00:00:00'"])
def test_a_valid_filter_before_the_first_append_deletes_nothing(flt: str) -> None:
    s = Store.open(f"memory://filter-before-rows-{next(_N)}", create=True)
    rec = s.delete(where=flt)
    assert (rec.version, rec.deleted) == (1, 0)
    assert s.as_of().to_table(filter=flt).num_rows == 0
    s.append(pa.table({"ts": [10, 40]}))
    assert s.as_of().count() == 2


@pytest.mark.parametrize("flt", ['"label" = 1', '"name" = \'a\'', '"name" <> \'a\'', "x > 0 AND \"name\" IS NULL"])
def test_a_double_quoted_name_is_refused_not_read_as_text(flt: str) -> None:
    """Lance reads "name" as the text 'name': the filter would compare constants and match no
    row or every row; a backtick-quoted name is the column."""
    s = Store.open(f"memory://filter-double-quotes-{next(_N)}", create=True)
    s.append(pa.table({"ts": [1, 2, 3], "x": [0.1, 0.2, 0.3], "label": [0, 1, 1], "name": ["a", "b", "name"]}))
    with pytest.raises(InvalidFilterError, match="double quotes"):
        s.as_of().to_table(filter=flt)
    with pytest.raises(InvalidFilterError, match="double quotes"):
        s.delete(where=flt)
    assert s.version == 1 and s.as_of().count() == 3
    assert s.as_of().to_table(filter="`name` = 'a'").column("key").to_pylist() == [0]


@pytest.mark.parametrize("flt", ["label = $1", "label = ?", "label = :x", "x > 0 AND label = $$1$$",
                                 "label = 1 OR x = N'a'", "b'1' = x", "x = R'a'"])
def test_placeholders_and_prefixed_text_are_refused_before_lance_plans_them(flt: str) -> None:
    """Lance's planner aborted on these (a RuntimeError, not a typed error)."""
    s = _store()
    with pytest.raises(InvalidFilterError, match="not supported"):
        s.as_of().to_table(filter=flt)
    before = [r.version for r in s.log()]
    with pytest.raises(InvalidFilterError, match="not supported"):
        s.delete(where=flt)
    assert [r.version for r in s.log()] == before and s.as_of().count() == 4


def test_names_with_dollar_signs_and_casts_still_filter() -> None:
    s = Store.open(f"memory://filter-dollar-{next(_N)}", create=True)
    s.append(pa.table({"ts": [1, 2], "price$": [5, 7], "label": [0, 1]}))
    assert s.as_of().to_table(filter="price$ > 6").column("key").to_pylist() == [1]
    assert s.as_of().to_table(filter="label::bigint = 1 AND `price$` = 7").column("key").to_pylist() == [1]


def test_an_unknown_name_lists_only_the_columns_a_filter_may_name() -> None:
    s = _store()
    for read in (lambda f: s.as_of().to_table(filter=f), lambda f: Store.open(
            f"memory://filter-row-columns-{next(_N)}", create=True).as_of().to_table(filter=f)):
        with pytest.raises(InvalidFilterError, match="Valid fields are") as err:
            read("nosuch = 1")
        assert "_version" in str(err.value) and "_row" not in str(err.value)


@pytest.mark.parametrize("flt", ["key = -9223372036854775808", "key > - 9223372036854775808 AND x > 0"])
def test_the_smallest_int64_in_a_filter_is_refused_saying_how_to_write_it(flt: str) -> None:
    s = _store()
    with pytest.raises(InvalidFilterError, match=r"write it as \(-9223372036854775807 - 1\)") as err:
        s.as_of().to_table(filter=flt)
    assert "Float64" not in str(err.value) and ".rs:" not in str(err.value)
    with pytest.raises(InvalidFilterError, match="smallest int64"):
        s.delete(where=flt)
    assert s.as_of().count() == 4
    assert s.as_of().to_table(filter="key > (-9223372036854775807 - 1)").num_rows == 4
    with pytest.raises(InvalidFilterError, match="99999999999999999999 is beyond int64"):
        s.as_of().to_table(filter="key < 99999999999999999999")
