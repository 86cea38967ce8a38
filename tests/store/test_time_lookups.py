"""Looking versions up by wall-clock time: clocks that went back between commits, times before
the first commit and after the last, and the same times on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli import main
from modyn_store.core import _txn
from modyn_store.core.errors import UnknownVersionError


def _at(hour: int) -> datetime:
    return datetime(2024, 3, 1, hour, tzinfo=timezone.utc)


def _commit_at(monkeypatch: pytest.MonkeyPatch, hours: list[int]) -> Callable[[], datetime]:
    """The commit clock reads ``hours`` in turn, as a writer's wall clock that was set back would."""
    times = [_at(h) for h in hours]
    clock = lambda: times.pop(0)  # noqa: E731
    monkeypatch.setattr(_txn, "commit_clock", clock)
    return clock


def _store(path: Path, monkeypatch: pytest.MonkeyPatch, hours: list[int]) -> Store:
    _commit_at(monkeypatch, hours)
    store = Store.open(str(path), create=True)
    for i in range(len(hours)):
        store.append(pa.table({"ts": [i]}))
    monkeypatch.undo()
    return store


def test_a_clock_that_went_back_never_brings_in_a_later_commit(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "s", monkeypatch, [10, 20, 15])  # the clock went back before v3
    assert [r.time for r in Store.open(str(tmp_path / "s")).log()] == [_at(10), _at(20), _at(15)]
    # at 17:00 version 2 (committed at 20:00) did not exist, so neither did version 3 on top of it
    assert {h: store.as_of(_at(h)).version for h in (10, 15, 17, 19, 20, 23)} == \
        {10: 1, 15: 1, 17: 1, 19: 1, 20: 3, 23: 3}
    assert store.as_of(_at(17)).keys().tolist() == [0]


def test_before_the_first_commit_is_refused_even_when_a_later_one_is_stamped_earlier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "s", monkeypatch, [20, 10])
    with pytest.raises(UnknownVersionError, match=r"at or before 2024-03-01T15:00:00\+00:00 \(version 1 "
                                                  r"was committed at 2024-03-01T20:00:00\+00:00\)"):
        store.as_of(_at(15))
    assert store.as_of(_at(20)).version == 2


def test_times_before_the_first_and_after_the_last_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "s", monkeypatch, [10, 11])
    with pytest.raises(UnknownVersionError, match="no version was committed at or before"):
        store.as_of(_at(9))
    assert store.as_of(_at(10)).version == 1
    assert store.as_of(datetime(9999, 12, 31, tzinfo=timezone.utc)).version == 2
    # the same instant in another zone names the same version
    assert store.as_of(_at(11).astimezone(timezone(timedelta(hours=-5)))).version == 2
    with pytest.raises(UnknownVersionError, match="no version was committed"):
        Store.open(str(tmp_path / "empty"), create=True).as_of(_at(10))


def test_the_command_line_reads_the_same_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "s")
    _store(tmp_path / "s", monkeypatch, [10, 20, 15])
    for text, version in (("2024-03-01T17:00Z", 1), ("2024-03-01T20:00:00+00:00", 3),
                          ("2024-03-01T19:59:59.999999+00:00", 1)):
        assert main(["show", path, text, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["version"] == version, text
    assert main(["show", path, "2024-03-01T09:59:59Z"]) == 2
    assert "no version was committed at or before" in capsys.readouterr().err
