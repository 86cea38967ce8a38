"""Resuming an epoch at a batch: ``set_epoch(e, start_batch=b)`` serves exactly the batches
``b..`` of an uninterrupted epoch ``e`` (rows, order, weights), on every rank, with and without
``drop_last``, through worker processes and while the cache entry is being built, and never
reads the rows of the batches it skips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import training.order
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from tests.training.conftest import reference_rows
from training.building import Building
from training.columns import VarColumn
from training.loading import LoaderOptions, epoch_order, loader

COLUMNS = ["label", "x", "img", "text"]
BATCH = 16


def _selection(store, n: int, seed: int) -> TrainSet:
    rng = np.random.default_rng(seed)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    return TrainSet(keys=keys, weights=rng.uniform(0.5, 2.0, n), version=store.version)


def _lists(batches: list[dict]) -> list[dict[str, list]]:
    return [{n: (v.tolist() if isinstance(v, torch.Tensor) else list(v)) for n, v in b.items()} for b in batches]


def _offsets(n: int) -> list[int]:
    """0, 1, a middle batch, the last batch and ``n`` (nothing left)."""
    return sorted({0, min(1, n), n // 2, max(n - 1, 0), n})


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the variable-length rows read from cache entries (the fetch of a binary or string
    column, in this process)."""
    counts: list[int] = []
    real = VarColumn.rows

    def counted(self: VarColumn, index: np.ndarray, *, text: bool) -> list:
        counts.append(int(np.asarray(index).size))
        return real(self, index, text=text)

    monkeypatch.setattr(VarColumn, "rows", counted)
    return counts


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [1, 3])
def test_resumed_batches_are_the_tail_of_the_uninterrupted_epoch(
    store, rows_read: list[int], shuffle: bool, drop_last: bool, world_size: int
) -> None:
    ts = _selection(store, 301, seed=1)
    kw = dict(columns=COLUMNS, batch_size=BATCH, shuffle=shuffle, seed=7, drop_last=drop_last, world_size=world_size)
    loader(store, ts, rank=0, **kw).wait_materialized()
    for rank in range(world_size):
        full_dl = loader(store, ts, rank=rank, **kw)
        for epoch in (0, 2):
            full_dl.set_epoch(epoch)
            full = _lists(list(full_dl))
            n = full_dl.num_batches(epoch)
            assert len(full) == n
            # the uninterrupted epoch is the plain reference (positions, rows, weights)
            pos = epoch_order(ts, epoch, shuffle=shuffle, seed=7, rank=rank, world_size=world_size)
            pos = pos[: n * BATCH] if drop_last else pos
            assert sum((b["key"] for b in full), []) == ts.keys[pos].tolist()
            ref = reference_rows(store, ts.keys[pos], ["text"])
            assert sum((b["text"] for b in full), []) == ref["text"]
            for b in _offsets(n):
                dl = loader(store, ts, rank=rank, **kw)
                dl.set_epoch(epoch, start_batch=b)
                assert len(dl) == n - b
                rows_read.clear()
                got = _lists(list(dl))
                assert got == full[b:], (rank, epoch, b)
                served = sum(len(x["key"]) for x in got)
                # each variable-length column read exactly the served rows, none of the skipped
                assert sum(rows_read) == 2 * served, (rank, epoch, b)
                weights = np.concatenate([np.float32(x["weight"]) for x in got]) if got else np.empty(0, np.float32)
                np.testing.assert_array_equal(weights, ts.weights[pos[b * BATCH:]].astype(np.float32))
                # the offset serves one epoch only: the next one is whole
                assert dl.epoch == epoch + 1 and dl.start_batch == 0 and len(dl) == dl.num_batches(epoch + 1)
                assert len(list(dl)) == dl.num_batches(epoch + 1)


