"""A new store may not lie inside another store's folder: that store's compact, vacuum and erase
remove files they do not know (``samples.lance/data/x`` lost its table files, ``_cache/x`` went
whole)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import InvalidArgumentError, NotAStoreError, Store


def _rows(ts: list[int]) -> pa.Table:
    return pa.table({"ts": ts, "x": [0.5] * len(ts), "label": [0] * len(ts)})


@pytest.mark.parametrize("inner", ["sub", "samples.lance/data/x", "_cache/x", "a/b/c"])
def test_a_store_inside_a_store_is_refused(tmp_path: Path, inner: str) -> None:
    outer = tmp_path / "outer"
    Store.open(str(outer), create=True).append(_rows([1, 2]))
    with pytest.raises(InvalidArgumentError, match=r"uri=.*outside the store at .*outer.*compact, vacuum and erase"):
        Store.open(str(outer / inner), create=True)
    assert not (outer / inner).exists()


def test_a_link_into_a_store_is_refused(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    Store.open(str(outer), create=True)
    (outer / "inside").mkdir()
    os.symlink(outer / "inside", tmp_path / "link")
    with pytest.raises(InvalidArgumentError, match="outside the store at"):
        Store.open(str(tmp_path / "link" / "x"), create=True)


def test_beside_a_store_and_an_existing_inner_store_still_open(tmp_path: Path) -> None:
    Store.open(str(tmp_path / "outer"), create=True)
    Store.open(str(tmp_path / "outerx"), create=True)  # a sibling whose name starts the same
    inner = tmp_path / "inner"
    Store.open(str(inner), create=True).append(_rows([1]))
    os.rename(inner, tmp_path / "outer" / "inner")  # made before the check: opening still works
    assert Store.open(str(tmp_path / "outer" / "inner")).as_of().keys().tolist() == [0]


def test_a_folder_holding_a_store_is_refused(tmp_path: Path) -> None:
    Store.open(str(tmp_path / "top" / "inner"), create=True)
    with pytest.raises(NotAStoreError, match="not empty"):
        Store.open(str(tmp_path / "top"), create=True)


@pytest.mark.s3
def test_a_store_inside_a_store_is_refused_on_s3(s3_store: tuple[str, dict[str, str]]) -> None:
    uri, options = s3_store
    Store.open(uri, create=True, storage_options=options)
    with pytest.raises(InvalidArgumentError, match="outside the store at"):
        Store.open(f"{uri}/samples.lance/data/x", create=True, storage_options=options)
    Store.open(f"{uri}x", create=True, storage_options=options)  # a sibling prefix is not inside
