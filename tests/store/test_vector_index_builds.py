"""Vector index builds: processes building one table at once, failed builds, closed indexes,
and answers after later builds, store maintenance and odd queries."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import ClosedError, ConflictError
from modyn_store.core.vectors import VectorIndex, _build_lock

pytest.importorskip("lancedb")

# Builds 300 vectors (offset by argv[2]) into argv[1]. With argv[3] == "slow", the build makes the
# file <argv[1]>.building inside create_index and waits there until another process changed the
# table (at most 5 s) before going on.
_BUILDER = r"""
import json, sys, time
import numpy as np
import lancedb
from lancedb.table import LanceTable
from modyn_store.core.vectors import VectorIndex
uri, offset, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real = LanceTable.create_index
def slow(self, *args, **kwargs):
    open(uri + ".building", "w").close()
    mine, end = self.version, time.time() + 5.0
    while time.time() < end and lancedb.connect(uri).open_table("vectors").version == mine:
        time.sleep(0.05)
    return real(self, *args, **kwargs)
if mode == "slow":
    LanceTable.create_index = slow
base = np.arange(1200, dtype=np.float32).reshape(300, 4) + offset
keys = np.arange(300) + offset
try:
    index = VectorIndex.from_arrays(keys, base, kind="ivf_pq", uri=uri)
    found = index.search(base[:3], k=1)[0][:, 0].tolist()
    same = bool(np.array_equal(index.vectors(keys[:3]), base[:3]))
    print(json.dumps({"found": found, "same": same}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}))
"""


def _spawn(uri: Path, offset: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _BUILDER, str(uri), str(offset), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_processes_building_one_table_at_once_both_answer_their_own_rows(tmp_path: Path) -> None:
    """A second process overwrote the table while the first built its index: the first failed
    with Lance's raw "Incompatible transaction" error. Builds of one table are serialised."""
    uri = tmp_path / "ldb"
    slow = _spawn(uri, 0, "slow")
    marker = tmp_path / "ldb.building"
    while not marker.exists():  # until the first process is inside its build
        assert slow.poll() is None, slow.communicate()
        time.sleep(0.02)
    fast = _spawn(uri, 10_000, "fast")
    assert _result(fast) == {"found": [10_000, 10_001, 10_002], "same": True}
    assert _result(slow) == {"found": [0, 1, 2], "same": True}


def test_an_index_keeps_answering_its_rows_after_another_process_rebuilt_the_table(tmp_path: Path) -> None:
    uri = tmp_path / "ldb"
    base = np.arange(1200, dtype=np.float32).reshape(300, 4) * -1.0
    index = VectorIndex.from_arrays(np.arange(300) + 50_000, base, kind="ivf_pq", uri=uri)
    assert _result(_spawn(uri, 0, "fast")) == {"found": [0, 1, 2], "same": True}
    assert index.search(base[:2], k=1)[0].tolist() == [[50_000], [50_001]]
    np.testing.assert_array_equal(index.vectors([50_002]), base[[2]])


def test_a_build_waiting_past_lock_timeout_is_a_conflict_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "ldb")
    base = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    with _build_lock(uri, "vectors", 1.0):  # another build of the same table holds it
        with pytest.raises(ConflictError, match="lock_timeout"):
            VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq", uri=uri, lock_timeout=0.1)
    index = VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq", uri=uri, lock_timeout=0.1)
    assert index.search(base[7], k=1)[0].tolist() == [[7]]


