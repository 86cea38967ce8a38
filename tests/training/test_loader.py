"""The loader against a plain reference: same rows, same order for a seed, shards, weights."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modyn_store import Store
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from tests.training.conftest import reference_rows
from training import transfer
from training.errors import ErasedKeysError
from training.loading import LoaderOptions, epoch_order, loader

COLUMNS = ["ts", "label", "x", "img", "text"]


def _selection(store, n: int, seed: int = 0) -> TrainSet:
    rng = np.random.default_rng(seed)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    weights = rng.uniform(0.5, 2.0, n)
    return TrainSet(keys=keys, weights=weights, version=store.version)


def _expected_order(ts: TrainSet, epoch: int, seed: int) -> np.ndarray:
    pos = ts.for_epoch(epoch)
    return pos[np.random.default_rng([seed, epoch]).permutation(pos.size)]


def _as_lists(batch: dict) -> dict[str, list]:
    return {n: (v.tolist() if isinstance(v, torch.Tensor) else list(v)) for n, v in batch.items()}


@pytest.mark.parametrize("strategy", ["scan", "take"])
def test_batches_equal_plain_reference(store, strategy: str) -> None:
    ts = _selection(store, 700)
    dl = loader(store, ts, columns=COLUMNS, batch_size=64, seed=5, options=LoaderOptions(strategy=strategy))
    for epoch in range(2):
        order = _expected_order(ts, epoch, 5)
        ref = reference_rows(store, ts.keys[order], COLUMNS)
        got: dict[str, list] = {n: [] for n in ["key", "weight", *COLUMNS]}
        sizes = []
        for batch in dl:
            sizes.append(len(batch["key"]))
            for n, v in _as_lists(batch).items():
                got[n].extend(v)
        assert sizes == [64] * 10 + [60]
        for c in ["key", *COLUMNS]:
            assert got[c] == ref[c], c
        np.testing.assert_array_equal(np.array(got["weight"], np.float32), ts.weights[order].astype(np.float32))


@pytest.mark.parametrize("value", [1.0, 0.25, 1e-40, 3e38])
def test_one_weight_for_every_row_is_served_bit_for_bit(store, value: float) -> None:
    """A train set whose rows share one weight: shuffled batches carry it as float32 (1e-40 is
    a subnormal there; a weight float32 makes 0, e.g. 1e-50, is refused: see
    test_loader_weights.py), in fresh tensors; one row with another weight makes every row's
    weight its own."""
    keys = np.random.default_rng(2).choice(store.as_of(None).keys(), 300, replace=False)
    for other in (False, True):
        weights = np.full(300, value)
        if other:
            weights[123] = 3.0
        ts = TrainSet(keys=keys, weights=weights, version=store.version)
        dl = loader(store, ts, columns=["label"], batch_size=64, seed=4)
        for epoch in range(3):  # the first epoch is served while the entry is built, then from it
            batches = list(dl)
            got = torch.cat([b["weight"] for b in batches]).numpy()
            want = weights[_expected_order(ts, epoch, 4)].astype(np.float32)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
            assert all(b["weight"].dtype == torch.float32 for b in batches)
            batches[0]["weight"].add_(1.0)  # a caller's change stays in its batch


def test_every_row_once_per_epoch_and_order_changes(store) -> None:
    ts = _selection(store, 500, seed=3)
    dl = loader(store, ts, columns=["label"], batch_size=50, seed=11)
    orders = []
    for _ in range(3):
        keys = np.concatenate([b["key"].numpy() for b in dl])
        assert np.array_equal(np.sort(keys), np.sort(ts.keys))
        orders.append(keys)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    again = loader(store, ts, columns=["label"], batch_size=50, seed=11)
    assert np.array_equal(np.concatenate([b["key"].numpy() for b in again]), orders[0])
    other = loader(store, ts, columns=["label"], batch_size=50, seed=12)
    assert not np.array_equal(np.concatenate([b["key"].numpy() for b in other]), orders[0])


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shards_disjoint_and_complete(store, world_size: int) -> None:
    ts = _selection(store, 301, seed=4)
    for epoch in range(2):
        shards = []
        for rank in range(world_size):
            dl = loader(store, ts, columns=["x"], batch_size=32, seed=2, rank=rank, world_size=world_size)
            dl.set_epoch(epoch)
            shards.append(np.concatenate([b["key"].numpy() for b in dl]))
        allk = np.concatenate(shards)
        assert allk.size == ts.size and np.unique(allk).size == ts.size
        assert set(allk.tolist()) == set(ts.keys.tolist())
        assert max(s.size for s in shards) - min(s.size for s in shards) <= 1


def test_per_epoch_plans_and_unshuffled_order(store) -> None:
    keys = store.as_of(None).keys()[:200]
    plans = (np.arange(0, 200, 2), np.arange(1, 200, 3))
    ts = TrainSet(keys=keys, weights=np.ones(200), version=store.version, per_epoch=plans)
    dl = loader(store, ts, columns=["label"], batch_size=16, shuffle=False)
    for epoch in range(3):
        got = np.concatenate([b["key"].numpy() for b in dl])
        assert np.array_equal(got, keys[plans[epoch % 2]])


def test_unshuffled_batches_are_copied_slices_of_the_cache(store) -> None:
    """One slice per column, copied: a batch changed in place must not change the cache."""
    keys = store.as_of(None).keys()[:300]  # appended in key order: storage order
    ts = TrainSet.uniform(keys, version=store.version)
    opts = LoaderOptions(prefetch=0, host_memory_budget=0)  # serve from the mapped entry itself
    dl = loader(store, ts, columns=["x"], batch_size=100, shuffle=False, options=opts)
    cache = dl._entry.fixed["x"]
    assert dl._entry.keys.tolist() == keys.tolist()
    for i, b in enumerate(dl):
        assert not np.shares_memory(b["x"].numpy(), cache)
        np.testing.assert_array_equal(b["x"].numpy(), cache[i * 100 : (i + 1) * 100])
    # the same keys in another order share the entry, and are served in their own order
    rev = TrainSet.uniform(keys[::-1], version=store.version)
    dl2 = loader(store, rev, columns=["x"], batch_size=100, shuffle=False)
    assert dl2._entry is dl._entry
    assert np.concatenate([b["key"].numpy() for b in dl2]).tolist() == keys[::-1].tolist()


def test_host_memory_budget_copies_the_entry_or_maps_it(store) -> None:
    """Within the budget the loader serves from process memory (same batches): the memory it
    built the entry in, or a copy of an entry it opened, made before its second epoch; at 0
    from the memory-mapped entry; a bad budget is refused."""
    ts = _selection(store, 200, seed=3)
    built = loader(store, ts, columns=["x"], batch_size=50, seed=1,
                   options=LoaderOptions(prefetch=0, host_memory_budget=1 << 30))
    built.wait_materialized()
    copied = loader(store, ts, columns=["x"], batch_size=50, seed=1,
                    options=LoaderOptions(prefetch=0, host_memory_budget=1 << 30))
    mapped = loader(store, ts, columns=["x"], batch_size=50, seed=1,
                    options=LoaderOptions(prefetch=0, host_memory_budget=0))
    cache = copied._entry.fixed["x"]
    assert built._entry is copied._entry is mapped._entry
    for epoch in range(3):  # the copy is made before the second epoch
        b_built, b_copied, b_mapped = list(built), list(copied), list(mapped)
        assert not np.shares_memory(built._host["x"].numpy(), cache)
        assert np.shares_memory(copied._host["x"].numpy(), cache) == (epoch == 0)
        assert np.shares_memory(mapped._host["x"].numpy(), cache)
        for a, b, c in zip(b_copied, b_mapped, b_built, strict=True):
            assert torch.equal(a["key"], b["key"]) and torch.equal(a["x"], b["x"])
            assert torch.equal(a["key"], c["key"]) and torch.equal(a["x"], c["x"])
    with pytest.raises(InvalidArgumentError, match="host_memory_budget"):
        loader(store, ts, columns=["x"], batch_size=50, options=LoaderOptions(host_memory_budget=-1))


def test_drop_last_and_len(store) -> None:
    ts = _selection(store, 130)
    dl = loader(store, ts, columns=["label"], batch_size=50, drop_last=True)
    assert len(dl) == 2
    assert [len(b["key"]) for b in dl] == [50, 50]


@pytest.mark.parametrize("drop_last", [False, True])
def test_len_counts_the_batches_each_rank_serves(store, drop_last: bool) -> None:
    """``len()`` is the number of batches the next epoch serves on the rank (epoch plans of
    their own sizes included), counted without ordering the epoch."""
    ts = _selection(store, 131)
    planned = TrainSet(ts.keys, ts.weights, ts.version, per_epoch=[np.arange(0, 131, 2), np.arange(17)])
    for train_set in (ts, planned):
        for world in (1, 3):
            for rank in range(world):
                dl = loader(store, train_set, columns=["label"], batch_size=20, drop_last=drop_last,
                            rank=rank, world_size=world)
                for _ in range(3):
                    n = len(dl)
                    assert n == len(list(dl))


def decode(batch: dict) -> dict:
    """A stand-in for image decoding: the byte length of every blob."""
    return {**batch, "n_bytes": torch.tensor([len(b) for b in batch["img"]])}


def test_transform_in_worker_processes(store) -> None:
    ts = _selection(store, 120, seed=8)
    dl = loader(store, ts, columns=["img"], batch_size=25, seed=1, transform=decode, num_workers=2)
    plain = loader(store, ts, columns=["img"], batch_size=25, seed=1, transform=decode)
    got = [(b["key"].tolist(), b["n_bytes"].tolist()) for b in dl]
    want = [(b["key"].tolist(), b["n_bytes"].tolist()) for b in plain]
    assert got == want
    ref = reference_rows(store, np.concatenate([np.array(k) for k, _ in got]), ["img"])
    assert sum((n for _, n in got), []) == [len(b) for b in ref["img"]]
    second = [b["key"].tolist() for b in dl]  # the same workers serve the next epoch
    assert sorted(sum(second, [])) == sorted(ts.keys.tolist()) and second != [k for k, _ in got]


def test_invalid_arguments(store) -> None:
    ts = _selection(store, 10)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        loader(store, ts, columns=["x"], batch_size=0)
    with pytest.raises(InvalidArgumentError, match="rank"):
        loader(store, ts, columns=["x"], batch_size=4, rank=2, world_size=2)
    with pytest.raises(InvalidArgumentError, match="columns"):
        loader(store, ts, columns=["nope"], batch_size=4)
    with pytest.raises(InvalidArgumentError, match="device"):
        loader(store, ts, columns=["x"], batch_size=4, device="cuda:0" if not torch.cuda.is_available() else "bogus")



def test_an_empty_set_of_a_store_without_samples_says_so_not_that_keys_were_erased(tmp_path) -> None:
    empty = Store.open(str(tmp_path / "empty"), create=True)
    with pytest.raises(DataUnavailableError, match="no samples") as info:
        loader(empty, TrainSet.uniform(np.array([], np.int64), version=0), columns=["x"], batch_size=2)
    assert not isinstance(info.value, ErasedKeysError)
    with pytest.raises(ErasedKeysError):  # keys to name: they are not there
        loader(empty, TrainSet.uniform(np.array([1]), version=0), columns=["x"], batch_size=2)


@pytest.mark.parametrize("device", ["meta", "mps", "xla", "cuda:99"])
def test_devices_training_cannot_use_are_refused(device: str) -> None:
    # torch.device parses each; training then failed later (autocast, a missing backend, an index)
    from training.loading import check_device

    with pytest.raises(InvalidArgumentError, match="device"):
        check_device(device)


def test_streamed_path_matches_cpu_path(store) -> None:
    """The pinned double-buffer path (run here with a CPU target) serves the same batches."""
    ts = _selection(store, 250, seed=6)
    dl = loader(store, ts, columns=["x", "text"], batch_size=40, seed=9)
    ref = [_as_lists(b) for b in dl]
    dl2 = loader(store, ts, columns=["x", "text"], batch_size=40, seed=9)
    streamed = [_as_lists(b) for b in dl2._batches_streamed(dl2._pos2row[dl2.order(0)])]
    assert streamed == ref


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), world=st.integers(1, 7), seed=st.integers(0, 2**31), epoch=st.integers(0, 5),
       shuffle=st.booleans())
def test_epoch_order_shards_are_a_partition(n: int, world: int, seed: int, epoch: int, shuffle: bool) -> None:
    ts = TrainSet.uniform(np.arange(100, 100 + n), version=1)
    shards = [epoch_order(ts, epoch, shuffle=shuffle, seed=seed, rank=r, world_size=world) for r in range(world)]
    allpos = np.concatenate(shards)
    assert sorted(allpos.tolist()) == list(range(n))
    assert max(s.size for s in shards) - min(s.size for s in shards) <= 1
    full = epoch_order(ts, epoch, shuffle=shuffle, seed=seed)
    assert all(np.array_equal(shards[r], full[r::world]) for r in range(world))
    if not shuffle:
        assert full.tolist() == list(range(n))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rank": 2, "world_size": 2}, "rank"),  # would wrap around to rank 0's shard
        ({"rank": -1, "world_size": 2}, "rank"),
        ({"world_size": 0}, "world_size"),  # would give every position
        ({"world_size": -2}, "world_size"),
        ({"rank": 1.0, "world_size": 2}, "rank"),
        ({"seed": 1.5}, "seed"),
        ({"seed": -1}, "seed"),
        ({"shuffle": "no"}, "shuffle"),  # truthy: would shuffle
        ({"shuffle": None}, "shuffle"),
        ({"epoch": 1.7}, "epoch"),  # would be epoch 1's order
    ],
)
def test_epoch_order_refuses_what_the_loader_refuses(kwargs: dict, name: str) -> None:
    ts = TrainSet.uniform(np.arange(10), version=1)
    args = {"shuffle": True, "seed": 0, **kwargs}
    epoch = args.pop("epoch", 1)
    with pytest.raises(InvalidArgumentError) as info:
        epoch_order(ts, epoch, **args)
    assert info.value.name == name
    assert epoch_order(ts, np.int64(1), shuffle=True, seed=np.uint64(0), rank=np.int32(1), world_size=2).size == 5


@pytest.mark.gpu
@pytest.mark.parametrize("run_bytes", [None, 3000])
@pytest.mark.parametrize("budget", [None, 0])
def test_cuda_batches_equal_cpu_batches(store, budget, run_bytes, monkeypatch) -> None:
    """Device-resident (budget None) and streamed (budget 0) CUDA paths serve the CPU batches,
    with the whole epoch gathered as one run (default) or as runs of a few batches."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if run_bytes is not None:
        monkeypatch.setattr(transfer, "RUN_BYTES", run_bytes)
    ts = _selection(store, 500, seed=12)
    cpu = [_as_lists(b) for b in loader(store, ts, columns=["x", "label", "text"], batch_size=64, seed=3)]
    dl = loader(store, ts, columns=["x", "label", "text"], batch_size=64, seed=3, device="cuda",
                options=LoaderOptions(device_memory_budget=budget))
    assert dl.on_device == (budget is None)
    got = []
    for b in dl:
        assert b["x"].is_cuda and b["key"].is_cuda
        got.append(_as_lists(b))
    assert got == cpu


