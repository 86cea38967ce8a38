"""``verify`` checks the per-fragment ``_version`` ranges that reads go by
(``_meta/samples.fragments.jsonl``, see :mod:`modyn_store.core._fragments`) against the rows
it scans: a range that does not hold its fragment's rows makes reads of some versions wrong
(an error); a wider one is only slower, and one recorded with another row count is not used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _verify_samples
from modyn_store.core._fragments import _encode
from modyn_store.core.verify import verify


def _two_appends(tmp_path: Path) -> tuple[Store, dict[int, int]]:
    """Appends of 10 and 5 rows: fragments 0 (version 1) and 1 (version 2); their row counts."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    store.append(pa.table({"ts": np.arange(10, 15)}))
    ds = store._tables.open("samples")
    assert ds is not None
    assert store._tables.fragment_versions("samples", ds) == {0: (1, 1), 1: (2, 2)}
    return store, {f.fragment_id: f.physical_rows for f in ds.get_fragments()}


def _record(store: Store, ranges: dict[int, list[int]]) -> None:
    """Replace the journal by one line with a valid digest."""
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({str(k): v for k, v in ranges.items()}))


def _errors(uri: str, deep: bool) -> list[str]:
    return [f.what for f in verify(uri, deep=deep).errors]


@pytest.mark.parametrize("deep", [False, True])
def test_a_range_below_its_rows_versions_is_found(tmp_path: Path, deep: bool) -> None:
    store, rows = _two_appends(tmp_path)
    _record(store, {0: [1, 1, rows[0]], 1: [1, 1, rows[1]]})  # fragment 1 holds version 2
    # a read of version 1 takes fragment 1 whole: the damage verify must report
    assert Store.open(store.uri).as_of(1).to_table(["key"]).num_rows == 15
    errors = _errors(store.uri, deep)
    assert len(errors) == 1
    assert "fragment 1: versions 1..1 recorded, its rows hold 2..2" in errors[0]
    assert "samples.fragments.jsonl" in errors[0]


@pytest.mark.parametrize("deep", [False, True])
def test_a_range_above_its_rows_versions_is_found(tmp_path: Path, deep: bool) -> None:
    store, rows = _two_appends(tmp_path)
    _record(store, {0: [1, 1, rows[0]], 1: [3, 3, rows[1]]})  # a read of version 2 skips fragment 1
    assert Store.open(store.uri).as_of(2).to_table(["key"]).num_rows == 10
    errors = _errors(store.uri, deep)
    assert len(errors) == 1 and "fragment 1: versions 3..3 recorded, its rows hold 2..2" in errors[0]


def test_a_wrong_range_in_the_file_of_earlier_releases_is_found(tmp_path: Path) -> None:
    store, rows = _two_appends(tmp_path)
    os.remove(store.path("_meta/samples.fragments.jsonl"))
    with open(store.path("_meta/samples.fragments.json"), "w") as fh:  # (no digest)
        json.dump({"0": [1, 1, rows[0]], "1": [1, 1, rows[1]]}, fh)
    errors = _errors(store.uri, False)
    assert len(errors) == 1 and "fragment 1: versions 1..1 recorded" in errors[0]
    assert "samples.fragments.json" in errors[0]


def test_a_later_line_of_the_journal_wins(tmp_path: Path) -> None:
    store, rows = _two_appends(tmp_path)
    with open(store.path("_meta/samples.fragments.jsonl"), "ab") as fh:
        fh.write(b"\n" + _encode({"1": [1, 1, rows[1]]}))
    assert len(_errors(store.uri, False)) == 1
    with open(store.path("_meta/samples.fragments.jsonl"), "ab") as fh:
        fh.write(b"\n" + _encode({"1": [2, 2, rows[1]]}))
    assert _errors(store.uri, False) == []


def test_a_wider_range_is_no_damage(tmp_path: Path) -> None:
    """A range holding more versions than its rows only makes reads filter by version."""
    store, rows = _two_appends(tmp_path)
    _record(store, {0: [0, 2, rows[0]], 1: [1, 5, rows[1]]})
    fresh = Store.open(store.uri)
    assert [fresh.as_of(v).to_table(["key"]).num_rows for v in range(3)] == [0, 10, 15]
    assert [fresh.as_of(v).count() for v in range(3)] == [0, 10, 15]
    report = verify(store.uri, deep=True)
    assert report.findings == ()
    assert "fragment version and key ranges" in report.checked


def test_a_range_of_another_row_count_is_not_used_and_is_a_note(tmp_path: Path) -> None:
    store, rows = _two_appends(tmp_path)
    _record(store, {0: [1, 1, rows[0]], 1: [1, 1, rows[1] + 1]})
    assert Store.open(store.uri).as_of(1).to_table(["key"]).num_rows == 10  # (read from the column)
    report = verify(store.uri, deep=True)
    assert report.ok
    assert [f.severity for f in report.findings] == ["note"]
    assert "another row count" in report.findings[0].what and "[1]" in report.findings[0].what


def test_ranges_stay_right_through_deletes_erasures_vacuum_and_compaction(tmp_path: Path) -> None:
    """Rows Lance deleted (erase, vacuum) leave a recorded range wider than the rows: no finding."""
    store = Store.open(str(tmp_path / "s"), create=True)
    for v in range(70):  # more fragments than a write compacts at
        store.append(pa.table({"ts": np.arange(v * 3, v * 3 + 3)}))
        if v % 10 == 5:
            store.delete(keys=[v * 3])
    store.erase([1, 4, 100], reason="test")
    store.vacuum(keep_versions=3, dry_run=False)
    report = verify(store.uri, deep=True)
    assert report.findings == ()
    store.compact()
    assert verify(store.uri, deep=True).findings == ()


def test_spans_of_a_batch_of_several_fragments() -> None:
    spans: dict[int, tuple[int, int]] = {2: (4, 4)}
    _verify_samples._note_spans(spans, np.array([0, 0, 2, 1, 0, 2]), np.array([3, 1, 7, 5, 2, 6]))
    assert spans == {0: (1, 3), 1: (5, 5), 2: (4, 7)}
    _verify_samples._note_spans(spans, np.array([1, 1]), np.array([9, 0]))
    assert spans[1] == (0, 9)
