"""The store's writer lock needs no POSIX fcntl: ``import modyn_store`` and a write work without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, warnings
sys.modules["fcntl"] = None          # as on a platform without POSIX fcntl
warnings.simplefilter("ignore")      # filelock says it falls back to a lock file
import pyarrow as pa
import modyn_store
store = modyn_store.Store.open(sys.argv[1], create=True)
print(store.append(pa.table({"ts": [1, 2]})).version, store.append(pa.table({"ts": [3]})).version)
"""


def test_store_works_without_fcntl(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "s")], capture_output=True, text=True,
                         timeout=120, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "2"]
