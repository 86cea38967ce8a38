"""``verify`` takes no lock: an erase or vacuum another writer commits while it reads the
samples removes rows after the log it checks them against. It reads the log again and checks
again, and if the store keeps changing it says so in a note, never as damage."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import modyn_store
from modyn_store import Store
from modyn_store.core import _verify_samples
from modyn_store.core.verify import CHANGE_ATTEMPTS, verify


def _store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(20)}))
    store.append(pa.table({"ts": np.arange(20, 30)}))
    store.delete(keys=[5, 25])
    store.append(pa.table({"ts": np.arange(30, 40)}))
    return store


def _meanwhile(monkeypatch: pytest.MonkeyPatch, write: Callable[[], object], times: int) -> list[int]:
    """Run ``write`` (another writer) right after verify read the dead keys, ``times`` times."""
    calls: list[int] = []
    read = _verify_samples.dead_keys

    def dead_keys(store: Store, committed: int, records: list[object]) -> _verify_samples.DeadKeys:
        out = read(store, committed, records)  # type: ignore[arg-type]
        calls.append(committed)
        if len(calls) <= times:
            write()
        return out

    monkeypatch.setattr(_verify_samples, "dead_keys", dead_keys)
    return calls


@pytest.mark.parametrize("deep", [False, True])
def test_an_erase_committed_by_another_store_during_verify_is_no_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep: bool
) -> None:
    store = _store(tmp_path)
    calls = _meanwhile(monkeypatch, lambda: Store.open(store.uri).erase([3, 22], reason="test"), 1)
    report = verify(store.uri, deep=deep)
    assert report.findings == ()
    assert calls == [4, 5]  # checked again against the log with the erase
    assert report.versions == 5


def test_a_vacuum_committed_by_another_process_during_verify_is_no_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    root = os.path.dirname(os.path.dirname(modyn_store.__file__))
    code = f"from modyn_store import Store; Store.open({store.uri!r}).vacuum(keep_versions=1, dry_run=False)"

    def vacuum() -> None:
        env = {**os.environ, "PYTHONPATH": root}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)

    calls = _meanwhile(monkeypatch, vacuum, 1)
    report = verify(store.uri, deep=True)
    assert report.findings == ()
    assert calls == [4, 5]
    assert store.log()[-1].op == "vacuum" and store._tables.scan("purged", ["key"]).num_rows == 2  # type: ignore[union-attr]


def test_a_store_that_keeps_changing_is_not_reported_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify cannot tell counts removed meanwhile from damage: they stay errors, marked."""
    store = _store(tmp_path)
    keys = iter([3, 22, 31, 7, 8])
    calls = _meanwhile(monkeypatch, lambda: Store.open(store.uri).erase([next(keys)], reason="test"), 10)
    report = verify(store.uri, deep=True)
    assert len(calls) == CHANGE_ATTEMPTS
    assert not report.ok and all(f.what.endswith("(maybe from that change)") for f in report.errors)
    assert "the store changed during verify" in report.findings[0].what
    assert "erase" in report.findings[0].what
    monkeypatch.undo()
    assert verify(store.uri, deep=True).findings == ()


def test_appends_during_verify_are_not_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows above the log are left out of the checks: an append meanwhile needs no second run."""
    store = _store(tmp_path)
    calls = _meanwhile(monkeypatch, lambda: Store.open(store.uri).append(pa.table({"ts": [1, 2]})), 1)
    assert verify(store.uri, deep=True).findings == ()
    assert calls == [4]


def test_damage_is_still_an_error_after_a_change_during_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    store._tables.delete("samples", "key = 12")  # a lost row
    calls = _meanwhile(monkeypatch, lambda: Store.open(store.uri).erase([3], reason="test"), 1)
    errors = [f.what for f in verify(store.uri, deep=True).errors]
    assert calls == [4, 5]
    assert "version 1: 19 rows found, the log records 20 inserted" in errors


def test_a_log_that_cannot_be_read_again_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.core import verify as verify_module

    store = _store(tmp_path)
    read, check = Store._read_records, verify_module._check_samples
    checked: list[int] = []

    def records(self: Store) -> list[object]:
        if checked:
            raise OSError("unreachable")
        return read(self)  # type: ignore[return-value]

    def check_samples(*args: object) -> object:
        out = check(*args)  # type: ignore[arg-type]
        checked.append(1)
        return out

    monkeypatch.setattr(Store, "_read_records", records)
    monkeypatch.setattr(verify_module, "_check_samples", check_samples)
    report = verify(store.uri, deep=True)
    assert report.ok and checked == [1]
    assert [f.severity for f in report.findings] == ["note"]
    assert "cannot be read again" in report.findings[0].what


def _killed_erase(path: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A store whose erase committed and was killed before its purge (its intent stays)."""
    from modyn_store.core import maintenance

    store = Store.open(path, create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    store.delete(keys=[1, 2])
    store.append(pa.table({"ts": np.arange(10, 12)}))

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed after the commit point")

    with monkeypatch.context() as m:
        m.setattr(maintenance, "_purge", killed)
        with pytest.raises(SystemExit):
            store.erase([3, 4], reason="test")
    return store


@pytest.mark.parametrize("deep", [False, True])
def test_an_erase_killed_before_its_purge_is_named_beside_its_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       deep: bool) -> None:
    path = str(tmp_path / "s")
    _killed_erase(path, monkeypatch)
    report = verify(path, deep=deep)
    # deep: the erased rows still in the files disagree with the erase's counts; verify cannot
    # tell that from damage, so they stay errors, marked, beside a note naming the erase
    assert report.ok != deep
    assert all(f.what.endswith("(maybe from the unfinished purge)") for f in report.errors)
    assert any("has not finished removing its rows" in f.what for f in report.findings) == deep
    Store.open(path).tag("after")  # the next writer finishes the purge
    report = verify(path, deep=True)
    assert report.ok and not [f for f in report.findings if "purge" in f.what or "maybe" in f.what]


def test_other_damage_beside_an_unfinished_purge_stays_an_error(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the counts a removal of rows explains become notes: a wrong fragment range does not."""
    from modyn_store.core._fragments import _encode

    path = str(tmp_path / "s")
    store = _killed_erase(path, monkeypatch)
    ds = store._tables.open("samples")
    assert ds is not None
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({str(f.fragment_id): [1, 1, f.physical_rows] for f in ds.get_fragments()}))
    report = verify(path, deep=True)
    assert not report.ok
    assert [f.what for f in report.errors if "ranges recorded" in f.what]


def test_a_store_that_keeps_changing_keeps_its_other_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When removals keep running (a purge seen to change at every look), only counts become
    notes: a wrong fragment range stays an error, so ``ok`` is False."""
    from modyn_store.core import verify as verify_mod
    from modyn_store.core._fragments import _encode

    path = str(tmp_path / "s")
    store = Store.open(path, create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    store.append(pa.table({"ts": np.arange(10, 15)}))
    ds = store._tables.open("samples")
    assert ds is not None
    with open(store.path("_meta/samples.fragments.jsonl"), "wb") as fh:
        fh.write(_encode({str(f.fragment_id): [1, 1, f.physical_rows] for f in ds.get_fragments()}))
    looks = iter(range(100))
    monkeypatch.setattr(verify_mod, "_unfinished_purge", lambda *a: (next(looks), "erase"))
    report = verify(path, deep=True)
    assert any("the store changed during verify" in f.what for f in report.findings)
    assert not report.ok and [f.what for f in report.errors if "ranges recorded" in f.what]
