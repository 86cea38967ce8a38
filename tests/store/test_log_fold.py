"""Sums over a version log kept per process (``modyn_store.core._logfold``): the key checksum a
read expects equals the sum over every record for every version and every committed erase, a
read of the next version folds one record, and damage found in a record is still raised."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import integrity
from modyn_store.core._logfold import LogFold
from modyn_store.core.errors import CorruptionError


def _reference(records: list[Any], version: int, committed: int, tombstoned: np.ndarray) -> int | None:
    """The expected checksum summed over every record (the walk a read did before sums were kept)."""
    total = 0
    deleted: int | None = 0
    for r in records[:version]:
        if r.op == "append":
            if "checksum" not in r.details:
                return None
            total += int(r.details["checksum"], 16)
        elif r.op == "delete" and deleted is not None:
            cs = r.details.get("checksum")
            deleted = None if cs is None else deleted + int(cs, 16)
    total -= integrity.key_checksum(tombstoned) if deleted is None else deleted
    for r in records[:committed]:
        if r.op == "erase":
            total -= sum(cs for ins, dele, _, cs in r.details["spans"]
                         if 0 <= ins <= version and (dele < 0 or dele > version))
    return total & integrity.MASK


def _store(uri: str) -> Store:
    s = Store.open(uri, create=True)
    rng = np.random.default_rng(4)
    for i in range(12):
        keys = np.arange(100 * i, 100 * i + 60, dtype=np.int64)
        s.append(pa.table({"key": keys, "ts": keys}))
        if i % 3 == 1:
            s.delete(keys=rng.choice(keys, 5, replace=False))
        if i % 5 == 4:
            s.erase(keys[-3:], reason="test")
    return s


def test_kept_sums_equal_the_walk_over_every_record_in_any_order(tmp_path: Path) -> None:
    s = _store(f"{tmp_path}/s")
    records = s._read_records()
    n = len(records)
    pairs = [(v, c) for c in range(1, n + 1) for v in range(1, c + 1)]
    for order in (pairs, pairs[::-1], [pairs[i] for i in np.random.default_rng(1).permutation(len(pairs))]):
        integrity._SUMS.clear()
        for v, c in order:
            tomb = np.arange(0)  # every delete recorded its checksum: the tombstones are not read
            assert integrity.expected_checksum(s, v, c, tomb, records) == _reference(records, v, c, tomb), (v, c)
    # the reads agree with the log
    for v in range(1, n + 1):
        assert s.as_of(v).keys().size == integrity.expected_live(s, v, n, records)


def test_the_next_version_folds_one_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _store(f"{tmp_path}/s")
    folded: list[int] = []
    real = integrity._SUMS._fold

    def counted(before: Any, records: Any) -> Any:
        folded.append(len(records))
        return real(before, records)

    monkeypatch.setattr(integrity._SUMS, "_fold", counted)
    integrity._SUMS.clear()
    s.as_of().keys()
    assert folded == [s.version]
    folded.clear()
    k = np.arange(10**6, 10**6 + 5, dtype=np.int64)
    s.append(pa.table({"key": k, "ts": k}))
    got = s.as_of().keys()
    assert folded == [1] and np.isin(k, got).all()
    folded.clear()
    s.as_of().keys()  # the same version again: nothing folded
    assert folded == []


def test_a_malformed_checksum_is_damage_even_after_the_versions_before_were_kept(tmp_path: Path) -> None:
    s = _store(f"{tmp_path}/s")
    records = list(s._read_records())
    n = len(records)
    integrity._SUMS.clear()
    integrity.expected_checksum(s, n - 1, n - 1, np.arange(0), records)
    last = records[-1]
    bad = SimpleNamespace(version=last.version, op="append", details={**last.details, "checksum": "zz"})
    records[-1] = bad  # type: ignore[call-overload]
    with pytest.raises(CorruptionError, match="malformed key checksum"):
        integrity.expected_checksum(s, n, n, np.arange(0), records)


def test_a_fold_is_kept_by_the_identity_of_its_first_and_last_record() -> None:
    calls: list[int] = []

    def fold(before: int | None, records: Any) -> int:
        calls.append(len(records))
        return (before or 0) + sum(r.value for r in records)

    total = LogFold(fold, size=2)
    log = [SimpleNamespace(value=v) for v in (1, 2, 4, 8)]
    assert total(log, 3) == 7 and calls == [3]
    assert total(log, 3) == 7 and calls == [3]  # kept
    assert total(log, 4) == 15 and calls == [3, 1]  # extended by one record
    assert total(log, 9) == 15 and calls == [3, 1]  # (clipped to the log)
    other = [SimpleNamespace(value=100), *log[1:]]  # the same last records, another first
    assert total(other, 4) == 114 and calls == [3, 1, 4]
    assert total(log, 0) is None and total([], 3) is None
    # at most ``size`` values kept: the oldest goes
    total.clear()
    total(log, 1), total(log, 3), total(other, 4)
    calls.clear()
    assert total(log, 1) == 1 and calls == [1]  # folded again: it was dropped
    assert total(other, 4) == 114 and calls == [1]  # the latest is still kept


def _rec(version: int, op: str, **details: Any) -> SimpleNamespace:
    return SimpleNamespace(version=version, op=op, details=details)


@pytest.mark.parametrize("missing", ["append", "delete", "none"])
def test_records_of_earlier_releases_without_checksums(missing: str) -> None:
    """Appends or deletes written before checksums were recorded: the log cannot say from there
    on (appends), or the tombstones read stand for the deletes (deletes)."""
    cs = lambda v: f"{v * 7919:x}"  # noqa: E731
    log = [
        _rec(1, "append", checksum=cs(1)),
        _rec(2, "delete", checksum=cs(2)),
        _rec(3, "append") if missing == "append" else _rec(3, "append", checksum=cs(3)),
        _rec(4, "delete") if missing == "delete" else _rec(4, "delete", checksum=cs(4)),
        _rec(5, "append", checksum=cs(5)),
        _rec(6, "delete", checksum=cs(6)),
        _rec(7, "erase", spans=[[1, -1, 1, 11], [5, 6, 1, 13]]),
        _rec(8, "append", checksum=cs(8)),
    ]
    tomb = np.array([3, 9])
    for order in (1, -1):
        integrity._SUMS.clear()
        for c in range(1, 9)[::order]:
            for v in range(1, c + 1)[::order]:
                got = integrity.expected_checksum(None, v, c, tomb, log)  # type: ignore[arg-type]
                assert got == _reference(log, v, c, tomb), (missing, v, c)


def test_claims_of_runs_in_any_order_are_kept_sorted(tmp_path: Path) -> None:
    from modyn_store.core import _runclaims
    from modyn_store.core._runclaims import RunClaims, parsed_claims, run_claims

    s = Store.open(f"{tmp_path}/s", create=True)
    for first in (500, 700, 100, 900, 0, 300):  # runs above and below the ones before
        k = np.arange(first, first + 100, dtype=np.int64)
        s.append(pa.table({"key": k, "ts": k}))
    records = s._read_records()
    _runclaims._CLAIMS.clear()
    for v in range(1, len(records) + 1):
        got, want = run_claims(records, v), RunClaims.of(parsed_claims(records[:v]))
        assert got is not None and want is not None
        assert got.first.tolist() == want.first.tolist() == sorted(got.first.tolist())
        assert got.values.tolist() == want.values.tolist()
        assert np.array_equal(s.as_of(v).keys(), np.sort(np.concatenate(
            [np.arange(f, f + 100) for f in (500, 700, 100, 900, 0, 300)[:v]])))


def test_claims_that_overlap_stay_unused_at_every_later_version() -> None:
    """Keys are unique for all time: claims that overlap are damage, and no claim is used from
    there on, whatever a later append claims (kept sums are extended record by record)."""
    from modyn_store.core import _runclaims
    from modyn_store.core._runclaims import run_claims

    def append(v: int, first: int, n: int) -> SimpleNamespace:
        return SimpleNamespace(version=v, op="append", inserted=n,
                               details={"run": [first, n], "checksum": f"{integrity.run_checksum(first, n):x}"})

    log = [append(1, 0, 100), append(2, 50, 100), append(3, 200, 100), append(4, 300, 100)]
    for start in (1, 2, 3):
        _runclaims._CLAIMS.clear()
        for v in range(start, 5):
            got = run_claims(log, v)
            assert (got is not None) == (v == 1), (start, v)
