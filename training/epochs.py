"""The :class:`Loader`: epochs of one materialized train set, served batch by batch.

:func:`training.loading.loader` validates its arguments, starts (or finds) the cache entry and
returns a :class:`Loader`; the module docstring of :mod:`training.loading` describes what the
batches hold, how epochs are ordered and sharded, and how a loader serves its first epoch while
its cache entry is still being filled. This module holds the serving itself: positions mapped to
entry rows, batches gathered on the host or the device, worker processes, the live check before
each epoch.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.core.trainset import TrainSet
>>> from training.loading import loader
>>> store = Store.open("memory://epochs-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(4), "x": np.arange(4)}))
>>> dl = loader(store, TrainSet.uniform(np.arange(4), version=1), columns=["x"], batch_size=2, seed=3)
>>> isinstance(dl, Loader), len(dl), sorted(np.concatenate([b["x"].numpy() for b in dl]).tolist())
(True, 2, [0, 1, 2, 3])
>>> with dl:  # closed at the end of the block: its workers stop, later epochs are refused
...     batches = sum(1 for _ in dl)
>>> next(iter(dl))
Traceback (most recent call last):
...
modyn_store.core.errors.ClosedError: this loader was closed: make a new one (training.loading.loader)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from modyn_store.core._keyscan import increasing
from modyn_store.core.errors import ClosedError, InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training import order as orders
from training.batch import Batch, gather_host
from training.building import Building
from training.cache import CacheEntry, cache_for
from training.entries import LoaderOptions, live_check, materialize_entry
from training.errors import ErasedKeysError
from training.materialize import KeyLookup
from training._pieces import rebatched, skipped
from training.order import Ordering, RowsAhead
from training.prefetch import host_budget, prefetched
from training.transfer import resident_batches, streamed_batches

__all__ = ["Loader", "check_int"]


def check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise InvalidArgumentError(name, value, f"an integer >= {lo}")
    return int(value)


class Loader:
    """Batches of one materialized train set, epoch after epoch (see :func:`loader`)."""

    def __init__(
        self,
        store: Any,
        train_set: TrainSet,
        entry: CacheEntry | Building,
        *,
        columns: Sequence[str],
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: torch.device,
        rank: int,
        world_size: int,
        drop_last: bool,
        transform: Callable[[Batch], Batch] | None,
        num_workers: int,
        options: LoaderOptions,
    ) -> None:
        self.store = store
        self.train_set = train_set
        self.columns = list(columns)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = device
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.transform = transform
        self.num_workers = num_workers
        self.options = options
        self.epoch = 0
        self._resume = (0, 0)  # (epoch, batches to skip) from set_epoch: applies to that epoch only
        self._pool: Any = None
        self._checked_version = store.version
        self._served = False
        self._building: Building | None = None
        self._host: dict[str, torch.Tensor] = {}
        self._dev: dict[str, torch.Tensor] | None = None
        self._copy_pending = False
        self._key_ranks: np.ndarray | None = None
        self._pos2row: np.ndarray | None = None
        self._ahead: RowsAhead | None = None
        self._closed = False
        if isinstance(entry, Building):
            # positions are mapped to rows when first needed: the first block of a streamed
            # first epoch finds its rows by a search instead (see _stream_rows)
            self._building = entry
            self._stream_keys = torch.from_numpy(np.ascontiguousarray(entry.keys))
        else:
            self._bind_opened(entry)

    def _bind_opened(self, entry: CacheEntry) -> None:
        """:meth:`_bind` an entry opened from the cache. The train set's keys were checked live
        and the entry is named by their set, so an entry whose rows lack some of them is damaged
        (``rows.npy`` changed in place): it is removed and built again, rather than reported as
        erased keys on every open."""
        try:
            self._bind(entry)
        except ErasedKeysError:
            if entry.path is None:
                raise
            cache_for(self.store, max_bytes=self.options.max_cache_bytes).discard(entry.name)
            self._bind(materialize_entry(self.store, self.train_set, self.columns, self.options))

    @property
    def _entry(self) -> CacheEntry:
        """The cache entry (waits for its build to finish)."""
        if self._building is not None:
            self._finish_build()
        return self._entry_obj

    def _finish_build(self) -> None:
        assert self._building is not None
        entry, staged = self._building.result()
        self._building = None
        same = np.array_equal(np.asarray(entry.keys), self._stream_keys.numpy())
        self._bind(entry, mapped=same)
        if staged is not None and self._dev is None and self._copy_pending and same:
            # the build filled process memory: serve from it (the copy the loader would make)
            self._host = {n: torch.from_numpy(a) for n, a in staged.items() if n in self._host}
            self._keys = self._stream_keys
            self._copy_pending = False

    def _mapped(self) -> np.ndarray:
        """``_pos2row``, mapped from the rows being built if it has not been yet."""
        if self._pos2row is None:
            self._set_positions(self._stream_keys.numpy())
        assert self._pos2row is not None
        return self._pos2row

    def _set_positions(self, row_keys: np.ndarray) -> None:
        """``_pos2row`` (train position -> row of ``row_keys``) and the weights in row order."""
        pos2row = KeyLookup(row_keys)(self.train_set.keys)
        if pos2row.size and pos2row.min() < 0:
            raise ErasedKeysError("cache entry", self.train_set.keys[pos2row < 0])
        self._pos2row = pos2row
        # rows in key order (an append-only store): a position's row is its key's rank
        self._key_ranks = pos2row if increasing(row_keys) else None
        weights = np.empty(pos2row.size, dtype=np.float32)
        weights[pos2row] = self.train_set.weights
        self._weights = torch.from_numpy(weights)
        # one weight for every row (bit for bit, e.g. a uniform train set): shuffled batches
        # fill it instead of gathering it
        bits = weights.view(np.uint32)
        self._weight_fill = float(weights[0]) if bits.size and not (bits != bits[0]).any() else None

    def _bind(self, entry: CacheEntry, *, mapped: bool = False) -> None:
        """Serve from ``entry``: rows are in storage order, ``_pos2row`` maps train positions to
        rows (``mapped``: already, from the same rows being built)."""
        self._entry_obj = entry
        if not (mapped and self._pos2row is not None):
            self._set_positions(np.asarray(entry.keys))
        self._keys = torch.from_numpy(np.asarray(entry.keys))
        self._host = {n: torch.from_numpy(np.asarray(a)) for n, a in entry.fixed.items()}
        self._dev = None
        if self.device.type == "cuda":
            budget = self.options.device_memory_budget
            if budget is None:
                free, _ = torch.cuda.mem_get_info(self.device)
                budget = free // 2
            need = sum(t.nbytes for t in self._host.values()) + self._keys.nbytes + self._weights.nbytes
            if need <= budget:
                tag = str(self.device)
                copies = entry.device_copies.get(tag)
                if copies is None:
                    copies = {n: t.to(self.device) for n, t in self._host.items()}
                    copies["__key__"] = self._keys.to(self.device)
                    entry.device_copies[tag] = copies
                self._dev = dict(copies)
                self._dev["__weight__"] = self._weights.to(self.device)
        need = sum(t.nbytes for t in self._host.values()) + self._keys.nbytes
        # copied on the second epoch: the first one reads the mapping anyway (no copy delays the
        # first batch), later ones gather from anonymous memory
        self._copy_pending = (
            self._dev is None and bool(self._host) and need <= host_budget(self.options.host_memory_budget)
        )

    def _copy_to_memory(self) -> None:
        """Serve from process memory instead of the file mapping: random row gathers from
        anonymous memory avoid the mapping's page walks. The copy is allocated by NumPy, which
        asks the kernel for transparent huge pages on large arrays (torch's allocator does
        not): fewer TLB misses per random row (5-10% faster gathers measured)."""
        self._host = {n: torch.from_numpy(np.array(t.numpy())) for n, t in self._host.items()}
        self._keys = torch.from_numpy(np.array(self._keys.numpy()))
        self._copy_pending = False

    def wait_materialized(self) -> None:
        """Wait until the train set is materialized and published in the store's cache (a
        loader that builds it does so in the background while it serves its first epoch);
        raises the build's error, if any."""
        if self._building is not None:
            self._finish_build()

    def fixed_rows(self, column: str) -> np.ndarray | None:
        """Every row of the fixed-width ``column`` of the train set, in the entry's order (2-D
        for a vector column; waits until the train set is materialized); ``None`` for a
        variable-length or unknown column."""
        a = self._entry.fixed.get(column)
        return None if a is None else np.asarray(a)

    @property
    def on_device(self) -> bool:
        """True when the train set is held in device memory and batches are gathered there."""
        if self._building is not None and self.device.type != "cpu":
            self._finish_build()  # decided when the entry is bound (no streaming on devices)
        return self._dev is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the materialized rows (fixed and variable-length columns)."""
        return self._entry.nbytes

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Serve ``epoch`` on the next iteration, from its batch ``start_batch`` on: exactly the
        batches ``start_batch, start_batch + 1, ...`` of an uninterrupted ``epoch`` on this rank
        (same rows, order and weights), without gathering or transforming the skipped ones.
        ``start_batch`` is in ``[0, num_batches(epoch)]``; ``num_batches(epoch)`` serves no batch
        (the epoch was done). It applies to the next iteration only; the epochs after it start
        at their first batch (an iteration that raises before it starts serving the epoch keeps
        the offset). Each rank passes its own offset. ``InvalidArgumentError`` naming
        the argument otherwise (the loader is left as it was)."""
        e = check_int("epoch", epoch, 0)
        n = self.num_batches(e)
        if isinstance(start_batch, bool) or not isinstance(start_batch, (int, np.integer)) \
                or not 0 <= start_batch <= n:
            raise InvalidArgumentError(
                "start_batch", start_batch,
                f"an integer in [0, {n}] (epoch {e} has {n} batches on rank {self.rank}; {n}: none left)")
        self.epoch, self._resume = e, (e, int(start_batch))

    @property
    def start_batch(self) -> int:
        """The batch the next iteration starts at: ``set_epoch``'s offset while the loader is at
        that epoch (0 once another epoch is set or the loader moved on)."""
        e, b = self._resume
        return b if e == self.epoch else 0

    def order(self, epoch: int | None = None) -> np.ndarray:
        """Positions into ``train_set.keys`` this rank visits in ``epoch`` (default: the next one)."""
        e = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        self._mapped()
        return self._ordering.order(self.train_set, e, self._key_ranks)

    @property
    def _ordering(self) -> Ordering:
        return Ordering(self.shuffle, self.seed, self.rank, self.world_size)

    def _ranks(self) -> np.ndarray | None:
        self._mapped()
        return self._key_ranks

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        stop = n - n % self.batch_size if self.drop_last else n
        return [(s, min(s + self.batch_size, n)) for s in range(0, stop, self.batch_size)]

    def num_batches(self, epoch: int | None = None) -> int:
        """Batches of all of ``epoch`` (default: the next one) on this rank (counted, not
        ordered: no epoch is computed)."""
        e = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        n = len(range(self.rank, self.train_set.for_epoch(e).size, self.world_size))
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __len__(self) -> int:
        """Batches the next iteration serves on this rank: those of its epoch from
        ``start_batch`` on (see :meth:`set_epoch`)."""
        return self.num_batches() - self.start_batch

    # -- building batches ---------------------------------------------------------------
    def _host_batch(self, idx: np.ndarray, contiguous: bool) -> Batch:
        """Gather rows ``idx`` of the entry from host memory."""
        return gather_host(self._entry, self._keys, self._weights, self._host, idx, self.columns, contiguous)

    def _batches_cpu(self, rows: np.ndarray, sequential: bool) -> Iterator[Batch]:
        if sequential:
            for s, e in self._bounds(rows.size):
                r = rows[s:e]
                contiguous = bool(r[-1] - r[0] == r.size - 1) and bool(np.all(np.diff(r) == 1))
                b = self._host_batch(r, contiguous)
                yield self.transform(b) if self.transform is not None else b
            return
        # shuffled: one index per batch gathers every fixed column; the sources and the batch
        # layout are resolved once per epoch, not per batch
        entry = self._entry
        # a float: every row's weight, filled instead of gathered
        fill = self._weight_fill
        fixed: list[tuple[str, torch.Tensor | float]] = [("key", self._keys), ("weight", self._weights if fill is None else fill)]
        fixed += [(n, self._host[n]) for n in self.columns if n in self._host]
        var = [(n, entry.var[n], entry.specs[n].kind == "string") for n in self.columns if n in entry.var]
        names = ["key", "weight", *self.columns]
        transform = self.transform
        index = torch.from_numpy(rows)
        for s, e in self._bounds(rows.size):
            ti = index[s:e]
            batch: Batch = {
                n: t.index_select(0, ti) if isinstance(t, torch.Tensor) else torch.full((e - s,), t, dtype=torch.float32)
                for n, t in fixed
            }
            if var:
                for n, col, text in var:
                    batch[n] = col.rows(rows[s:e], text=text)
                batch = {n: batch[n] for n in names}
            yield transform(batch) if transform is not None else batch

    def _spare_core(self) -> bool:
        """Whether the next epoch's order may be drawn in a background thread: batches served on
        a device leave the host's cores to it; on the CPU only when torch's gathers leave a core
        free (sharing one slowed the gathers more than the order cost, measured on 2 cores)."""
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
        return self.device.type != "cpu" or torch.get_num_threads() < cores

    def _var_rows(self, name: str, rows: np.ndarray) -> Any:
        return self._entry.var[name].rows(rows, text=self._entry.specs[name].kind == "string")

    def _batches_device(self, order: np.ndarray) -> Iterator[Batch]:
        assert self._dev is not None
        gen = resident_batches(self._dev, order, self._bounds(order.size), self.columns, device=self.device,
                               var_rows=self._var_rows)
        return gen if self.transform is None else map(self.transform, gen)

    def _batches_streamed(self, order: np.ndarray) -> Iterator[Batch]:
        """Host gather of entry rows ``order`` into pinned buffers, copied asynchronously."""
        pin = self.options.pin_memory if self.options.pin_memory is not None else True
        src = {"__key__": self._keys, "__weight__": self._weights, **self._host}
        gen = streamed_batches(src, order, self._bounds(order.size), self.columns, device=self.device,
                               pin=pin, var_rows=self._var_rows)
        return gen if self.transform is None else map(self.transform, gen)

    def _ensure_alive(self) -> None:
        if not self._entry.alive():
            # removed by an erasure or eviction: rebuild (raises if keys were erased)
            self._bind_opened(materialize_entry(self.store, self.train_set, self.columns, self.options))
            self._checked_version = self.store.version
        elif self._entry.path is None and self.store.version != self._checked_version:
            # entries held only in memory are invisible to the store's erase: check again
            try:
                live_check(self.store, self.train_set)
            except ErasedKeysError:
                cache_for(self.store, max_bytes=self.options.max_cache_bytes).discard(self._entry.name)
                raise
            self._checked_version = self.store.version

    def _may_stream(self) -> bool:
        """What :meth:`_streams` asks without waiting: the loader's first epoch, on CPU, no workers."""
        return self._building is not None and not self._served and self.num_workers == 0 and self.device.type == "cpu"

    def _streams(self) -> bool:
        """True when this epoch, the loader's first, can be served from the entry being built."""
        b = self._building
        if b is None or not self._may_stream() or not b.wait_streaming():
            return False
        return all(c in b.fixed for c in self.columns)

    def _stream_rows(self, positions: np.ndarray, search: bool) -> np.ndarray:
        """Entry rows of train ``positions``: with ``search`` (the entry's rows in key order, an
        append-only store), found by a binary search of their keys, so that the first block is
        served before every position is mapped; otherwise through the mapping."""
        if not search or self._pos2row is not None:
            return self._mapped()[positions]
        row_keys = self._stream_keys.numpy()
        keys = self.train_set.keys[positions]
        rows = np.minimum(np.searchsorted(row_keys, keys), max(row_keys.size - 1, 0))
        if keys.size and not np.array_equal(row_keys[rows], keys):
            raise ErasedKeysError("cache entry", keys[row_keys[rows] != keys])
        return rows

    def _batches_building(self, pieces: Iterable[np.ndarray], served: int = 0) -> Iterator[Batch]:
        """Batches of the train positions in ``pieces`` (the epoch's order, piece by piece,
        after its first ``served`` positions) from the entry being built, each once its rows
        landed."""
        b = self._building
        assert b is not None
        host = {n: torch.from_numpy(b.fixed[n]) for n in self.columns}
        # gathered by NumPy, on this thread alone: the reading threads hold the other cores, and
        # a gather split over intra-op threads waited for descheduled ones (up to 3x slower);
        # keys and weights by train position, the columns by entry row
        keys = self.train_set.keys
        weights = np.asarray(self.train_set.weights, dtype=np.float32)
        in_key_order = increasing(self._stream_keys.numpy())
        sequential = not self.shuffle and self.world_size == 1
        for q in rebatched(pieces, self.batch_size, self.drop_last):
            r = self._stream_rows(q, in_key_order and served < orders.FIRST_EPOCH_BLOCK)
            served += q.size
            b.wait_rows(r)
            batch: Batch = {"key": torch.from_numpy(keys[q]), "weight": torch.from_numpy(weights[q])}
            if sequential and bool(r[-1] - r[0] == r.size - 1) and bool(np.all(np.diff(r) == 1)):
                lo, hi = int(r[0]), int(r[-1]) + 1  # a copy: the entry's files are written from these rows
                batch.update({n: host[n][lo:hi].clone() for n in self.columns})
            else:
                batch.update({n: torch.from_numpy(np.take(b.fixed[n], r, axis=0)) for n in self.columns})
            yield self.transform(batch) if self.transform is not None else batch

    def close(self) -> None:
        """Stop the loader's worker processes (an epoch still being iterated keeps them until it
        ends or is dropped) and the drawing of the next epoch's order ahead. The cache entry's
        files stay for other loaders; the loader's copies of the rows go with the object. Epochs
        started afterwards raise :class:`~modyn_store.core.errors.ClosedError`; ``with
        loader(...) as dl:`` closes at the end of the block."""
        self._closed = True
        pool, self._pool, self._ahead = self._pool, None, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Generator[Batch, None, None]:
        if self._closed:
            raise ClosedError("this loader was closed: make a new one (training.loading.loader)")
        # positions of the skipped batches (set_epoch's start_batch, for this epoch only: spent
        # where the loader moves past it, so an iteration that fails before keeps it)
        skip = self.start_batch * self.batch_size
        pieces = None
        if self._may_stream():
            # the first block is selected while the build sets up its files (_streams waits)
            pieces = self._ordering.pieces(self.train_set, self.epoch, self._ranks)
        if self._streams():
            assert pieces is not None
            self.epoch, self._resume = self.epoch + 1, (-1, 0)
            self._served = True
            gen = self._batches_building(skipped(pieces, skip) if skip else pieces, skip)
            if self.options.prefetch <= 0:
                yield from gen
            else:
                yield from prefetched(gen, self.options.prefetch)
            # every row has been read and checked; the entry's files are written and published
            # in the background (the next epoch and wait_materialized() wait for that)
            return
        if self._building is not None:
            self._finish_build()
        self._ensure_alive()
        if self._copy_pending and self._served:
            self._copy_to_memory()
        self._served = True
        epoch = self.epoch
        self.epoch, self._resume = epoch + 1, (-1, 0)
        # rows of the entry, in the epoch's order of positions; the next epoch's meanwhile
        ordering, rows, ranks = self._ordering, self._mapped(), self._key_ranks
        ahead, self._ahead = self._ahead, None
        order = ahead.take(ordering, self.train_set, epoch, rows, ranks) if ahead is not None else None
        if order is None:
            order = ordering.rows(self.train_set, epoch, rows, ranks)
        if self.shuffle and self._spare_core():
            self._ahead = RowsAhead(ordering, self.train_set, epoch + 1, rows, ranks)
        # batches start at multiples of batch_size: the tail from one is the epoch's last batches
        order = order[skip:] if skip else order
        if self.num_workers > 0:
            from training.workers import worker_batches

            yield from worker_batches(self, order)
            return
        sequential = not self.shuffle and self.world_size == 1 and order.size > 0
        if self._dev is not None:
            gen = self._batches_device(order)
        elif self.device.type == "cpu":
            gen = self._batches_cpu(order, sequential)
        else:
            gen = self._batches_streamed(order)
        if self.options.prefetch <= 0 or self.device.type == "cuda":
            yield from gen
        else:
            yield from prefetched(gen, self.options.prefetch)

    def __repr__(self) -> str:
        return (
            f"Loader(rows={self.train_set.size}, columns={self.columns}, batch_size={self.batch_size}, "
            f"device={self.device}, rank={self.rank}/{self.world_size}, epoch={self.epoch})"
        )
