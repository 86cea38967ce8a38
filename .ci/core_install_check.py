"""Run inside a fresh venv made by `pip install .` (no extras): the store works, and the
heavy optional packages are not installed.

Usage: .venv-core/bin/python .ci/core_install_check.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

for heavy in ("torch", "matplotlib", "ray", "s3fs"):
    assert importlib.util.find_spec(heavy) is None, f"{heavy} was installed by `pip install .` without extras"

import engine  # noqa: E402
import policies  # noqa: E402
from modyn_store import Store  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    path = str(Path(tmp) / "store")
    store = Store.open(path, create=True)
    v1 = store.append(pa.table({"ts": np.arange(100), "x": np.arange(100) * 0.5}), message="first").version
    v2 = store.delete(keys=np.arange(0, 100, 10), message="drop").version
    assert (v1, v2) == (1, 2), (v1, v2)
    assert store.as_of(v1).count() == 100 and store.as_of(v2).count() == 90
    assert store.as_of(v2).keys().tolist() == [k for k in range(100) if k % 10]
    back = store.as_of(v1).to_table(["key", "x"])
    assert np.array_equal(back.column("x").to_numpy(), back.column("key").to_numpy() * 0.5)
    # the engine and the policies work without the training extras
    assert engine.isin_sorted([3, 10], np.arange(5)).tolist() == [True, False]
    picked = policies.Uniform(ratio=0.5).select(policies.SelectionContext(snapshot=store.as_of(), seed=1))
    assert picked.size == 45 and set(picked.keys.tolist()) <= set(store.as_of().keys().tolist())
    # the command line reads the store
    cli = Path(sys.executable).with_name("modyn-store")
    out = subprocess.run([str(cli), "log", path], capture_output=True, text=True, check=True).stdout
    assert "drop" in out and "first" in out, out
print("core install ok: Store append/delete/as_of, engine, policies and `modyn-store log` without torch or matplotlib")
