"""``python -m modyn_store`` runs the command line as the installed ``modyn-store`` script does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "modyn_store", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_python_m_modyn_store_is_the_command_line() -> None:
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: modyn-store")
    assert "demo" in out.stdout and "RuntimeWarning" not in out.stderr


def test_python_m_modyn_store_exits_with_the_command_lines_status(tmp_path: Path) -> None:
    out = _run("log", str(tmp_path / "no-store-here"))
    assert out.returncode == 2
    assert "no-store-here" in out.stderr