def _thread_name(batch: dict) -> dict:
    batch["thread"] = threading.current_thread().name
    return batch


def test_prefetch_gathers_in_a_background_thread_with_the_same_batches(store) -> None:
    """``prefetch=0`` (default) gathers each batch in the iterating thread; ``prefetch > 0`` in a
    background thread; the batches are the same."""
    ts = _selection(store, 300, seed=6)
    served = {}
    for p in (0, 2):
        dl = loader(store, ts, columns=["x", "img"], batch_size=64, seed=4, transform=_thread_name,
                    options=LoaderOptions(prefetch=p))
        served[p] = [list(dl) for _ in range(2)]
    assert LoaderOptions().prefetch == 0
    main = threading.current_thread().name
    assert {b["thread"] for e in served[0] for b in e} == {main}
    assert main not in {b["thread"] for e in served[2] for b in e}
    for e0, e2 in zip(served[0], served[2], strict=True):
        for a, b in zip(e0, e2, strict=True):
            assert list(a) == list(b) == ["key", "weight", "x", "img", "thread"]
            for n in ("key", "weight", "x"):
                assert torch.equal(a[n], b[n])
            assert a["img"] == b["img"]


class _Unreadable(Exception):
    """What a transform below returns for a batch it cannot decode (a value, not a failure)."""