@pytest.mark.parametrize("kind", ["exact", "ivf_pq"])
def test_a_closed_index_raises_closed_error(kind: str) -> None:
    """A closed LanceDB index raised AttributeError; a closed exact one went on answering."""
    base = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    with VectorIndex.from_arrays(np.arange(300), base, kind=kind) as index:  # type: ignore[arg-type]
        assert index.search(base[3], k=1)[0].tolist() == [[3]]
    for use in (lambda: index.search(base[3], k=1), lambda: index.vectors([3])):
        with pytest.raises(ClosedError, match="closed"):
            use()
    index.close()  # closing again is fine
    assert len(index) == 300


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_a_failed_build_removes_its_temporary_folder_and_the_next_build_works(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt: type[BaseException]) -> None:
    from lancedb.table import LanceTable

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    real = LanceTable.create_index

    def killed(self: LanceTable, *args: object, **kwargs: object) -> None:
        raise interrupt("killed half way")

    monkeypatch.setattr(LanceTable, "create_index", killed)
    base = np.random.default_rng(2).normal(size=(300, 4)).astype(np.float32)
    uri = tmp_path / "ldb"
    for where in (None, uri):
        with pytest.raises(interrupt, match="half way"):
            VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq", uri=where)
    assert list(temp.iterdir()) == []
    monkeypatch.setattr(LanceTable, "create_index", real)
    for where in (None, uri):
        index = VectorIndex.from_arrays(np.arange(300) + 7, base, kind="ivf_pq", uri=where)
        assert index.search(base[:2], k=1)[0].tolist() == [[7], [8]]
        np.testing.assert_array_equal(index.vectors([9]), base[[2]])
        index.close()
    assert list(temp.iterdir()) == []


