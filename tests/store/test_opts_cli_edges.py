"""``delete --dry-run`` tells what ``--missing`` would do with keys that are not live, and
``show --json`` of a store without rows is JSON too."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main


@pytest.fixture
def store(tmp_path: Path) -> str:
    """One version of four rows, keys 0 .. 3."""
    p = str(tmp_path / "s")
    Store.open(p, create=True).append(pa.table({"ts": [0, 1, 2, 3], "label": [0, 1, 0, 1]}))
    return p


def test_dry_run_names_the_missing_policy(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delete", store, "1", "9", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 1 live rows" in out
    assert "refused: the delete would write nothing" in out and "--missing ignore skips them" in out
    assert main(["delete", store, "1", "9", "--dry-run", "--missing", "ignore"]) == 0
    out = capsys.readouterr().out
    assert "[9]: skipped" in out and "refused" not in out and "--missing ignore skips them" not in out
    assert Store.open(store).version == 1  # nothing written either way


def test_show_json_of_an_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = str(tmp_path / "empty")
    Store.open(p, create=True)
    assert main(["show", p, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == [] and out["columns"] == {} and out["live_rows"] == 0
    assert main(["show", p]) == 0
    assert "(empty store)" in capsys.readouterr().out
