"""The order in which a loader visits a train set, epoch by epoch: :func:`epoch_order`.

Order of an epoch ``e`` (on every rank, then split):

1. ``positions = train_set.for_epoch(e)`` (all keys, or the epoch's plan);
2. with ``shuffle``: ``positions[rng.permutation(len(positions))]`` with
   ``rng = np.random.default_rng([seed, e])``; except in epoch 0 when there are more than
   :data:`FIRST_EPOCH_BLOCK` positions: they are cut into blocks of that many by ascending key,
   and each block (its positions in their order) is permuted in turn by the same ``rng``, the
   blocks in key order. Epoch 0 can then be served while the train set is materialized (rows
   land in storage order, which is key order in an append-only store);
3. rank ``r`` of ``world_size`` takes ``positions[r::world_size]`` (shards are disjoint and
   together complete; their sizes differ by at most one);
4. consecutive runs of ``batch_size`` positions form the batches.

Example
-------
>>> import numpy as np
>>> from modyn_store.core.trainset import TrainSet
>>> from training.order import epoch_order
>>> ts = TrainSet.uniform(np.arange(10, 20), version=1)
>>> sorted(epoch_order(ts, 0, shuffle=True, seed=3).tolist()) == list(range(10))
True
>>> epoch_order(ts, 1, shuffle=False, seed=3, rank=1, world_size=2).tolist()
[1, 3, 5, 7, 9]
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from engine._search import numba_loaded
from modyn_store.core._validate import check_bool, check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet

__all__ = ["FIRST_EPOCH_BLOCK", "Ordering", "RowsAhead", "epoch_order"]

#: The keys' ranks for epoch 0 (see :class:`Ordering`), or a function that returns them.
Ranks = np.ndarray | Callable[[], np.ndarray | None] | None

#: Epoch 0 is shuffled block by block: blocks of this many positions in ascending key order,
#: each permuted (see the module docstring), so that it can be served while it is materialized.
FIRST_EPOCH_BLOCK = 16384


def _rank_blocks(ranks: np.ndarray, keys: np.ndarray, dtype: type) -> np.ndarray:
    """Every position in order, grouped by block (``ranks // FIRST_EPOCH_BLOCK``), each block's
    positions ascending; raises unless ``ranks`` puts exactly the right keys in each block (a
    wrong block would give another order silently; ranks wrong only within a block give the
    same order)."""
    n = keys.size
    b = FIRST_EPOCH_BLOCK
    ranks = np.asarray(ranks)
    valid = ranks.shape == (n,) and ranks.dtype.kind in "iu"
    if not valid or (n and not 0 <= ranks.min() <= ranks.max() < n):
        raise InvalidArgumentError("key_ranks", f"shape {ranks.shape}, {ranks.dtype}", f"{n} integer ranks in [0, {n})")
    blk: np.ndarray = (ranks // b).astype(dtype)
    within = np.argsort(blk, kind="stable")
    blocks = -(-n // b)
    sizes = np.full(blocks, b, np.int64)
    sizes[-1] = n - (blocks - 1) * b
    grouped_keys = keys[within]
    starts = np.arange(0, n, b)
    # each block holds as many keys as it should, all below the next block's: exactly its keys
    ok = np.array_equal(np.bincount(blk, minlength=blocks), sizes) and bool(
        np.all(np.maximum.reduceat(grouped_keys, starts)[:-1] < np.minimum.reduceat(grouped_keys, starts)[1:])
    )
    if not ok:
        raise InvalidArgumentError("key_ranks", "not the ranks of the keys", "the rank of each key among them (0: smallest)")
    return within


def _grouped(pos: np.ndarray, keys: np.ndarray, *, distinct: bool, ranks: np.ndarray | None = None) -> np.ndarray:
    """``pos`` grouped into blocks of :data:`FIRST_EPOCH_BLOCK` by ascending key, blocks in key
    order, each block's positions in their order in ``pos``.

    ``distinct``: no position occurs twice in ``pos``, so the keys are distinct and any sort
    ranks them as the stable one does (ties between equal keys go by their order in ``pos``).
    ``ranks``: with ``pos`` every position in order, the rank of each key among them (then no
    sort of the keys is needed).
    """
    n = pos.size
    # a stable sort of 16-bit block numbers is a radix sort: linear, no comparisons
    dtype = np.uint16 if -(-n // FIRST_EPOCH_BLOCK) <= 1 << 16 else np.int64
    if ranks is not None:
        return _rank_blocks(ranks, keys, dtype)  # pos is every position in order: its own index
    ranked = np.argsort(keys[pos], kind="quicksort" if distinct else "stable")
    blk: np.ndarray = np.empty(n, dtype)
    blk[ranked] = np.arange(n, dtype=np.int64) // FIRST_EPOCH_BLOCK
    return pos[np.argsort(blk, kind="stable")]


def _first_block(pos: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The positions of ``pos`` that hold its :data:`FIRST_EPOCH_BLOCK` smallest keys (ties by
    their order in ``pos``), in their order in ``pos``: one selection, no sort of every key."""
    kp = keys[pos]
    b = FIRST_EPOCH_BLOCK
    kth = np.partition(kp, b - 1)[b - 1]
    below = np.flatnonzero(kp < kth)
    ties = np.flatnonzero(kp == kth)[: b - below.size]
    return pos[np.sort(np.concatenate([below, ties]))]


def _shuffled_blocks(
    pos: np.ndarray, keys: np.ndarray, rng: np.random.Generator, *, distinct: bool, ranks: Ranks
) -> Iterator[np.ndarray]:
    """``pos`` cut into blocks of :data:`FIRST_EPOCH_BLOCK` by ascending key, each block (its
    positions in their order in ``pos``) permuted by ``rng``, blocks in key order.

    The first block is found by a selection, now; the others are grouped (and ``ranks``
    called) only when the second block is asked for.
    """
    first = _first_block(pos, keys)
    first = first[rng.permutation(first.size)]

    def blocks() -> Iterator[np.ndarray]:
        yield first
        grouped = _grouped(pos, keys, distinct=distinct, ranks=ranks() if callable(ranks) else ranks)
        for lo in range(FIRST_EPOCH_BLOCK, grouped.size, FIRST_EPOCH_BLOCK):
            block = grouped[lo : lo + FIRST_EPOCH_BLOCK]
            yield block[rng.permutation(block.size)]

    return blocks()


def _shard(pieces: Iterator[np.ndarray], rank: int, world_size: int) -> Iterator[np.ndarray]:
    """``concatenate(pieces)[rank::world_size]``, piece by piece."""
    offset = 0
    for p in pieces:
        yield p[(rank - offset) % world_size :: world_size] if world_size > 1 else p
        offset += p.size


def _one_permutation(train_set: TrainSet, epoch: int, shuffle: bool) -> bool:
    """Whether ``epoch`` is one permutation of every position (no plan, not cut into blocks)."""
    plain = train_set.per_epoch is None and epoch >= 0  # every position (for_epoch checks epoch)
    return shuffle and plain and not (epoch == 0 and train_set.size > FIRST_EPOCH_BLOCK)


def _permutation(seed: list[int], x: np.ndarray | int) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(x)``: the same array, drawn by the kernel of
    :mod:`engine._shuffle` (about 2x faster) where the process has loaded Numba already (a
    pipeline, a policy), else by NumPy, so that a loader never waits for Numba's import."""
    if numba_loaded():
        from engine._shuffle import permutation

        return permutation(seed, x)
    return np.random.default_rng(seed).permutation(x)  # type: ignore[no-any-return]


@functools.cache
def _shuffles_like_a_range() -> bool:
    """Whether ``Generator.permutation(x)`` is ``x[permutation(len(x))]`` for the same stream
    (the same swaps whatever the values: true of NumPy's Fisher-Yates), checked once."""
    x = np.arange(1000, 2000, dtype=np.int64)
    return bool(np.array_equal(np.random.default_rng(7).permutation(x), x[np.random.default_rng(7).permutation(x.size)]))


@dataclass(frozen=True)
class Ordering:
    """How epochs are ordered: shuffled or not, with which seed, and the shard of ``rank`` of
    ``world_size`` (see the module docstring). ``key_ranks``: the rank of each of
    ``train_set.keys`` among them (0 for the smallest), when the caller knows it already; it
    spares epoch 0 a sort, and the order is the same (:meth:`pieces` also takes a function that
    returns them, or None).

    Example
    -------
    >>> ts = TrainSet.uniform(np.arange(10, 20), version=1)
    >>> Ordering(shuffle=False, seed=0, rank=1, world_size=2).order(ts, 1).tolist()
    [1, 3, 5, 7, 9]
    """

    shuffle: bool
    seed: int
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        # checked here, as the loader checks them: a rank outside the world would wrap around to
        # another rank's shard, a world size below 1 give every position, a float seed another order
        object.__setattr__(self, "shuffle", check_bool("shuffle", self.shuffle))
        object.__setattr__(self, "seed", check_int("seed", self.seed, lo=0))
        world_size = check_int("world_size", self.world_size, lo=1)
        object.__setattr__(self, "world_size", world_size)
        object.__setattr__(self, "rank", check_int("rank", self.rank, lo=0, hi=world_size - 1))

    def pieces(self, train_set: TrainSet, epoch: int, key_ranks: Ranks = None) -> Iterator[np.ndarray]:
        """:meth:`order` in consecutive pieces (their concatenation is the same array).

        The first epoch's first block comes first, found by a selection of its keys when this
        is called; the other blocks are grouped when the second piece is asked for
        (``key_ranks`` called then, if it is a function), then permuted one at a time, so that
        a loader serves its first block without ranking every key first.
        """
        epoch = check_int("epoch", epoch, lo=0)  # (a float epoch is not truncated to another's order)
        if _one_permutation(train_set, epoch, self.shuffle):
            # the same as arange(n)[permutation(n)], two passes fewer
            pieces = iter([_permutation([int(self.seed), int(epoch)], train_set.size)])
        else:
            pos = train_set.for_epoch(epoch)
            if not self.shuffle:
                pieces = iter([pos])
            else:
                rng = np.random.default_rng([int(self.seed), int(epoch)])
                if epoch == 0 and pos.size > FIRST_EPOCH_BLOCK:
                    plain_ranks = key_ranks if train_set.per_epoch is None else None  # pos: every position
                    distinct = train_set.per_epoch is None
                    pieces = _shuffled_blocks(pos, train_set.keys, rng, distinct=distinct, ranks=plain_ranks)
                else:
                    pieces = iter([pos[rng.permutation(pos.size)]])
        return (np.ascontiguousarray(p, dtype=np.int64) for p in _shard(pieces, self.rank, self.world_size))

    def order(self, train_set: TrainSet, epoch: int, key_ranks: np.ndarray | None = None) -> np.ndarray:
        """Positions into ``train_set.keys`` visited in ``epoch``."""
        pieces = list(self.pieces(train_set, epoch, key_ranks))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def rows(
        self, train_set: TrainSet, epoch: int, rows: np.ndarray, key_ranks: np.ndarray | None = None
    ) -> np.ndarray:
        """``rows[order(...)]``: the epoch's order mapped through ``rows`` (one integer per
        position, e.g. the row of a cache entry that holds it).

        Where the epoch is one permutation of every position, the permutation shuffles ``rows``
        itself: the same result without a gather of random positions (NumPy shuffles an array
        by the same swaps as a range; checked once per process, else the gather is used).
        """
        epoch = check_int("epoch", epoch, lo=0)
        rows = np.asarray(rows)
        if rows.shape != (train_set.size,) or rows.dtype.kind not in "iu":
            raise InvalidArgumentError("rows", f"shape {rows.shape}, {rows.dtype}", f"{train_set.size} integers")
        if _one_permutation(train_set, epoch, self.shuffle) and _shuffles_like_a_range():
            out = _permutation([int(self.seed), int(epoch)], rows.astype(np.int64, copy=False))
            return np.ascontiguousarray(out[self.rank :: self.world_size] if self.world_size > 1 else out)
        return np.ascontiguousarray(rows[self.order(train_set, epoch, key_ranks)], dtype=np.int64)


def epoch_order(
    train_set: TrainSet,
    epoch: int,
    *,
    shuffle: bool,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    key_ranks: np.ndarray | None = None,
) -> np.ndarray:
    """Positions into ``train_set.keys`` visited by ``rank`` in ``epoch`` (see the module
    docstring and :class:`Ordering`, which this calls)."""
    return Ordering(shuffle, seed, rank, world_size).order(train_set, epoch, key_ranks)


class RowsAhead:
    """:meth:`Ordering.rows` of one epoch, computed in a background thread (NumPy shuffles
    without holding the GIL) while the epoch before it is served: a shuffle of millions of
    positions takes tens of milliseconds, which a warm epoch served from memory would otherwise
    wait for before its first batch.

    :meth:`take` returns the rows only for the same ordering, epoch and the very same arrays
    (train set, rows, key ranks) they were computed from, else None; an error in the thread is
    raised there.

    Example
    -------
    >>> ts = TrainSet.uniform(np.arange(10, 20), version=1)
    >>> o, rows = Ordering(shuffle=True, seed=1, rank=0, world_size=1), np.arange(10)
    >>> ahead = RowsAhead(o, ts, 2, rows)
    >>> np.array_equal(ahead.take(o, ts, 2, rows), o.rows(ts, 2, rows)), ahead.take(o, ts, 3, rows)
    (True, None)
    """

    def __init__(self, ordering: Ordering, train_set: TrainSet, epoch: int, rows: np.ndarray,
                 key_ranks: np.ndarray | None = None) -> None:
        self._of = (ordering, epoch)
        self._arrays = (train_set, rows, key_ranks)
        self._out: np.ndarray | None = None
        self._err: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="epoch-rows-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ordering, epoch = self._of
        train_set, rows, key_ranks = self._arrays
        try:
            self._out = ordering.rows(train_set, epoch, rows, key_ranks)
        except BaseException as e:  # raised by take() in the caller's thread
            self._err = e

    def take(self, ordering: Ordering, train_set: TrainSet, epoch: int, rows: np.ndarray,
             key_ranks: np.ndarray | None = None) -> np.ndarray | None:
        """The rows computed ahead, if they are those asked for (waits for the thread)."""
        if self._of != (ordering, epoch) or any(a is not b for a, b in zip(self._arrays, (train_set, rows, key_ranks))):
            return None
        self._thread.join()
        if self._err is not None:
            raise self._err
        return self._out