def test_an_unclosed_index_removes_its_temporary_folder_when_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base = np.random.default_rng(3).normal(size=(300, 4)).astype(np.float32)
    index = VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq")
    assert len(list(tmp_path.iterdir())) == 1
    del index
    import gc

    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_lancedb_search_of_no_queries_or_a_huge_k(monkeypatch: pytest.MonkeyPatch) -> None:
    """No query rows raised IndexError; a k far above the rows was passed to LanceDB, which
    allocates k results per query (k=10**9 aborted the process)."""
    base = np.random.default_rng(4).normal(size=(300, 4)).astype(np.float32)
    index = VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq")
    keys, dist = index.search(np.zeros((0, 4)), k=3)
    assert keys.shape == dist.shape == (0, 3)
    asked: list[int] = []
    real = VectorIndex._search_lancedb

    def spy(self: VectorIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        asked.append(k)
        return real(self, q, k)

    monkeypatch.setattr(VectorIndex, "_search_lancedb", spy)
    keys, dist = index.search(base[:2], k=1000)
    assert asked == [300]
    assert keys.shape == (2, 1000) and sorted(keys[0, :300].tolist()) == list(range(300))
    assert (keys[:, 300:] == -1).all() and np.isinf(dist[:, 300:]).all()
    index.close()


@pytest.mark.parametrize("kind", ["exact", "ivf_pq"])
def test_an_index_of_version_n_after_delete_erase_compact_and_vacuum(tmp_path: Path, kind: str) -> None:
    """A key deleted after version N is still live at N (returned); an erased key is not."""
    store = Store.open(str(tmp_path / "s"), create=True)
    n = 300
    store.append(pa.table({"ts": np.arange(n)}))
    store.scores.write("embedding", np.arange(n), np.stack([np.arange(n, dtype=float), np.zeros(n)], axis=1))
    index = VectorIndex.from_store(store, "embedding", kind=kind, num_partitions=2)  # type: ignore[arg-type]
    store.delete(keys=[0])
    store.erase([1], reason="request")
    store.compact()
    store.vacuum(keep_versions=1, dry_run=False)
    store.compact()
    keys, dist = index.search(np.array([[0.0, 0.0]]), k=3)
    assert keys.tolist() == [[0, 2, 3]] and dist.tolist() == [[0.0, 4.0, 9.0]]
    assert index.vectors([0]).tolist() == [[0.0, 0.0]]
    index.close()


def test_a_clash_lance_detects_is_a_conflict_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no lock file can be taken (a remote URI), Lance's own commit check is the guard:
    its raw RuntimeError reaches the caller as ConflictError, and the temporary folder goes."""
    from lancedb.table import LanceTable

    def clash(self: LanceTable, *args: object, **kwargs: object) -> None:
        raise RuntimeError("lance error: Incompatible transaction: This CreateIndex transaction is "
                           "incompatible with concurrent transaction Overwrite at version 4.")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(LanceTable, "create_index", clash)
    base = np.random.default_rng(5).normal(size=(300, 4)).astype(np.float32)
    with pytest.raises(ConflictError, match="at the same time"):
        VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq")
    assert list(tmp_path.iterdir()) == []


def test_a_lancedb_query_whose_float32_distances_overflow_is_answered_exactly() -> None:
    """LanceDB drops rows whose float32 distance overflows: a query 2e19 from the vectors got
    no neighbours at all (all padding) while the exact kind found them."""
    base = np.random.default_rng(6).normal(size=(300, 4)).astype(np.float32)
    approx = VectorIndex.from_arrays(np.arange(300) - 150, base, kind="ivf_pq")
    exact = VectorIndex.from_arrays(np.arange(300) - 150, base, kind="exact")
    q = np.vstack([np.full((1, 4), 2e19), base[:2], np.full((1, 4), -3e38)])
    keys, dist = approx.search(q, k=3)
    want_keys, want_dist = exact.search(q, k=3)
    assert (keys >= -150).all() and np.isfinite(dist).all()
    np.testing.assert_array_equal(keys[[0, 3]], want_keys[[0, 3]])
    np.testing.assert_array_equal(dist[[0, 3]], want_dist[[0, 3]])
    assert keys[1:3, 0].tolist() == [-150, -149]
    approx.close()


def test_vectors_too_large_for_float32_distances_get_an_exact_index() -> None:
    """LanceDB's training panicked (RustPanic) on vectors of norm about 1e19."""
    base = np.random.default_rng(7).normal(size=(300, 4)).astype(np.float32) * np.float32(1e19)
    index = VectorIndex.from_arrays(np.arange(300), base, kind="ivf_pq")
    assert index.kind == "exact"
    assert index.search(base[:3], k=1)[0].tolist() == [[0], [1], [2]]


# Copies a store of 500 keys (offset by argv[2]) into table "samples" of argv[1] in batches of
# 100. With argv[3] == "slow", its first add makes <argv[1]>.copying and waits until another
# process changed the table (at most 5 s).
_COPIER = r"""
import json, sys, time
import numpy as np, pyarrow as pa
import lancedb
from lancedb.table import LanceTable
from modyn_store import Store
from modyn_store.core.vectors import snapshot_table
uri, offset, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real = LanceTable.add
def slow(self, *args, **kwargs):
    open(uri + ".copying", "w").close()
    mine, end = self.version, time.time() + 5.0
    while time.time() < end and lancedb.connect(uri).open_table("samples").version == mine:
        time.sleep(0.05)
    LanceTable.add = real
    return real(self, *args, **kwargs)
if mode == "slow":
    LanceTable.add = slow
store = Store.open(f"memory://copy-{offset}", create=True)
store.append(pa.table({"key": np.arange(500) + offset, "ts": np.arange(500)}))
try:
    keys = snapshot_table(store.as_of(None), uri, name="samples", batch_size=100).to_arrow().column("key")
    print(json.dumps({"keys": sorted(keys.to_pylist()) == list(range(offset, offset + 500))}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}))
"""


def test_processes_copying_into_one_snapshot_table_at_once_do_not_interleave(tmp_path: Path) -> None:
    """A second copy overwrote the table between the first copy's batches: the first failed
    with Lance's raw "Incompatible transaction" error. Copies of one table are serialised."""
    uri = tmp_path / "ldb"
    slow = subprocess.Popen([sys.executable, "-c", _COPIER, str(uri), "0", "slow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "ldb.copying"
    while not marker.exists():
        assert slow.poll() is None, slow.communicate()
        time.sleep(0.02)
    fast = subprocess.Popen([sys.executable, "-c", _COPIER, str(uri), "10000", "fast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _result(fast) == {"keys": True}
    assert _result(slow) == {"keys": True}
    import lancedb

    keys = lancedb.connect(str(uri)).open_table("samples").to_arrow().column("key").to_pylist()
    assert sorted(keys) == list(range(10_000, 10_500))  # the later copy, whole
