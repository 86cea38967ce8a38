"""Appends record the run their keys form; reads take that run's checksum from the record.

See ``modyn_store/core/_runclaims.py``: the checksum a read compares with the log is the same
value, so a read of a store whose appends claim runs mixes no key it read as part of a claimed
run, and every kind of damage that changed the answer before still does.
"""

from __future__ import annotations

import json
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store
from modyn_store.core import _kept, _logdigest, _runclaims, integrity
from modyn_store.core._runclaims import RunClaims, claim_of, run_claims, runs_checksum
from modyn_store.core.verify import verify
from tests.store.test_kept_reads import _new_process, _rows, mixes  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _no_read_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is taken from or kept in the read cache: what a read mixes is what it computed."""
    monkeypatch.setenv(_kept.ENV, "off")


# -- what appends record ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "run"),
    [
        (np.arange(10, 20), [10, 10]),
        (np.array([7]), [7, 1]),
        (np.array([14, 12, 13, 10, 11]), [10, 5]),  # dense but unsorted: still the run
        (np.array([10, 11, 13]), None),  # a gap
        (np.arange(2**63 - 4, 2**63 - 1), [2**63 - 4, 3]),  # ending at the largest key
        (np.arange(-5, 0), [-5, 5]),
    ],
)
def test_an_append_records_the_run_of_its_keys(tmp_path: Path, keys: np.ndarray, run: list[int] | None) -> None:
    s = Store.open(str(tmp_path / "s"), create=True)
    s.append(_rows(keys))
    details = s.log()[-1].details
    assert details.get("run") == run
    assert details["checksum"] == f"{integrity.key_checksum(keys):016x}"
    if run is not None:
        assert integrity.run_checksum(*run) == integrity.key_checksum(keys)


def test_auto_assigned_keys_and_a_streamed_append_record_their_runs(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "s"), create=True)
    s.append(pa.table({"ts": np.arange(1000)}))
    batches = [pa.record_batch({"key": np.arange(a, a + 100), "ts": np.arange(100)}) for a in (1000, 1100, 1200)]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
    s.append(reader, key="key")
    assert [r.details.get("run") for r in s.log()] == [[0, 1000], [1000, 300]]


def test_claim_of_needs_the_count_to_fill_the_span() -> None:
    assert claim_of(0, 9, 10) == [0, 10]
    assert claim_of(0, 10, 10) is None
    assert claim_of(0, 0, 0) is None


# -- the checksum of runs, against a key-by-key reference ----------------------------------


def _brute(runs: list[tuple[int, int]]) -> int:
    return sum(integrity.key_checksum(np.arange(f, f + n, dtype=np.int64)) for f, n in runs) & integrity.MASK


def test_runs_checksum_equals_mixing_every_key_with_random_claims_and_cuts() -> None:
    rng = np.random.default_rng(5)
    used = 0
    for _ in range(200):
        # appends of runs (some with gaps between them), read back in batches cut anywhere
        sizes = rng.integers(1, 40, rng.integers(1, 8))
        gaps = rng.integers(0, 3, sizes.size)
        firsts = np.cumsum(np.concatenate([[rng.integers(-50, 50)], (sizes + gaps)[:-1]]))
        keys = np.concatenate([np.arange(f, f + n) for f, n in zip(firsts, sizes)])
        keep = rng.random(keys.size) > 0.05  # rows missing (purged, not yet written ...)
        keys = keys[keep]
        if keys.size < 2:
            continue
        cuts = np.flatnonzero(np.diff(keys) != 1) + 1
        extra = rng.integers(1, keys.size + 1, rng.integers(0, 4))
        batches = [b for b in np.split(keys, np.unique(np.concatenate([cuts, extra]))) if b.size]
        runs = [(int(b[0]), int(b.size)) for b in batches]
        rng.shuffle(runs)  # (storage order need not be key order)
        claims = RunClaims.of([(int(f), int(n), integrity.run_checksum(int(f), int(n))) for f, n in zip(firsts, sizes)])
        total, mixed = runs_checksum(runs, claims)
        assert total == _brute(runs)
        # what is mixed lies outside every claim the batches cover whole
        assert sum(n for _, n in mixed) <= keys.size
        used += sum(n for _, n in mixed) < keys.size
    assert used > 50  # (claims were taken in many of the cases)


def test_a_claim_is_used_only_where_the_batches_cover_it_whole() -> None:
    claims = RunClaims.of([(0, 100, 11), (100, 50, 22)])  # (values that no mix gives)
    total, mixed = runs_checksum([(0, 64), (64, 36), (100, 49)], claims)
    assert total == (11 + integrity.run_checksum(100, 49)) & integrity.MASK
    assert mixed == [(100, 49)]


def test_overlapping_batches_use_no_claim() -> None:
    # a key read twice (a duplicated fragment): every batch is mixed, so the sum changes
    claims = RunClaims.of([(0, 100, integrity.run_checksum(0, 100))])
    runs = [(0, 100), (50, 50)]
    total, mixed = runs_checksum(runs, claims)
    assert mixed == runs
    assert total == _brute(runs)


def test_overlapping_claims_are_not_used() -> None:
    assert RunClaims.of([(0, 10, 1), (5, 10, 2)]) is None
    assert RunClaims.of([]) is None


def test_run_claims_read_only_well_formed_claims_of_appends_up_to_the_version(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "s"), create=True)
    for a in (0, 100, 200):
        s.append(_rows(np.arange(a, a + 100)))
    s.delete(keys=[5])
    records = s.log()
    claims = run_claims(records, 2)
    assert claims is not None and claims.first.tolist() == [0, 100] and claims.last.tolist() == [99, 199]
    assert claims.values.tolist() == [int(r.details["checksum"], 16) for r in records[:2]]
    for bad in ([0], [0, 99], ["0", 100], [0.0, 100], [0, 0], [2**63 - 1, 100]):
        record = records[0]
        forged = type(record)(**{**record.__dict__, "details": {**record.details, "run": bad}})
        assert run_claims([forged], 1) is None


# -- reads ---------------------------------------------------------------------------------


def _store(uri: str, *, compact: bool = False) -> list[int]:
    s = Store.open(uri, create=True)
    for part in range(4):
        s.append(pa.table({"ts": np.arange(1000)}))  # auto keys: 0..3999 in runs of 1000
    s.delete(keys=[5, 1500, 3999])
    if compact:
        s.compact()
    return sorted(set(range(4000)) - {5, 1500, 3999})


@pytest.mark.parametrize("compact", [False, True])
def test_a_fresh_process_mixes_no_claimed_key(tmp_path: Path, mixes: list[tuple[int, int]], compact: bool) -> None:
    uri = str(tmp_path / "s")
    want = _store(uri, compact=compact)
    if compact:  # one fragment: its batches cross the appends' boundaries
        assert len(lance.dataset(f"{uri}/samples.lance").get_fragments()) == 1
    _new_process()
    mixes.clear()
    assert Store.open(uri).as_of().keys().tolist() == want
    assert Store.open(uri).as_of(2).keys().tolist() == list(range(2000))
    assert mixes == []  # (the dead keys are mixed by Checksum.add, not counted here)


def test_without_claims_a_fresh_process_mixes_each_run(
    tmp_path: Path, mixes: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "s")
    want = _store(uri)
    _new_process()
    mixes.clear()
    monkeypatch.setattr("modyn_store.core.snapshot.run_claims", lambda records, version: None)
    assert Store.open(uri).as_of().keys().tolist() == want
    assert sorted(mixes) == [(0, 1000), (1000, 1000), (2000, 1000), (3000, 1000)]


def test_shifted_keys_are_damage_although_they_are_one_run(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    ds = lance.dataset(f"{uri}/samples.lance")
    t = ds.to_table()
    i = t.schema.get_field_index("key")
    lance.write_dataset(t.set_column(i, "key", pa.compute.add(t.column("key"), 1)), ds.uri, mode="overwrite")
    _new_process()
    with pytest.raises(CorruptionError, match="other keys than"):
        Store.open(uri).as_of().keys()


def test_a_duplicated_fragment_is_damage(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    ds = lance.dataset(f"{uri}/samples.lance")
    first = ds.get_fragments()[0]
    # the same rows again, with the keys of the first append: a run read twice
    lance.write_dataset(first.to_table(), ds.uri, mode="append")
    _new_process()
    with pytest.raises(CorruptionError):
        Store.open(uri).as_of(1).keys()


def test_a_changed_key_inside_a_run_is_damage(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    ds = lance.dataset(f"{uri}/samples.lance")
    t = ds.to_table()
    keys = t.column("key").to_numpy().copy()
    keys[keys == 10] = 10_000  # the count stays, the run breaks
    lance.write_dataset(t.set_column(t.schema.get_field_index("key"), "key", pa.array(keys)), ds.uri, mode="overwrite")
    _new_process()
    with pytest.raises(CorruptionError, match="other keys than"):
        Store.open(uri).as_of().keys()


def _forge_run(uri: str, version: int, run: list[int]) -> None:
    """Rewrite the record object of ``version`` with another ``"run"`` and a digest that fits."""
    path = Path(uri) / "_log" / f"{version:012d}.json"
    row = json.loads(path.read_bytes())
    details = json.loads(row["details"])
    details["run"] = run
    row["details"] = json.dumps(details, sort_keys=True)
    row[_logdigest.DIGEST] = _logdigest._row_digest(row)
    path.write_bytes(json.dumps(row, sort_keys=True).encode())


def test_verify_reports_a_claim_that_disagrees_with_its_checksum(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    want = _store(uri)
    assert verify(uri).ok
    _forge_run(uri, 2, [1001, 1000])  # keys 1000..1999 were appended
    _new_process()
    report = verify(uri)
    assert not report.ok
    assert any("version 2" in f.what and "does not match" in f.what for f in report.findings)
    assert "key runs the appends recorded" in report.checked
    # reads find no batch run covering the false claim: they mix, and the answer stands
    assert Store.open(uri).as_of().keys().tolist() == want


def test_verify_reports_a_malformed_claim(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    _store(uri)
    _forge_run(uri, 3, [2000, 999])  # one row fewer than the append inserted
    _new_process()
    report = verify(uri)
    assert any("version 3" in f.what and "malformed" in f.what for f in report.findings)


def test_a_claim_of_keys_never_written_changes_no_answer(tmp_path: Path) -> None:
    # no batch the read finds covers it: the read mixes the keys it found, verify reports it
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(_rows(np.arange(0, 100)))
    s.append(_rows(np.arange(200, 300)))
    _forge_run(uri, 2, [100, 100])
    _new_process()
    assert not verify(uri).ok
    assert Store.open(uri).as_of().keys().tolist() == list(range(100)) + list(range(200, 300))


def test_runs_checksum_is_where_reads_take_run_checksums(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the module the read path calls: a broken claim sum there must change the answer
    uri = str(tmp_path / "s")
    _store(uri)
    real = _runclaims.runs_checksum
    monkeypatch.setattr(
        "modyn_store.core._keyscan.runs_checksum", lambda runs, claims: ((real(runs, claims)[0] + 1) & integrity.MASK, [])
    )
    _new_process()
    with pytest.raises(CorruptionError):
        Store.open(uri).as_of().keys()


def test_erase_and_vacuum_inside_claimed_runs_read_right(tmp_path: Path, mixes: list[tuple[int, int]]) -> None:
    # purged rows break the runs they were in: those batches are mixed key by key
    uri = str(tmp_path / "s")
    want = set(_store(uri))
    s = Store.open(uri)
    s.erase(keys=[1200, 2500], reason="GDPR Art. 17 request")
    s.vacuum(keep_versions=1, dry_run=False)
    want -= {1200, 2500}
    _new_process()
    mixes.clear()
    assert Store.open(uri).as_of().keys().tolist() == sorted(want)
    # versions 1 and 4 are whole runs (claimed); the batches of versions 2 and 3 lost a row and
    # are no runs: their keys are mixed one by one (Checksum.add), none as a run
    assert mixes == []
    assert verify(uri, deep=True).ok


def test_run_claims_are_kept_by_the_records_they_read(tmp_path: Path) -> None:
    s = Store.open(str(tmp_path / "s"), create=True)
    for a in range(0, 500, 100):
        s.append(_rows(np.arange(a, a + 100)))
    records = s.log()
    _runclaims._CLAIMS.clear()
    first = run_claims(records, 4)
    assert run_claims(records, 4) is first  # the same records: the same answer, no record read
    nxt = run_claims(records, 5)  # the next version: extended by one record
    _runclaims._CLAIMS.clear()
    fresh = run_claims(records, 5)
    assert first is not None and nxt is not None and fresh is not None
    assert nxt.first.tolist() == fresh.first.tolist() == [0, 100, 200, 300, 400]
    assert nxt.values.tolist() == fresh.values.tolist()
    # other records (another store, the same store after a checkpoint) are never taken for these
    other = [type(r)(**{**r.__dict__, "details": {**r.details, "run": [r.details["run"][0] - 1, 100]}})
             for r in records[:4]] + [records[4]]
    assert run_claims(other, 5).first.tolist() == [-1, 99, 199, 299, 400]  # type: ignore[union-attr]
    _runclaims._CLAIMS.clear()
    run_claims(records, 4)
    mixed = [other[0], *records[1:]]  # the same records from the second on: not extended from those
    assert run_claims(mixed, 5).first.tolist() == [-1, 100, 200, 300, 400]  # type: ignore[union-attr]
