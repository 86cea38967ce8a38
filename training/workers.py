"""Run CPU-heavy batch transforms (e.g. image decoding) in worker processes.

Workers start with ``forkserver`` (Lance is not fork-safe), open the cache entry from disk
(memory-mapped; entries held only in memory are sent to them once), and stay alive across
epochs: the main process sends each batch's row positions, the workers gather and transform
the rows, and the batches arrive in epoch order. The transform must be picklable (a
module-level function or a callable object).

Example
-------
>>> from training.workers import WorkerPool
>>> WorkerPool.__name__
'WorkerPool'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from training.batch import Batch, gather_host
from training._cache_files import CacheEntry, _read_entry
from training.errors import CacheError

if TYPE_CHECKING:
    from training.epochs import Loader

__all__ = ["WorkerPool", "worker_batches"]


class _Rows(Dataset):  # type: ignore[type-arg]
    """A gathered, transformed batch of entry rows (evaluated inside a worker)."""

    def __init__(
        self, entry: CacheEntry, weights: np.ndarray, columns: list[str], transform: Callable[[Batch], Batch]
    ) -> None:
        self.entry = entry
        self.weights = weights
        self.columns = columns
        self.transform = transform
        self._tensors: tuple[Any, Any, Any] | None = None
        self._digest: bytes | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tensors"] = None
        if self.entry.path is not None:  # reopened from disk in the worker
            if self._digest is None:  # (once for all workers)
                self._digest = _rows_digest(self.entry.keys)
            state["entry"] = (self.entry.name, self.entry.path, self._digest)
        return state

    def __len__(self) -> int:
        return int(self._opened().keys.size)

    def _opened(self) -> CacheEntry:
        """The entry, opened from disk on first use in a worker. Another process may have
        evicted or erased it and built it again since the loader opened it, its rows perhaps in
        another order (storage order after a compaction): the loader's row positions and
        weights would then pick other rows, so a folder whose rows are not the loader's is
        refused (``CacheError``), never served. The files are read as one build (see
        :func:`training._cache_files._read_entry`): a rebuild landing between the opens of two
        column files is caught and the entry opened again, never combined."""
        if isinstance(self.entry, tuple):
            name, path, digest = self.entry
            entry = _read_entry(name, path)
            if _rows_digest(entry.keys) != digest:
                raise CacheError(
                    f"cache entry {path!r} was built again since the loader opened it (evicted or erased "
                    "meanwhile): its rows are not the ones the loader serves; iterate the loader again")
            self.entry = entry
        return self.entry

    def __getitem__(self, idx: np.ndarray) -> Batch:
        self._opened()
        if self._tensors is None:
            self._tensors = (
                torch.from_numpy(np.asarray(self.entry.keys)),
                torch.from_numpy(self.weights),
                {n: torch.from_numpy(np.asarray(a)) for n, a in self.entry.fixed.items()},
            )
        keys, weights, host = self._tensors
        batch = gather_host(self.entry, keys, weights, host, idx, self.columns, contiguous=False)
        return self.transform(batch)


def _rows_digest(keys: np.ndarray) -> bytes:
    """A digest of an entry's row keys (in row order): what the loader's row positions mean."""
    h = hashlib.blake2b(digest_size=16)
    k = np.asarray(keys, dtype=np.int64)
    for lo in range(0, k.size, 1 << 20):  # (bounded copies)
        h.update(k[lo : lo + (1 << 20)].tobytes())
    return h.digest()


class _EpochSampler(Sampler):  # type: ignore[type-arg]
    """Yields the entry rows of each batch of the current epoch."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _identity(x: Any) -> Any:
    return x


class WorkerPool:
    """Persistent worker processes gathering and transforming the batches of one loader."""

    def __init__(self, owner: Loader) -> None:
        assert owner.transform is not None
        self.sampler = _EpochSampler()
        rows = _Rows(owner._entry, owner._weights.numpy(), owner.columns, owner.transform)
        self.dataloader = DataLoader(
            rows,
            batch_size=None,
            sampler=self.sampler,
            num_workers=owner.num_workers,
            collate_fn=_identity,
            persistent_workers=True,
            multiprocessing_context="forkserver",
        )
        self.entry = owner._entry
        self._running = 0  # iterations of run() not yet finished
        self._retired = False

    def run(self, rows: np.ndarray, bounds: list[tuple[int, int]]) -> Iterator[Batch]:
        self.sampler.batches = [rows[s:e] for s, e in bounds]
        self._running += 1
        try:
            yield from self.dataloader
        finally:
            self._running -= 1
            if self._retired and not self._running:
                self._stop_workers()

    def close(self) -> None:
        """Stop the worker processes: at once, or when the iteration still running ends (an
        epoch a caller has not finished keeps its workers until it is finished or dropped)."""
        self._retired = True
        if not self._running:
            self._stop_workers()

    @property
    def closed(self) -> bool:
        """True once the worker processes are stopped."""
        return self._retired and getattr(self.dataloader, "_iterator", None) is None

    def _stop_workers(self) -> None:
        # persistent workers live in the DataLoader's iterator until it is shut down
        it, self.dataloader._iterator = getattr(self.dataloader, "_iterator", None), None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def worker_batches(owner: Loader, rows: np.ndarray) -> Iterator[Batch]:
    """Yield the transformed batches of entry ``rows``, computed by ``owner.num_workers`` processes."""
    pool = owner._pool
    if pool is None or pool.entry is not owner._entry:
        if pool is not None:  # the entry was built again: the old entry's workers are of no use
            pool.close()
        pool = WorkerPool(owner)
        owner._pool = pool
    for batch in pool.run(rows, owner._bounds(rows.size)):
        if owner.device.type != "cpu":
            batch = {
                n: v.to(owner.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for n, v in batch.items()
            }
        yield batch
