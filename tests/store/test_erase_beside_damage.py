"""An erasure is not blocked by damage to a table that holds no sample content (the tags here):
the head records the tables the purge rewrote, and opens no other. (An extension table that
may hold samples is opened by the purge itself, and its damage refuses the erasure: its rows
of the erased keys could not be removed.)"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store
from modyn_store.core.verify import verify


def test_an_erase_beside_a_damaged_unrelated_table_commits_and_purges(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(10)), "x": [float(i) for i in range(10)]}))
    s.tag("first")
    for manifest in glob.glob(f"{uri}/tags.lance/_versions/*"):
        shutil.rmtree(manifest) if Path(manifest).is_dir() else Path(manifest).unlink()
    with pytest.raises(CorruptionError):
        Store.open(uri).tags()  # the damage is there, and reported where the table is read

    report = s.erase([3], reason="art. 17")
    assert report.version == s.version
    again = Store.open(uri)
    assert again.as_of().keys().tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert again.as_of(1).keys().tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # erased from every version
    assert again.append(pa.table({"ts": [10], "x": [10.0]})).version == report.version + 1
    assert any("tags" in f.what for f in verify(uri).errors)
