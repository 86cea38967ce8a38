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


def test_a_store_that_keeps_changing_gets_a_note_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    keys = iter([3, 22, 31, 7, 8])
    calls = _meanwhile(monkeypatch, lambda: Store.open(store.uri).erase([next(keys)], reason="test"), 10)
    report = verify(store.uri, deep=True)
    assert len(calls) == CHANGE_ATTEMPTS
    assert report.ok
    assert all(f.severity == "note" for f in report.findings)
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
