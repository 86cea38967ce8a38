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

import numpy as np

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet

__all__ = ["FIRST_EPOCH_BLOCK", "epoch_order"]

#: Epoch 0 is shuffled block by block: blocks of this many positions in ascending key order,
#: each permuted (see the module docstring), so that it can be served while it is materialized.
FIRST_EPOCH_BLOCK = 16384


def _inverse(ranks: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The positions of ``keys`` in ascending key order, from each key's rank ``ranks``; raises
    unless they are exactly that (a wrong rank would give another order silently)."""
    ranks = np.asarray(ranks)
    n = keys.size
    if ranks.shape != (n,) or not np.issubdtype(ranks.dtype, np.integer) or (n and not 0 <= ranks.min() <= ranks.max() < n):
        raise InvalidArgumentError("key_ranks", f"shape {ranks.shape}, {ranks.dtype}", f"{n} integer ranks in [0, {n})")
    ranked = np.full(n, -1, np.int64)
    ranked[ranks] = np.arange(n, dtype=np.int64)
    if (ranked < 0).any() or not bool(np.all(np.diff(keys[ranked]) > 0)):
        raise InvalidArgumentError("key_ranks", "not the ranks of the keys", "the rank of each key among them (0: smallest)")
    return ranked


def _blockwise(
    pos: np.ndarray, keys: np.ndarray, rng: np.random.Generator, *, distinct: bool, ranks: np.ndarray | None = None
) -> np.ndarray:
    """``pos`` cut into blocks of :data:`FIRST_EPOCH_BLOCK` by ascending key, each block (its
    positions in their order in ``pos``) permuted by ``rng``, blocks in key order.

    ``distinct``: no position occurs twice in ``pos``, so the keys are distinct and any sort
    ranks them as the stable one does (ties between equal keys go by their order in ``pos``).
    ``ranks``: with ``pos`` every position in order, the rank of each key among them (its
    inverse is the sort, so none is needed).
    """
    n = pos.size
    b = FIRST_EPOCH_BLOCK
    if ranks is not None:
        ranked = _inverse(ranks, keys[pos])
    else:
        ranked = np.argsort(keys[pos], kind="quicksort" if distinct else "stable")
    # block j holds the indices ranked[j * b:(j + 1) * b], taken in their order in ``pos``
    full = n // b
    within = np.empty(n, np.int64)
    within[: full * b] = np.sort(ranked[: full * b].reshape(full, b), axis=1).ravel()
    within[full * b :] = np.sort(ranked[full * b :])
    grouped = pos[within]
    out = np.empty_like(grouped)
    for lo in range(0, n, FIRST_EPOCH_BLOCK):
        block = grouped[lo : lo + FIRST_EPOCH_BLOCK]
        out[lo : lo + block.size] = block[rng.permutation(block.size)]
    return out


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
    """Positions into ``train_set.keys`` visited by ``rank`` in ``epoch`` (see the module docstring).

    ``key_ranks``: the rank of each of ``train_set.keys`` among them (0 for the smallest), when
    the caller knows it already; it spares epoch 0 a sort, and the order is the same.
    """
    plain = train_set.per_epoch is None and epoch >= 0  # every position (for_epoch checks epoch)
    if shuffle and plain and not (epoch == 0 and train_set.size > FIRST_EPOCH_BLOCK):
        rng = np.random.default_rng([int(seed), int(epoch)])
        pos = rng.permutation(train_set.size)  # the same as arange(n)[permutation(n)], two passes fewer
    else:
        pos = train_set.for_epoch(epoch)
        if shuffle:
            rng = np.random.default_rng([int(seed), int(epoch)])
            if epoch == 0 and pos.size > FIRST_EPOCH_BLOCK:
                plain_ranks = key_ranks if train_set.per_epoch is None else None  # pos: every position
                pos = _blockwise(pos, train_set.keys, rng, distinct=train_set.per_epoch is None, ranks=plain_ranks)
            else:
                pos = pos[rng.permutation(pos.size)]
    if world_size > 1:
        pos = pos[rank::world_size]
    return np.ascontiguousarray(pos, dtype=np.int64)
