"""docs/own-data.md is executable: every ``bash`` block runs, in order, in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "own-data.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_every_command_of_the_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "modyn-store"  # the console script, from this tree
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from modyn_store.app.cli.main import main; "
                    f"sys.exit(main())' \"$@\"\n")
    shim.chmod(0o755)
    py = bin_dir / "python"
    py.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    blocks = _blocks("bash")
    assert len(blocks) >= 6
    for i, block in enumerate(blocks):
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, f"block {i} failed:\n{block}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "online-report" / "report.md").exists()
    monkeypatch.chdir(tmp_path)
    for py in _blocks("python"):
        exec(compile(py, str(DOC), "exec"), {"__name__": "own_data_doc"})  # noqa: S102 (our own doc)


def test_the_tutorial_uses_only_documented_commands() -> None:
    from modyn_store.app.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    used = set(re.findall(r"^modyn-store (\w+)", "\n".join(_blocks("bash")), flags=re.M))
    assert used and used <= commands
    assert {"append", "labels", "run", "report", "export", "import"} <= used
