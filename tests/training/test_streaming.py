"""The first epoch served while the train set is materialized, and its block-wise order."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest
import torch

import training.entries as entries
import training.materialize
import training.order
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.rows import RowReader
from modyn_store.core.trainset import TrainSet
from tests.training.conftest import reference_rows
from training.cache import cache_for
from training.building import Building
from training.epochs import Loader
from training.errors import ErasedKeysError
from training.loading import LoaderOptions, epoch_order, loader, selection_digest

BLOCK = 100


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training.order, "FIRST_EPOCH_BLOCK", BLOCK)


def _train_set(store, n: int, seed: int = 0) -> TrainSet:
    rng = np.random.default_rng(seed)
    keys = rng.choice(store.as_of(None).keys(), n, replace=False)
    return TrainSet(keys=keys, weights=rng.uniform(0.5, 2.0, n), version=store.version)


def test_first_epoch_is_shuffled_block_by_block_in_key_order(store, small_blocks) -> None:
    ts = _train_set(store, 730, seed=1)
    order = epoch_order(ts, 0, shuffle=True, seed=4)
    assert np.array_equal(np.sort(order), np.arange(ts.size))
    ranked = np.sort(ts.keys)
    for lo in range(0, ts.size, BLOCK):  # each block holds the next BLOCK keys, shuffled
        block = ts.keys[order[lo : lo + BLOCK]]
        assert np.array_equal(np.sort(block), ranked[lo : lo + BLOCK])
        assert not np.array_equal(block, np.sort(block))
    assert np.array_equal(order, epoch_order(ts, 0, shuffle=True, seed=4))
    assert not np.array_equal(order, epoch_order(ts, 0, shuffle=True, seed=5))
    # later epochs: one permutation of all positions; small sets: the same in epoch 0
    plain = np.random.default_rng([4, 1]).permutation(ts.size)
    assert np.array_equal(epoch_order(ts, 1, shuffle=True, seed=4), plain)
    small = _train_set(store, BLOCK, seed=2)
    assert np.array_equal(epoch_order(small, 0, shuffle=True, seed=4), np.random.default_rng([4, 0]).permutation(BLOCK))
    assert np.array_equal(epoch_order(ts, 0, shuffle=False, seed=4), np.arange(ts.size))


def _reference_epoch0(ts: TrainSet, seed: int) -> np.ndarray:
    """The documented epoch-0 order, written plainly: rank by key (stable), blocks of BLOCK
    ranks, each block's positions in their order in ``for_epoch(0)``, permuted in turn."""
    pos = ts.for_epoch(0)
    rng = np.random.default_rng([seed, 0])
    rank = np.empty(pos.size, np.int64)
    rank[np.argsort(ts.keys[pos], kind="stable")] = np.arange(pos.size)
    out = []
    for lo in range(0, pos.size, BLOCK):
        block = pos[(rank >= lo) & (rank < lo + BLOCK)]
        out.append(block[rng.permutation(block.size)])
    return np.concatenate(out)


