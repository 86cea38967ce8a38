"""Recovery and the key index record the tables' Lance versions in the head, but a damaged table
that neither rewrites does not stop them: writes go on, and the damage stays an error where
that table is read and a finding of ``verify``."""

from __future__ import annotations

import glob
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store
from modyn_store.core import _txn
from modyn_store.core.verify import verify


def _damaged_scores(tmp_path: Path) -> tuple[str, Store]:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10))}))
    s.scores.write("loss", [0, 1], [0.5, 0.25], training_id="t-1")
    for manifest in glob.glob(f"{uri}/scores/loss.lance/_versions/*"):
        shutil.rmtree(manifest) if Path(manifest).is_dir() else Path(manifest).unlink()
    return uri, s


def test_a_write_after_a_crash_recovers_beside_a_damaged_score_table(tmp_path: Path) -> None:
    uri, s = _damaged_scores(tmp_path)
    # a writer killed after its commit: its intent is left, for the next writer to finish
    committed = s.version
    with open(f"{uri}/{_txn.INTENT}", "w") as fh:
        json.dump({"version": committed, "op": "append"}, fh)
    again = Store.open(uri)
    rec = again.append(pa.table({"ts": [10]}))
    assert rec.version == committed + 1 and again.as_of().count() == 11
    with pytest.raises(CorruptionError):
        again.scores.as_of(None, "loss")
    assert any("loss" in f.what for f in verify(uri).errors)


def test_index_keys_beside_a_damaged_score_table(tmp_path: Path) -> None:
    uri, s = _damaged_scores(tmp_path)
    s.index_keys()
    assert Store.open(uri).as_of().contains([3, 42]).tolist() == [True, False]