def test_resuming_per_epoch_plans_and_per_epoch_weights(store) -> None:
    """Epoch plans of their own sizes (a weighted set), and a set whose epochs weigh keys
    differently, served epoch by epoch through ``epoch_set``, resume at each epoch's offset."""
    base = _selection(store, 200, seed=2)
    plans = (np.arange(0, 200, 2), np.arange(1, 200, 3))
    weights = tuple(np.random.default_rng(i).uniform(0.1, 5.0, p.size) for i, p in enumerate(plans))
    planned = TrainSet(base.keys, base.weights, base.version, per_epoch=plans)
    reweighted = TrainSet(base.keys, base.weights, base.version, per_epoch=plans, per_epoch_weights=weights)
    for epoch in range(4):
        for ts in (planned, reweighted.epoch_set(epoch)):
            full_dl = loader(store, ts, columns=["label", "img"], batch_size=9, seed=3)
            full_dl.set_epoch(epoch)
            full = _lists(list(full_dl))
            assert len(full) == full_dl.num_batches(epoch) == -(-plans[epoch % 2].size // 9)
            for b in _offsets(len(full)):
                dl = loader(store, ts, columns=["label", "img"], batch_size=9, seed=3)
                dl.set_epoch(epoch, start_batch=b)
                assert _lists(list(dl)) == full[b:]
        # the epoch's own weights, in its order
        order = epoch_order(reweighted.epoch_set(epoch), epoch, shuffle=True, seed=3)
        got = np.concatenate([np.float32(x["weight"]) for x in full])
        np.testing.assert_array_equal(got, np.float32(weights[epoch % 2][order]))


def test_resumed_first_epoch_served_while_the_entry_is_built(store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold loader resumes its first epoch from the entry being filled (epoch 0 in blocks
    here): it waits only for the rows of the batches it serves."""
    monkeypatch.setattr(training.order, "FIRST_EPOCH_BLOCK", 64)
    waited: list[int] = []
    real_wait = Building.wait_rows
    monkeypatch.setattr(Building, "wait_rows", lambda self, rows: waited.append(rows.size) or real_wait(self, rows))
    for drop_last in (False, True):
        for seed, b in enumerate((0, 1, 5, 9, 18)):
            ts = _selection(store, 300, seed=100 + seed + 10 * drop_last)  # a key set of its own: a cold entry
            dl = loader(store, ts, columns=["label", "x"], batch_size=BATCH, seed=4, drop_last=drop_last)
            assert dl._building is not None
            n = dl.num_batches(0)
            b = min(b, n)
            dl.set_epoch(0, start_batch=b)
            waited.clear()
            got = _lists(list(dl))
            assert sum(waited) == sum(len(x["key"]) for x in got)
            assert len(got) == n - b
            dl.wait_materialized()
            full_dl = loader(store, ts, columns=["label", "x"], batch_size=BATCH, seed=4, drop_last=drop_last)
            assert full_dl._building is None
            assert got == _lists(list(full_dl))[b:], (drop_last, b)


def n_bytes(batch: dict) -> dict:
    """A picklable transform: the byte length of every blob."""
    return {**batch, "n_bytes": torch.tensor([len(x) for x in batch["img"]])}


@pytest.mark.parametrize("drop_last", [False, True])
def test_resumed_batches_through_worker_processes(store, drop_last: bool) -> None:
    """Workers are sent only the rows of the batches served, for each rank's own offset."""
    ts = _selection(store, 150, seed=5)
    kw = dict(columns=["img", "label"], batch_size=BATCH, seed=2, transform=n_bytes, drop_last=drop_last, world_size=2)
    for rank, b in ((0, 0), (1, 3)):
        plain = loader(store, ts, rank=rank, **kw)
        plain.set_epoch(1)
        full = _lists(list(plain))
        dl = loader(store, ts, rank=rank, num_workers=2, **kw)
        dl.set_epoch(1, start_batch=b)
        got = _lists(list(dl))
        assert got == full[b:]
        sent = dl._pool.sampler.batches
        assert sum(s.size for s in sent) == sum(len(x["key"]) for x in got)
        assert [len(x["key"]) for x in dl] == [len(x["key"]) for x in _lists(list(plain))]  # next epoch: whole


def test_resuming_at_the_end_serves_nothing_and_moves_on(store) -> None:
    ts = _selection(store, 40, seed=6)
    dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
    dl.set_epoch(3, start_batch=3)
    assert len(dl) == 0 and list(dl) == []
    assert dl.epoch == 4 and len(dl) == 3 and len(list(dl)) == 3


@pytest.mark.parametrize("bad", [-1, 4, 1.0, "1", True, None, np.float64(2)])
def test_bad_start_batch_is_refused_and_leaves_the_loader_as_it_was(store, bad) -> None:
    ts = _selection(store, 40, seed=6)  # 3 batches of 16 (the last one 8 rows)
    dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
    dl.set_epoch(1, start_batch=1)
    with pytest.raises(InvalidArgumentError, match=r"start_batch.*\[0, 3\]"):
        dl.set_epoch(2, start_batch=bad)
    assert dl.epoch == 1 and dl.start_batch == 1
    with pytest.raises(InvalidArgumentError, match="epoch"):
        dl.set_epoch(-1, start_batch=0)
    assert dl.epoch == 1 and dl.start_batch == 1
    dl.set_epoch(2, start_batch=np.int64(3))
    assert dl.start_batch == 3 and len(dl) == 0


def test_drop_last_bounds_the_offset_by_the_full_batches(store) -> None:
    ts = _selection(store, 40, seed=6)
    dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1, drop_last=True)
    assert dl.num_batches(0) == 2
    with pytest.raises(InvalidArgumentError, match=r"start_batch.*\[0, 2\]"):
        dl.set_epoch(0, start_batch=3)


@pytest.mark.gpu
@pytest.mark.parametrize("budget", [None, 0])
def test_resumed_cuda_batches_are_the_tail_of_the_cpu_epoch(store, budget) -> None:
    """Device-resident (budget None) and streamed (budget 0) CUDA batches resume like the CPU's."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    ts = _selection(store, 301, seed=9)
    cpu = loader(store, ts, columns=["x", "label", "text"], batch_size=BATCH, seed=3)
    cpu.set_epoch(1)
    full = _lists(list(cpu))
    for b in _offsets(len(full)):
        dl = loader(store, ts, columns=["x", "label", "text"], batch_size=BATCH, seed=3, device="cuda",
                    options=LoaderOptions(device_memory_budget=budget))
        assert dl.on_device == (budget is None)
        dl.set_epoch(1, start_batch=b)
        assert _lists(list(dl)) == full[b:], b


def test_an_iteration_that_fails_before_serving_keeps_the_offset(store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read error before the epoch is served (the entry's check) leaves the loader resumable:
    the next try serves the same tail, not the whole epoch again."""
    ts = _selection(store, 100, seed=7)
    plain = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
    plain.set_epoch(1)
    full = _lists(list(plain))
    dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
    list(dl)  # epoch 0: the entry is bound
    dl.set_epoch(1, start_batch=4)
    real = dl._ensure_alive
    failed: list[bool] = []

    def flaky() -> None:
        if not failed:
            failed.append(True)
            raise OSError("transient read error")
        real()

    monkeypatch.setattr(dl, "_ensure_alive", flaky)
    with pytest.raises(OSError, match="transient"):
        list(dl)
    assert dl.epoch == 1 and dl.start_batch == 4 and len(dl) == len(full) - 4
    assert _lists(list(dl)) == full[4:]
    assert dl.epoch == 2 and dl.start_batch == 0


def test_the_offset_belongs_to_its_epoch(store) -> None:
    """An offset set for epoch 1 does not apply to another epoch the loader is moved to
    directly, nor again once the loader moved past it."""
    ts = _selection(store, 100, seed=7)

    def epoch(e: int) -> list[dict[str, list]]:
        dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
        dl.set_epoch(e)
        return _lists(list(dl))

    dl = loader(store, ts, columns=["label"], batch_size=BATCH, seed=1)
    dl.set_epoch(1, start_batch=2)
    dl.epoch = 3
    assert dl.start_batch == 0 and len(dl) == dl.num_batches(3)
    assert _lists(list(dl)) == epoch(3)
    dl.epoch = 1
    assert dl.start_batch == 0 and _lists(list(dl)) == epoch(1)