@pytest.mark.parametrize("n", [101, 300, 731])
def test_first_epoch_order_equals_the_plain_reference(store, small_blocks, n: int) -> None:
    rng = np.random.default_rng(n)
    keys = rng.choice(10**6, n, replace=False)
    plain = TrainSet(keys=keys, weights=np.ones(n), version=1)
    plans = (rng.integers(0, n, 2 * n), rng.permutation(n)[: n // 2])  # repeats: equal keys
    planned = TrainSet(keys=keys, weights=np.ones(n), version=1, per_epoch=plans)
    ranks = np.empty(n, np.int64)
    ranks[np.argsort(keys)] = np.arange(n)
    for ts in (plain, planned):
        for seed in (0, 9):
            assert np.array_equal(epoch_order(ts, 0, shuffle=True, seed=seed), _reference_epoch0(ts, seed))
            # the keys' ranks, when the caller has them, give the same order without a sort
            given = epoch_order(ts, 0, shuffle=True, seed=seed, key_ranks=ranks)
            assert np.array_equal(given, _reference_epoch0(ts, seed))
    # ranks that are not the keys' ones raise: they would give another order silently
    for bad in (ranks[::-1], ranks[:-1], np.zeros(n, np.int64), ranks + 1, ranks.astype(float)):
        with pytest.raises(InvalidArgumentError, match="key_ranks"):
            epoch_order(plain, 0, shuffle=True, seed=0, key_ranks=bad)


@pytest.mark.parametrize("fused", [True, False])
def test_ordering_rows_are_the_order_mapped_through_rows(small_blocks, monkeypatch, fused: bool) -> None:
    """``Ordering.rows`` is ``rows[epoch_order(...)]`` for every kind of epoch; where the epoch is
    one permutation it shuffles ``rows`` itself (the same swaps), else (or where NumPy would
    shuffle otherwise) it gathers."""
    if not fused:
        monkeypatch.setattr(training.order, "_shuffles_like_a_range", lambda: False)
    rng = np.random.default_rng(11)
    n = 731
    keys = rng.choice(10**6, n, replace=False)
    rows = rng.permutation(n) + 5
    plain = TrainSet(keys=keys, weights=np.ones(n), version=1)
    planned = TrainSet(keys=keys, weights=np.ones(n), version=1, per_epoch=(rng.integers(0, n, 900),))
    for ts in (plain, planned):
        for epoch, shuffle, world in [(0, True, 1), (1, True, 1), (2, True, 3), (1, False, 2), (3, True, 2)]:
            for rank in range(world):
                how = training.order.Ordering(shuffle, 4, rank, world)
                got = how.rows(ts, epoch, rows)
                want = rows[epoch_order(ts, epoch, shuffle=shuffle, seed=4, rank=rank, world_size=world)]
                assert got.dtype == np.int64 and np.array_equal(got, want)
    with pytest.raises(InvalidArgumentError, match="rows"):
        training.order.Ordering(True, 0).rows(plain, 1, rows[:-1])


def test_a_loader_over_rows_in_key_order_orders_epoch_0_without_sorting(store, small_blocks, monkeypatch) -> None:
    """Rows of an append-only store land in key order: a row is its key's rank, so the first
    epoch's blocks need no sort of the keys (the same order as from the keys alone); the only
    sort is the linear one of 16-bit block numbers."""
    ts = _train_set(store, 730, seed=6)
    dl = loader(store, ts, columns=["x"], batch_size=64, seed=2)
    want = epoch_order(ts, 0, shuffle=True, seed=2)
    sorts: list[np.dtype] = []
    real = np.argsort
    with monkeypatch.context() as m:
        m.setattr(np, "argsort", lambda a, *args, **kw: sorts.append(a.dtype) or real(a, *args, **kw))
        got = dl.order(0)
    assert np.array_equal(got, want) and sorts == [np.dtype(np.uint16)]
    assert [int(k) for b in dl for k in b["key"]] == ts.keys[want].tolist()


def test_the_first_batch_needs_no_position_map_and_no_key_sort(store, small_blocks, monkeypatch) -> None:
    """A loader that builds its entry serves the first block before it maps every position to
    a row or ranks every key (the block is a selection, its rows a binary search); it maps them
    once, when the second block is asked for, and not again when the entry is published."""
    ts = _train_set(store, 730, seed=4)
    mapped: list[int] = []
    sorted_sizes: list[int] = []
    real_map, real_argsort, real_sort = Loader._set_positions, np.argsort, np.sort

    def argsort(a, *args, **kw):  # type: ignore[no-untyped-def]
        sorted_sizes.append(np.size(a))
        return real_argsort(a, *args, **kw)

    def sort(a, *args, **kw):  # type: ignore[no-untyped-def]
        sorted_sizes.append(np.size(a))
        return real_sort(a, *args, **kw)

    monkeypatch.setattr(Loader, "_set_positions", lambda self, rows: mapped.append(rows.size) or real_map(self, rows))
    calls: list[str] = []  # the first block is selected before the loader waits for the build
    real_select, real_wait = training.order._first_block, Building.wait_streaming
    monkeypatch.setattr(training.order, "_first_block", lambda *a: calls.append("select") or real_select(*a))
    monkeypatch.setattr(Building, "wait_streaming", lambda self: calls.append("wait") or real_wait(self))
    dl = loader(store, ts, columns=["x"], batch_size=50, seed=5, options=LoaderOptions(strategy="take", threads=2))
    it = iter(dl)
    with monkeypatch.context() as m:
        m.setattr(np, "argsort", argsort)
        m.setattr(np, "sort", sort)
        first = next(it)
    assert mapped == [] and max(sorted_sizes, default=0) < ts.size
    assert calls == ["select", "wait"]
    batches = [first, *it]
    assert mapped == [ts.size]
    want = ts.keys[epoch_order(ts, 0, shuffle=True, seed=5)]
    assert np.array_equal(torch.cat([b["key"] for b in batches]).numpy(), want)
    ref = reference_rows(store, want, ["x"])
    np.testing.assert_array_equal(torch.cat([b["x"] for b in batches]).numpy(), np.array(ref["x"], np.float32))
    dl.wait_materialized()
    assert mapped == [ts.size]


def test_a_streamed_epoch_over_rows_out_of_key_order(tmp_path, small_blocks) -> None:
    """Rows stored in descending key order: the first block's rows come through the position
    map (a search needs rows in key order); batches still follow the documented order."""
    from modyn_store import Store
    from tests.training.conftest import sample_table

    t = sample_table(600, seed=4)
    s = Store.open(str(tmp_path / "reversed"), create=True)
    s.append(t.take(pa.array(np.arange(599, -1, -1))))
    ts = _train_set(s, 450, seed=2)
    dl = loader(s, ts, columns=["x"], batch_size=40, seed=1, options=LoaderOptions(strategy="take", threads=2))
    assert dl._building is not None and not np.all(np.diff(dl._building.keys) > 0)
    got = [b for b in dl]
    want = ts.keys[epoch_order(ts, 0, shuffle=True, seed=1)]
    assert np.array_equal(torch.cat([b["key"] for b in got]).numpy(), want)
    np.testing.assert_array_equal(torch.cat([b["weight"] for b in got]).numpy(),
                                  ts.weights[epoch_order(ts, 0, shuffle=True, seed=1)].astype(np.float32))
    ref = reference_rows(s, want, ["x"])
    np.testing.assert_array_equal(torch.cat([b["x"] for b in got]).numpy(), np.array(ref["x"], np.float32))


def _gate_second_fragment(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> list[int]:
    """Reads of every fragment but the first wait for ``release`` (at most 60 s)."""
    original = RowReader.scan
    first: list[int] = []

    def gated(self, fragment, row_ids, columns, *, batch_size=1 << 16):
        if not first:
            first.append(int(fragment))
        if int(fragment) != first[0]:
            release.wait(60)
        return original(self, fragment, row_ids, columns, batch_size=batch_size)

    monkeypatch.setattr(RowReader, "scan", gated)
    return first


@pytest.mark.parametrize("prefetch", [0, 2])
def test_first_batches_are_served_before_the_build_ends(store, small_blocks, monkeypatch, prefetch) -> None:
    ts = _train_set(store, 700, seed=3)
    lo = np.sort(ts.keys)[:BLOCK]
    assert lo.max() < 1200  # the first block lies in the first fragment (keys 0-1199)
    release = threading.Event()
    _gate_second_fragment(monkeypatch, release)
    opts = LoaderOptions(strategy="scan", threads=2, prefetch=prefetch)
    dl = loader(store, ts, columns=["ts", "x"], batch_size=50, seed=7, options=opts)
    it = iter(dl)
    first = next(it)
    assert dl._building is not None and not dl._building.done  # served while building
    release.set()
    batches = [first, *it]
    dl.wait_materialized()  # published in the background after the last batch
    assert dl._building is None
    order = epoch_order(ts, 0, shuffle=True, seed=7)
    ref = reference_rows(store, ts.keys[order], ["ts", "x"])
    assert torch.cat([b["key"] for b in batches]).tolist() == ref["key"]
    assert torch.cat([b["ts"] for b in batches]).tolist() == ref["ts"]
    np.testing.assert_array_equal(torch.cat([b["x"] for b in batches]).numpy(), np.array(ref["x"], np.float32))
    np.testing.assert_array_equal(torch.cat([b["weight"] for b in batches]).numpy(),
                                  ts.weights[order].astype(np.float32))
    # the next epoch comes from the published entry, in the same order as a warm loader's
    warm = loader(store, ts, columns=["ts", "x"], batch_size=50, seed=7, options=opts)
    assert warm._entry is dl._entry
    warm.set_epoch(1)
    assert [b["key"].tolist() for b in dl] == [b["key"].tolist() for b in warm]


def test_takes_land_in_storage_order_and_serve_the_first_batches(store, small_blocks, monkeypatch) -> None:
    """Takes of ``TAKE_FIRST`` rows and more, read in storage order: the first block is served once the
    first take has landed, while the others wait."""
    monkeypatch.setattr(training.materialize, "TAKE_FIRST", BLOCK)
    monkeypatch.setattr(training.materialize, "TAKE_CHUNK", 2 * BLOCK)
    ts = _train_set(store, 700, seed=8)
    release = threading.Event()
    original = RowReader.take
    rid0 = int(store.as_of(None).row_reader().locate(ts.keys)[0].min())  # the first take's first row
    taken: list[int] = []

    def gated(self, row_ids, columns):
        taken.append(int(row_ids[0]))
        if int(row_ids[0]) != rid0:
            release.wait(60)
        return original(self, row_ids, columns)

    monkeypatch.setattr(RowReader, "take", gated)
    dl = loader(store, ts, columns=["ts", "x"], batch_size=50, seed=3, options=LoaderOptions(strategy="take", threads=2))
    it = iter(dl)
    head = [next(it), next(it)]  # the first block: the first take's rows
    assert dl._building is not None and not dl._building.done and len(dl._building.keys) == 700
    assert rid0 in taken and len(taken) < 4  # served before the later takes were read
    release.set()
    batches = [*head, *it]
    order = epoch_order(ts, 0, shuffle=True, seed=3)
    ref = reference_rows(store, ts.keys[order], ["ts", "x"])
    assert torch.cat([b["key"] for b in batches]).tolist() == ref["key"]
    np.testing.assert_array_equal(torch.cat([b["x"] for b in batches]).numpy(), np.array(ref["x"], np.float32))
    dl.wait_materialized()


def test_streamed_shards_match_the_global_order(store, small_blocks) -> None:
    ts = _train_set(store, 640, seed=5)
    world = 2
    for rank in range(world):
        cache_for(store).discard(selection_digest(ts.version, ts.keys, ["x"]))
        dl = loader(store, ts, columns=["x"], batch_size=32, seed=2, rank=rank, world_size=world)
        streamed = dl._building is not None
        got = np.concatenate([b["key"].numpy() for b in dl])
        assert streamed
        want = ts.keys[epoch_order(ts, 0, shuffle=True, seed=2)][rank::world]
        assert np.array_equal(got, want)


def test_a_failed_build_is_raised_by_the_first_epoch(store, small_blocks, monkeypatch) -> None:
    ts = _train_set(store, 500, seed=6)
    original = RowReader.scan

    def broken(self, fragment, row_ids, columns, *, batch_size=1 << 16):
        if int(fragment) != 0:
            raise OSError("disk gone")
        return original(self, fragment, row_ids, columns, batch_size=batch_size)

    monkeypatch.setattr(RowReader, "scan", broken)
    dl = loader(store, ts, columns=["x"], batch_size=50, seed=1, options=LoaderOptions(strategy="scan"))
    with pytest.raises(OSError, match="disk gone"):
        list(dl)
    with pytest.raises(OSError, match="disk gone"):  # and again by the next epoch
        list(dl)
    assert cache_for(store).entries() == []


def test_an_erasure_during_the_build_is_raised_by_the_next_epoch(store, small_blocks, monkeypatch) -> None:
    ts = _train_set(store, 500, seed=6)
    victim = int(np.sort(ts.keys)[0])  # in the first fragment (keys 0-1199)
    original = entries.materialize

    def erasing(*args, **kwargs):
        out = original(*args, **kwargs)
        store.erase([victim], reason="test")  # commits after the read, before the entry is published
        return out

    monkeypatch.setattr(entries, "materialize", erasing)
    dl = loader(store, ts, columns=["x"], batch_size=50, seed=1, options=LoaderOptions(strategy="scan", threads=1))
    served = np.concatenate([b["key"].numpy() for b in dl])  # checked live when the loader was made
    assert np.array_equal(np.sort(served), np.sort(ts.keys))
    with pytest.raises(ErasedKeysError) as info:
        list(dl)
    assert victim in info.value.keys.tolist()
    assert cache_for(store).entries() == []


def test_unshuffled_first_epoch_streams_copies_in_train_set_order(store, monkeypatch) -> None:
    keys = store.as_of(None).keys()[100:1700]  # ascending: storage order, over both fragments
    ts = TrainSet.uniform(keys, version=store.version)
    release = threading.Event()
    _gate_second_fragment(monkeypatch, release)
    dl = loader(store, ts, columns=["x"], batch_size=100, shuffle=False,
                options=LoaderOptions(strategy="scan", threads=2, prefetch=0))
    it = iter(dl)
    first = next(it)
    assert dl._building is not None and not dl._building.done
    assert not np.shares_memory(first["x"].numpy(), dl._building.fixed["x"])  # its files are written from these
    release.set()
    got = torch.cat([first["x"], *[b["x"] for b in it]]).numpy()
    np.testing.assert_array_equal(got, np.array(reference_rows(store, keys, ["x"])["x"], np.float32))


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_threads_scans_fragments_at_once_or_in_turn(store, monkeypatch, threads) -> None:
    """``LoaderOptions.threads``: fragments scanned at once when > 1, else (and by default for
    masked scans) one after the other in storage order."""
    original = RowReader.scan
    started = threading.Event()
    overlapped: list[bool] = []

    def scan(self, fragment, row_ids, columns, *, batch_size=1 << 16):
        if int(fragment) == 0:
            overlapped.append(started.wait(5))  # does the other fragment's scan start meanwhile?
        else:
            started.set()
        return original(self, fragment, row_ids, columns, batch_size=batch_size)

    monkeypatch.setattr(RowReader, "scan", scan)
    ts = _train_set(store, 600, seed=9)
    dl = loader(store, ts, columns=["x"], batch_size=100, options=LoaderOptions(strategy="scan", threads=threads))
    assert sorted(np.concatenate([b["key"].numpy() for b in dl]).tolist()) == sorted(ts.keys.tolist())
    assert overlapped == [threads == 2]
