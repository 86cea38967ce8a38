"""Crafted or damaged inputs: a log record named with a huge version, a LanceDB table name
that would put the build lock outside its folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core._log import _first_missing
from modyn_store.core.errors import CorruptionError, InvalidArgumentError, NotAStoreError
from modyn_store.core.vectors import snapshot_table


def test_first_missing_lists_gaps_between_neighbours() -> None:
    assert _first_missing(0, [1, 2, 3], 5) == []
    assert _first_missing(0, [2, 5, 10**15], 5) == [1, 3, 4, 6, 7]
    assert _first_missing(3, [4, 10**15], 3) == [5, 6, 7]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="address space limit (RLIMIT_AS)")
def test_log_record_with_huge_version_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": [1, 2]}))
    store.append(pa.table({"ts": [3]}))
    log = Path(uri) / "_log"
    raw = (log / "000000000002.json").read_text()
    (log / "000000000002.json").unlink()
    big = 10**11
    (log / f"{big:012d}.json").write_text(raw.replace('"_version": 2', f'"_version": {big}'))
    script = textwrap.dedent(f"""
        import resource
        from modyn_store import Store
        from modyn_store.core.errors import CorruptionError
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        try:
            Store.open({uri!r})
        except CorruptionError as exc:
            print("REFUSED", exc)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "REFUSED" in out.stdout and "[2, 3, 4, 5, 6]" in out.stdout and str(big) in out.stdout


@pytest.mark.parametrize("name", ["./../escape", "../escape", "a/b", "ok name", "x\x00y"])
def test_snapshot_table_refuses_a_bad_name_before_writing(tmp_path: Path, name: str) -> None:
    store = Store.open("memory://crafted-snapshot-name", create=True)
    if store.version == 0:
        store.append(pa.table({"ts": [0, 1, 2], "label": [0, 1, 1]}))
    uri = tmp_path / "a" / "db"
    uri.parent.mkdir()
    with pytest.raises(InvalidArgumentError, match="name"):
        snapshot_table(store.as_of(1), str(uri), name=name)
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert made == ["a"]  # no lock file, in the folder or above it


DEEP = "[" * 100_000 + "]" * 100_000  # far deeper than the JSON decoder recurses


def _store_with_two_versions(tmp_path: Path) -> str:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": [1, 2]}))
    store.append(pa.table({"ts": [3]}))
    return uri


def test_a_log_record_nested_too_deep_is_corruption(tmp_path: Path) -> None:
    uri = _store_with_two_versions(tmp_path)
    rec = Path(uri) / "_log" / "000000000002.json"
    raw = rec.read_text()
    rec.write_text(raw[:-1] + ', "x": ' + DEEP + "}")
    with pytest.raises(CorruptionError, match="000000000002.json.*nested too deep"):
        Store.open(uri).log()


def test_a_marker_nested_too_deep_is_not_a_store(tmp_path: Path) -> None:
    uri = _store_with_two_versions(tmp_path)
    (Path(uri) / "_modyn_store.json").write_text(DEEP)
    with pytest.raises(NotAStoreError, match="nested too deep"):
        Store.open(uri)


@pytest.mark.parametrize("text", ["1" * 5000, "-" + "9" * 30])
def test_a_version_of_too_many_digits_is_a_typed_error(text: str) -> None:
    from modyn_store.app.cli._times import version_ref

    with pytest.raises(InvalidArgumentError, match="--version.*at most 19 digits"):
        version_ref(text, "--version")
    assert version_ref("9" * 19) == int("9" * 19)


@pytest.mark.parametrize("stray", ["...json", "..json", ".json"])
def test_a_stray_cache_index_file_does_not_block_erasure(tmp_path: Path, stray: str) -> None:
    """A file in the cache index whose name is no entry name (``...json`` reads as the entry
    ``..``) registers nothing: erase still erases, and the store opens afterwards."""
    import numpy as np

    uri = _store_with_two_versions(tmp_path)
    store = Store.open(uri)
    store.caches.register("e1", np.array([0]), folders=["e1"])
    (Path(uri) / "_cache" / "e1").mkdir(parents=True)
    (Path(uri) / "_meta" / "caches" / stray).write_text("not json")
    assert store.caches.entries() == ["e1"]
    rec = store.erase([0], reason="test")
    assert rec.caches_removed == 1 and not (Path(uri) / "_cache" / "e1").exists()
    assert Store.open(uri).as_of(rec.version).keys().tolist() == [1, 2]
    assert (Path(uri) / "_meta" / "caches" / stray).read_text() == "not json"  # not the store's to remove


@pytest.mark.parametrize("name", ["e1\n", "..", "a/b", ""])
def test_a_cache_entry_name_with_a_final_newline_or_dots_is_refused(tmp_path: Path, name: str) -> None:
    import numpy as np

    store = Store.open(_store_with_two_versions(tmp_path))
    with pytest.raises(InvalidArgumentError, match="name"):
        store.caches.register(name, np.array([0]), folders=["e1"])
    with pytest.raises(InvalidArgumentError, match="folders"):
        store.caches.register("e1", np.array([0]), folders=[name])
    assert store.caches.entries() == []


@pytest.mark.parametrize("field", ["metrics", "config", "trigger", "policy_params"])
def test_a_training_record_nested_too_deep_is_corruption(tmp_path: Path, field: str) -> None:
    """A catalog row whose JSON field a crafted store nested too deep reads as damage, not as a
    ``RecursionError``."""
    import lance
    import numpy as np

    from modyn_store import TrainSet
    from modyn_store.core.trainings import Catalog

    uri = _store_with_two_versions(tmp_path)
    Catalog(Store.open(uri)).record_training("t1", TrainSet.uniform(np.array([0, 1]), version=2))
    lance.dataset(str(Path(uri) / "trainings.lance")).update({field: "'" + DEEP + "'"})
    catalog = Catalog(Store.open(uri))
    with pytest.raises(CorruptionError, match=f"'t1'.*{field}.*nested too deep"):
        catalog.get("t1")
    with pytest.raises(CorruptionError, match=f"'t1'.*{field}.*nested too deep"):
        catalog.list()
