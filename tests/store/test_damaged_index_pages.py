"""A Lance key index whose pages were overwritten in place (same size) answers lookups with
other rows: ``verify`` finds it (its smallest key's lookup always; every key's with ``deep``)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modyn_store import Store
from modyn_store.core.verify import verify


def _damaged(tmp_path: Path, at: float) -> str:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(5000))}))
    s.delete(keys=list(range(0, 5000, 3)))
    s.index_keys()
    page = glob.glob(f"{uri}/tombstones.lance/_indices/*/page_data.lance")[0]
    size = os.path.getsize(page)
    with open(page, "r+b") as fh:  # 16 zero bytes inside, the size unchanged
        fh.seek(int(size * at))
        fh.write(bytes(16))
    assert os.path.getsize(page) == size
    return uri


def _errors(uri: str, deep: bool) -> list[str]:
    return [f.what for f in verify(uri, deep=deep).errors]


def test_a_clean_key_index_has_no_findings(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    s = Store.open(uri, create=True)
    s.append(pa.table({"ts": list(range(5000))}))
    s.delete(keys=list(range(0, 5000, 3)))
    s.index_keys()
    assert verify(uri, deep=False).ok and verify(uri, deep=True).ok


def test_a_damaged_page_that_answers_the_smallest_key_with_other_rows_is_found(tmp_path: Path) -> None:
    uri = _damaged(tmp_path, 0.3)
    got = lance.dataset(f"{uri}/tombstones.lance").to_table(columns=["key"], filter=pc.field("key").isin([0]))
    assert sorted(set(got.column("key").to_pylist())) != [0]  # the wrong answer verify must report
    for deep in (False, True):
        errs = _errors(uri, deep)
        assert len(errs) == 1 and "index 'key_idx' answers a lookup of key 0 with rows of other keys" in errs[0], errs


@pytest.mark.parametrize("at", [0.7, 0.8])
def test_a_damaged_page_of_other_keys_is_found_by_a_deep_verify(tmp_path: Path, at: float) -> None:
    uri = _damaged(tmp_path, at)
    ds = lance.dataset(f"{uri}/tombstones.lance")
    every = ds.to_table(columns=["key"], use_scalar_index=False).column("key")
    looked_up = ds.to_table(columns=["key"], filter=pc.field("key").isin(every)).column("key")
    assert not np.array_equal(np.sort(looked_up.to_numpy()), np.sort(every.to_numpy()))
    errs = _errors(uri, True)
    assert len(errs) == 1 and "index 'key_idx' answers lookups of 1667 keys" in errs[0], errs
