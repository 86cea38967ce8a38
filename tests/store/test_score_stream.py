"""Streaming scores: ``scores.batches`` / ``as_of`` merge sorted write runs exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import CorruptionError, Store, UnknownKeyError
from modyn_store.core import _score_stream


def _reference(history: list[tuple[int, np.ndarray, np.ndarray]], live: np.ndarray, version: int) -> dict[int, tuple[float, int]]:
    """Latest (value, version) per live key from the writes at or before ``version``."""
    out: dict[int, tuple[float, int]] = {}
    for v, keys, values in history:
        if v <= version:
            for k, x in zip(keys.tolist(), values.tolist()):
                out[k] = (x, v)
    alive = set(live.tolist())
    return {k: val for k, val in out.items() if k in alive}


def _streamed(store: Store, version: int, batch_size: int) -> dict[int, tuple[float, int]]:
    got: dict[int, tuple[float, int]] = {}
    last = None
    for b in store.scores.batches(version, "loss", batch_size=batch_size):
        keys = b.column("key").to_numpy()
        assert np.all(np.diff(keys) > 0) and (last is None or keys[0] > last), "not ascending by key"
        last = int(keys[-1])
        for k, x, v in zip(keys.tolist(), b.column("value").to_pylist(), b.column("version").to_pylist()):
            got[k] = (x, v)
    return got


@pytest.mark.parametrize("in_memory_check", [True, False])
def test_stream_equals_reference_at_every_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory_check: bool) -> None:
    if not in_memory_check:  # the large-store liveness check: stream the keys of the written range
        monkeypatch.setattr(_score_stream, "CHECK_IN_MEMORY_BELOW", 0)
    rng = np.random.default_rng(3)
    store = Store.open(str(tmp_path / "s"), create=True)
    history: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i in range(4):
        store.append(pa.table({"ts": np.arange(300) + 300 * i}))
        live = store.as_of().keys()
        keys = rng.choice(live, size=rng.integers(50, 250), replace=False)  # unsorted, overlapping writes
        values = rng.normal(size=keys.size)
        history.append((store.scores.write("loss", keys, values).version, keys, values))
        if i == 1:
            store.delete(keys=live[::7])
        if i == 2:
            store.erase(keys=live[5:40:3], reason="test")
            store.compact()  # fragments of several writes merged into one
    for version in range(1, store.version + 1):
        live = store.as_of(version).keys()
        want = _reference(history, live, version)
        # erased keys are gone from every version, including the writes' history
        for bs in (1, 7, 1 << 16):
            assert _streamed(store, version, bs) == want
        table = store.scores.as_of(version, "loss")
        assert table.column("key").to_pylist() == sorted(want)
        assert table.column("version").to_pylist() == [want[k][1] for k in sorted(want)]


def test_large_store_check_refuses_dead_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_score_stream, "CHECK_IN_MEMORY_BELOW", 0)
    store = Store.open("memory://score-stream-check", create=True)
    store.append(pa.table({"ts": np.arange(100)}))
    store.delete(keys=[10])
    before = store.version
    with pytest.raises(UnknownKeyError, match="1 keys are not live"):
        store.scores.write("loss", [5, 10, 20], np.ones(3))
    with pytest.raises(UnknownKeyError, match="1 keys are not live"):
        store.scores.write("loss", [5, 500], np.ones(2))  # never inserted
    assert store.version == before
    store.scores.write("loss", [99, 0, 50], np.array([1.0, 2.0, 3.0]))
    assert store.scores.as_of(None, "loss").column("value").to_pylist() == [2.0, 3.0, 1.0]


def test_stream_resumes_after_compaction_mid_stream(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(60000)}))
    for i in range(5):
        keys = np.arange(i, 60000, 3)
        store.scores.write("loss", keys, np.full(keys.size, float(i)))
    want = store.scores.as_of(None, "loss")
    stream = store.scores.batches(None, "loss", batch_size=512)
    first = next(stream)
    store.compact()  # removes the files the stream started from
    rest = list(stream)
    got = pa.Table.from_batches([first, *rest])
    assert got.column("key").to_pylist() == want.column("key").to_pylist()
    assert got.column("value").to_pylist() == want.column("value").to_pylist()


def test_unsorted_run_flagged_sorted_is_corruption(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    store.scores.write("loss", [1, 2], np.ones(2))
    with store.transaction("scores") as txn:  # a damaged write: rows out of key order
        txn._write("scores/loss", pa.table({"key": pa.array([5, 3], pa.int64()), "value": [1.0, 2.0],
                                            "training_id": pa.array([None, None], pa.string())}))
        txn.details = {"scores": ["loss"], "rows": 2, "training_id": None, "sorted": True}
    with pytest.raises(CorruptionError, match="not sorted by key"):
        store.scores.as_of(None, "loss")


def test_writes_without_sorted_runs_are_merged_in_memory(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    with store.transaction("scores") as txn:  # a write from before runs were sorted
        txn._write("scores/loss", pa.table({"key": pa.array([7, 3, 5], pa.int64()), "value": [0.7, 0.3, 0.5],
                                            "training_id": pa.array([None] * 3, pa.string())}))
        txn.details = {"scores": ["loss"], "rows": 3, "training_id": None}
    store.scores.write("loss", [5, 1], np.array([0.55, 0.1]))
    for read in (lambda: store.scores.as_of(None, "loss"),
                 lambda: pa.Table.from_batches(list(store.scores.batches(None, "loss", batch_size=2)))):
        t = read()
        assert t.column("key").to_pylist() == [1, 3, 5, 7]
        assert t.column("value").to_pylist() == [0.1, 0.3, 0.55, 0.7]


def test_stream_resumes_from_the_last_key_when_a_read_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that vanishes mid-stream (OSError from Lance) restarts the runs after the last
    key yielded: no key twice, none lost."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(60000)}))
    for i in range(3):
        keys = np.arange(i, 60000, 2)
        store.scores.write("loss", keys, np.full(keys.size, float(i)))
    want = store.scores.as_of(None, "loss")
    builds: list[object] = []
    real = _score_stream._readers

    def failing(*args: object, **kwargs: object) -> list[tuple[object, int]]:
        builds.append(args[3])
        readers = real(*args, **kwargs)  # type: ignore[arg-type]
        if len(builds) > 1:
            return readers

        def broken(it: object) -> object:
            for n, batch in enumerate(it):  # type: ignore[attr-defined]
                if n == 3:
                    raise OSError("file vanished")
                yield batch

        return [(broken(r), w) for r, w in readers]

    monkeypatch.setattr(_score_stream, "_readers", failing)
    got = pa.Table.from_batches(list(store.scores.batches(None, "loss", batch_size=4096)))
    assert len(builds) == 2 and isinstance(builds[1], int)  # resumed after a key
    assert got.column("key").to_pylist() == want.column("key").to_pylist()
    assert got.column("value").to_pylist() == want.column("value").to_pylist()


def test_duplicate_keys_in_one_write_are_refused() -> None:
    from modyn_store import InvalidArgumentError

    store = Store.open("memory://score-stream-dups", create=True)
    store.append(pa.table({"ts": np.arange(10)}))
    before = store.version
    for keys in ([3, 1, 3], [1, 1], [9, 2, 5, 2]):  # unsorted and sorted duplicates
        with pytest.raises(InvalidArgumentError, match="duplicates"):
            store.scores.write("loss", keys, np.ones(len(keys)))
    assert store.version == before and "loss" not in store.scores.names()


def test_batches_come_in_about_the_size_asked_for(tmp_path: Path) -> None:
    """Each run reads batch_size / runs rows at a time; the merged output is regrouped, so a
    consumer that pays per batch (a streaming top-k) sees few large batches."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(40000)}))
    for i in range(8):  # disjoint runs: each merge step holds one run's rows only
        keys = np.arange(i * 5000, (i + 1) * 5000)
        store.scores.write("loss", keys, np.full(keys.size, float(i)))
    sizes = [b.num_rows for b in store.scores.batches(None, "loss", batch_size=8192)]
    assert sum(sizes) == 40000 and all(s >= 8192 for s in sizes[:-1]) and len(sizes) <= 5


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 4097])
def test_batches_hold_at_most_batch_size(tmp_path: Path, batch_size: int) -> None:
    """A merge step holds up to a run batch (4096 rows or more) per run: the stream still cuts
    it into batches of batch_size rows (the last one: the rest), like ``Snapshot.to_batches``."""
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(9000)}))
    store.scores.write("loss", [1, 2], np.array([0.1, 0.2]))
    store.scores.write("loss", np.arange(0, 9000, 2), np.arange(0, 9000, 2) / 10)
    store.delete(keys=[4])
    for version in (2, 3, 4):
        want = store.scores.as_of(version, "loss")
        batches = list(store.scores.batches(version, "loss", batch_size=batch_size))
        sizes = [b.num_rows for b in batches]
        assert all(n == batch_size for n in sizes[:-1]) and 0 < sizes[-1] <= batch_size, (version, sizes[:5])
        assert pa.Table.from_batches(batches).equals(want), version
