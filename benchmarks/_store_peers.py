"""The peers of ``bench_store.py``'s reads, and the store of another git revision.

What each peer does: :func:`lance_keys` is a Lance user's read of a version's key column into one
NumPy array (every row of that Lance version: deletions that Lance applies, no store filter);
:func:`delta_peer` writes the same rows to a Delta table with the same appends and delete and
reads a version back (deletions applied by Delta); :func:`load_baseline` imports the store of a
git revision beside this one, so both time the same files in one process;
:func:`check_same_rows` asserts that every side read the same rows.
"""

from __future__ import annotations

import atexit
import importlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa

__all__ = ["check_same_rows", "delta_peer", "lance_keys", "load_baseline"]


def lance_keys(uri: str, version: int | None = None) -> np.ndarray:
    """What a Lance user runs to get a version's keys as one NumPy array."""
    ds = lance.dataset(uri, version=version) if version is not None else lance.dataset(uri)
    return ds.to_table(columns=["key"]).column("key").to_numpy()


def load_baseline(rev: str) -> Any:
    """The store of git revision ``rev``, imported beside this one (as ``_base_modyn_store``, on
    ``_base_engine``) so that both read the same files in one process, runs interleaved."""
    root = Path(tempfile.mkdtemp(prefix="store-baseline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "modyn_store/__init__.py",
                              "modyn_store/core", "engine"], check=True, capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(root, filter="data")
    for old in ("modyn_store", "engine"):
        (root / old).rename(root / f"_base_{old}")
    for path in root.rglob("*.py"):
        text = re.sub(r"^(\s*)(from|import) (modyn_store|engine)\b", r"\1\2 _base_\3", path.read_text(), flags=re.M)
        path.write_text(text.replace('import_module(f"engine.', 'import_module(f"_base_engine.'))
    sys.path.insert(0, str(root))
    return importlib.import_module("_base_modyn_store").Store


def check_same_rows(snap: Any, lance_uri: str | None, delta_keys: Callable[[], Any] | None) -> None:
    """The version's rows are the same on every side that applies the deletions: ``keys()`` is
    ``iter_keys()`` and ``to_batches()`` sorted, and the Lance peer's and Delta's keys sorted
    (those two return them in storage order, which ``keys()`` does not promise to be)."""
    keys = snap.keys()
    assert np.all(np.diff(keys) > 0), "keys() is not sorted"
    streamed = [np.concatenate(list(snap.iter_keys()) or [np.empty(0, np.int64)]),
                np.concatenate([b.column("key").to_numpy() for b in snap.to_batches()] or [np.empty(0, np.int64)])]
    others = streamed + ([lance_keys(lance_uri)] if lance_uri is not None else [])
    others += [np.asarray(delta_keys())] if delta_keys is not None else []
    for other in others:
        assert np.array_equal(np.sort(other), keys), "a side read other rows than keys()"


def delta_peer(uri: str, batches: list[pa.Table], where: str
                ) -> Callable[[int, bool], Callable[[], object]] | None:
    """The same rows as a Delta table (``deltalake``, if installed) written by the same 10 appends,
    then ``DeltaTable.delete(where)``; returns ``read(delta version, all columns)``:
    a Delta user's read of that version (the key column into one NumPy array, or every column
    streamed in 64K-row batches), deletions applied by Delta."""
    try:
        from deltalake import DeltaTable, write_deltalake
    except ImportError:
        return None
    table = pa.concat_tables(batches)
    step = max(1, table.num_rows // 10)
    for start in range(0, table.num_rows, step):
        write_deltalake(uri, table.slice(start, step), mode="append")
    DeltaTable(uri).delete(where)

    def read(version: int, stream: bool) -> Callable[[], object]:
        if stream:
            return lambda: sum(b.num_rows for b in DeltaTable(uri, version=version).to_pyarrow_dataset().to_batches(batch_size=65536))
        return lambda: DeltaTable(uri, version=version).to_pyarrow_table(columns=["key"]).column("key").to_numpy()

    return read
