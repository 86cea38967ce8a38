"""``demo --out`` is checked before the demo writes anything: a report folder that cannot be
created is refused naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store.app.cli.main import main


def test_demo_out_that_is_a_file_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.pipeline import demo_grid

    monkeypatch.setattr(demo_grid, "run_scenario_demo", lambda *args, **kwargs: None)
    blocker = tmp_path / "report"
    blocker.write_text("not a folder")
    root = tmp_path / "demo"
    assert main(["demo", "--store", str(root), "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (root / "walkthrough").exists()


def test_demo_store_only_does_not_check_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modyn_store.app.cli import demo

    walked: list[Path] = []
    monkeypatch.setattr(demo, "store_walkthrough", lambda path: walked.append(Path(path)))
    blocker = tmp_path / "report"
    blocker.write_text("not a folder")
    assert main(["demo", "--store", str(tmp_path / "demo"), "--store-only", "--out", str(blocker)]) == 0
    assert walked == [tmp_path / "demo" / "walkthrough"]
