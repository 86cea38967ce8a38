"""Serve epochs of a materialized train set: shuffled, sharded, batched, on CPU or GPU.

:func:`loader` materializes the train set once (see :mod:`training.materialize` and
:mod:`training.cache`) and returns a :class:`Loader`, an iterable over batches. Iterating it
serves one epoch and moves on to the next, so ``for epoch in range(n): for batch in dl: ...``
sees a fresh order every epoch.

The order of every epoch is :func:`training.order.epoch_order` (seeded; epoch 0 shuffled block
by block in key order, see there), split across ranks.

A loader that has to build its cache entry serves its first epoch (on CPU, without worker
processes, fixed-size columns only) from the entry being filled, each batch as soon as its rows
have landed; errors of the read are raised by the iteration, those of publishing the entry
by the next epoch (or :meth:`Loader.wait_materialized`).

The cache entry holds the rows in storage order, keyed by the *set* of keys (train sets with
the same keys share it, whatever their order or weights); the loader maps train-set positions
to entry rows once, so a batch is one gather.

A batch is a dict: ``"key"`` (int64), ``"weight"`` (float32, the train set's per-sample
weights) and one entry per column: a tensor for fixed columns, a list of ``bytes`` (binary) or
``str`` (strings) for variable-length ones. On a CUDA device the fixed columns are copied to the
device once when they fit ``device_memory_budget`` and batches are gathered there; otherwise
rows are gathered into pinned host buffers (two, used in turn) and copied asynchronously while
the previous ones are in use; both a run of batches at a time (:mod:`training.transfer`).

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.core.trainset import TrainSet
>>> from training.loading import loader
>>> store = Store.open("memory://loader-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(6), "x": np.arange(6) * 10}))
>>> ts = TrainSet.uniform(np.array([5, 1, 3]), version=store.version)
>>> dl = loader(store, ts, columns=["x"], batch_size=2, shuffle=False)
>>> [b["x"].tolist() for b in dl]
[[50, 10], [30]]
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from modyn_store.core._validate import check_bool
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training import order as orders
from training.batch import Batch
from training.entries import LoaderOptions, materialize_entry, selection_digest, start_entry
from training.epochs import Loader, check_int
from training.order import FIRST_EPOCH_BLOCK, epoch_order

__all__ = [
    "FIRST_EPOCH_BLOCK",
    "Loader",
    "LoaderOptions",
    "check_device",
    "check_weights",
    "epoch_order",
    "loader",
    "materialize_entry",
    "selection_digest",
]


def check_device(device: Any) -> torch.device:
    """``device`` as a torch device: a device this machine has (``InvalidArgumentError`` naming
    ``device`` otherwise).

    >>> check_device("cpu")
    device(type='cpu')
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgumentError("device", device, "a torch device such as 'cpu' or 'cuda:0'") from exc
    if dev.type not in ("cpu", "cuda"):
        # torch parses 'meta', 'mps', 'xla', ... but training and evaluation run on CPU or CUDA only
        raise InvalidArgumentError("device", device, "'cpu' or 'cuda' ('cuda:<index>')")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device", device, "'cpu' (no CUDA device is available)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidArgumentError("device", device, f"'cpu' or 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}' "
                                                     f"(this machine has {torch.cuda.device_count()} CUDA devices)")
    return dev


def check_weights(train_set: TrainSet) -> None:
    """Batches hold float32 weights: every weight of ``train_set`` must stay finite and > 0 as
    one (``InvalidArgumentError`` naming ``train_set.weights`` otherwise). A float64 weight
    below about 7e-46 would be served as 0 (its row would silently count for nothing), one above
    about 3.4e38 as inf.

    >>> check_weights(TrainSet(np.arange(2), np.array([1e-30, 1e30]), version=1))
    """
    w = train_set.weights
    if not w.size:
        return
    with np.errstate(over="ignore", under="ignore"):  # the cast is monotonic: the extremes decide
        ok = float(np.float32(w.min())) > 0 and bool(np.isfinite(np.float32(w.max())))
        if ok:
            return
        w32 = w.astype(np.float32)
    bad = ~(np.isfinite(w32) & (w32 > 0))
    raise InvalidArgumentError(
        "train_set.weights", f"{int(bad.sum())} weights such as {np.unique(w[bad])[:3].tolist()}",
        "weights that stay finite and > 0 in float32, about 1e-45 .. 3.4e38 (batches hold float32 "
        "weights): rescale them")