def _as_error_value(batch: dict) -> object:
    return _Unreadable(batch["key"].tolist())


def _failing(batch: dict) -> dict:
    raise _Unreadable("a real failure")


def test_prefetch_serves_an_exception_a_transform_returns_and_raises_the_ones_it_raises(store) -> None:
    """The background thread hands its failures over in a type of their own: an exception
    instance returned as a batch is served as one (it was raised), a raised one still raises."""
    ts = _selection(store, 100, seed=2)
    opts = LoaderOptions(prefetch=2)
    served = list(loader(store, ts, columns=["x"], batch_size=40, shuffle=False, transform=_as_error_value,
                         options=opts))
    assert [type(b) for b in served] == [_Unreadable] * 3
    assert sum((b.args[0] for b in served), []) == ts.keys.tolist()
    with pytest.raises(_Unreadable, match="a real failure"):
        list(loader(store, ts, columns=["x"], batch_size=40, transform=_failing, options=opts))


def test_fixed_size_binary_is_served_as_uint8_tensors_as_documented(tmp_path) -> None:
    """``fixed_size_binary(w)`` columns are fixed (uint8 ``[B, w]``), other binary columns lists
    of ``bytes``: docs/training.md said every binary column was a list of ``bytes``."""
    from pathlib import Path

    import pyarrow as pa

    s = Store.open(str(tmp_path / "fsb"), create=True)
    s.append(pa.table({"ts": np.arange(3), "h": pa.array([b"ab", b"cd", b"ef"], pa.binary(2)),
                       "b": pa.array([b"x", b"", b"yz"], pa.binary())}))
    ts = TrainSet.uniform(s.as_of(None).keys(), version=s.version)
    batch = next(iter(loader(s, ts, columns=["h", "b"], batch_size=3, shuffle=False)))
    assert batch["h"].dtype == torch.uint8 and batch["h"].tolist() == [[97, 98], [99, 100], [101, 102]]
    assert batch["b"] == [b"x", b"", b"yz"]
    doc = " ".join((Path(__file__).parents[2] / "docs" / "training.md").read_text().split())
    assert "`fixed_size_binary(w)` columns are fixed too, as uint8 tensors `[B, w]`" in doc
    assert "variable-length binary columns (`binary`, `large_binary`, `binary_view`) as lists of `bytes`" in doc


def test_the_epoch_set_of_a_plan_with_repeats_serves_that_epoch(store) -> None:
    keys = store.as_of(None).keys()[:5]
    ts = TrainSet(keys=keys, weights=np.arange(1.0, 6.0), version=store.version, per_epoch=(np.array([4, 1, 4, 4]),))
    served = [b for b in loader(store, ts.epoch_set(0), columns=["ts"], batch_size=10, shuffle=False)]
    got = sorted(zip(served[0]["key"].tolist(), served[0]["weight"].tolist()))
    assert got == sorted(zip(keys[[4, 1, 4, 4]].tolist(), [5.0, 2.0, 5.0, 5.0]))