def loader(
    store: Any,
    train_set: TrainSet,
    *,
    columns: Sequence[str],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    transform: Callable[[Batch], Batch] | None = None,
    num_workers: int = 0,
    options: LoaderOptions | None = None,
) -> Loader:
    """Materialize ``train_set`` once and return a :class:`Loader` over its batches.

    Parameters
    ----------
    store:
        A :class:`modyn_store.Store`.
    train_set:
        The keys (with weights and optional per-epoch plans) to serve; all must be live at
        ``train_set.version``.
    columns:
        Sample columns to serve (numbers, fixed-size tensors, binary, strings).
    batch_size:
        Rows per batch (the last batch may be smaller unless ``drop_last``).
    shuffle, seed:
        A seeded permutation that changes every epoch (see the module docstring).
    device:
        ``"cpu"`` or a CUDA device.
    rank, world_size:
        DDP-style sharding: disjoint shards that together cover every row once per epoch.
    transform:
        ``transform(batch) -> batch``, run in ``num_workers`` worker processes when > 0.
    options:
        :class:`LoaderOptions` (read strategy, cache bound, device budget, prefetch).

    Raises
    ------
    ErasedKeysError
        Keys of the train set are no longer live (erased, deleted or purged).

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from modyn_store import Store
    >>> from modyn_store.core.trainset import TrainSet
    >>> store = Store.open("memory://loader-fn-doc", create=True)
    >>> _ = store.append(pa.table({"ts": np.arange(4), "y": np.arange(4)}))
    >>> dl = loader(store, TrainSet.uniform(np.arange(4), version=1), columns=["y"], batch_size=4, seed=1)
    >>> sorted(next(iter(dl))["y"].tolist())
    [0, 1, 2, 3]
    """
    if not isinstance(train_set, TrainSet):
        raise InvalidArgumentError("train_set", type(train_set).__name__, "a modyn_store.core.trainset.TrainSet")
    if train_set.per_epoch_weights is not None:
        raise InvalidArgumentError(
            "train_set", "a set whose epochs weigh keys differently (per_epoch_weights)",
            "a set with one weight per key: serve each epoch's own set, train_set.epoch_set(epoch)")
    check_weights(train_set)
    batch_size = check_int("batch_size", batch_size, 1)
    world_size = check_int("world_size", world_size, 1)
    rank = check_int("rank", rank, 0)
    if rank >= world_size:
        raise InvalidArgumentError("rank", rank, f"an integer in [0, {world_size})")
    seed = check_int("seed", seed, 0)
    num_workers = check_int("num_workers", num_workers, 0)
    if transform is not None and not callable(transform):
        raise InvalidArgumentError("transform", transform, "a callable taking and returning a batch dict")
    if num_workers and transform is None:
        raise InvalidArgumentError("num_workers", num_workers, "0 unless a transform is given")
    if num_workers:
        # worker processes receive the transform pickled when the first epoch starts them: a
        # lambda or a local function would fail there with pickle's own error
        try:
            pickle.dumps(transform)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise InvalidArgumentError(
                "transform", transform,
                f"a picklable callable with num_workers > 0 (a module-level function or a callable "
                f"object; {exc}), or num_workers=0") from exc
    dev = check_device(device)
    opts = options if options is not None else LoaderOptions()
    if not isinstance(opts, LoaderOptions):
        raise InvalidArgumentError("options", opts, "a LoaderOptions")
    if not isinstance(columns, (list, tuple)):  # a string is not split into one-letter columns
        raise InvalidArgumentError("columns", columns, "a list of column names, e.g. ['x', 'label']")
    cols = list(columns)
    reserved = [c for c in cols if c in ("weight",)]
    if reserved:
        raise InvalidArgumentError("columns", reserved, "sample columns other than the reserved 'weight'")
    # the rows of the first epoch's first block (in key order) are read before the others
    entry = start_entry(store, train_set, cols, opts, head_rows=orders.FIRST_EPOCH_BLOCK)
    return Loader(
        store,
        train_set,
        entry,
        columns=cols,
        batch_size=batch_size,
        shuffle=check_bool("shuffle", shuffle),
        seed=seed,
        device=dev,
        rank=rank,
        world_size=world_size,
        drop_last=check_bool("drop_last", drop_last),
        transform=transform,
        num_workers=num_workers,
        options=opts,
    )
