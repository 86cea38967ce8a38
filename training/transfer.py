"""Batches served on a device: gathered from a copy of the train set held in device memory, or
gathered on the host into pinned buffers and copied asynchronously.

Both gather a *run* of consecutive batches at once (about :data:`RUN_BYTES` of rows) and serve
each batch as a slice of it: one gather and one copy per column and run instead of per batch.
Per-operation costs on a device (a kernel launch, an event, a copy's setup) are tens of
microseconds, paid per batch they bound a warm epoch far below the copy bandwidth. A batch
holds rows of its run only; changing it in place changes no other batch and not the cache.

Example
-------
>>> import numpy as np, torch
>>> src = {"__key__": torch.arange(6), "__weight__": torch.ones(6), "x": torch.arange(12.0).view(6, 2)}
>>> order = np.array([5, 0, 3, 1, 4, 2])
>>> batches = list(streamed_batches(src, order, [(0, 4), (4, 6)], ["x"], device=torch.device("cpu"),
...                                 pin=False, var_rows=None))
>>> [b["key"].tolist() for b in batches], batches[1]["x"].tolist()
([[5, 0, 3, 1], [4, 2]], [[8.0, 9.0], [4.0, 5.0]])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from training.batch import Batch

__all__ = ["RUN_BYTES", "resident_batches", "runs", "streamed_batches"]

#: Bytes of rows gathered (and, streamed, copied) at once.
RUN_BYTES = 32 << 20

VarRows = Callable[[str, np.ndarray], Any] | None


def runs(bounds: Sequence[tuple[int, int]], row_bytes: int) -> list[list[tuple[int, int]]]:
    """``bounds`` (consecutive batches) grouped into runs of about :data:`RUN_BYTES` (at least
    one batch each).

    >>> runs([(0, 2), (2, 4), (4, 5)], row_bytes=RUN_BYTES // 4)
    [[(0, 2), (2, 4)], [(4, 5)]]
    """
    if not bounds:
        return []
    size = max(e - s for s, e in bounds)
    per = max(1, RUN_BYTES // max(1, size * row_bytes))
    return [list(bounds[i : i + per]) for i in range(0, len(bounds), per)]


def _row_bytes(tensors: Sequence[torch.Tensor]) -> int:
    return sum(t.element_size() * (t.numel() // max(1, t.shape[0])) for t in tensors)


def _sliced(got: dict[str, torch.Tensor], lo: int, s: int, e: int, columns: Sequence[str],
            order: np.ndarray, var_rows: VarRows) -> Batch:
    batch: Batch = {"key": got["__key__"][s - lo : e - lo], "weight": got["__weight__"][s - lo : e - lo]}
    for n in columns:
        if n in got:
            batch[n] = got[n][s - lo : e - lo]
        else:
            assert var_rows is not None
            batch[n] = var_rows(n, order[s:e])
    return batch


def resident_batches(dev: dict[str, torch.Tensor], order: np.ndarray, bounds: Sequence[tuple[int, int]],
                     columns: Sequence[str], *, device: torch.device, var_rows: VarRows) -> Iterator[Batch]:
    """Batches of entry rows ``order`` gathered from ``dev`` (``__key__``, ``__weight__`` and the
    fixed-width columns, all in device memory); variable-length columns by ``var_rows``."""
    dorder = torch.from_numpy(order).to(device)
    names = ["__key__", "__weight__", *[n for n in columns if n in dev]]
    for run in runs(bounds, _row_bytes([dev[n] for n in names])):
        lo, hi = run[0][0], run[-1][1]
        ti = dorder[lo:hi]
        got = {n: dev[n].index_select(0, ti) for n in names}
        for s, e in run:
            yield _sliced(got, lo, s, e, columns, order, var_rows)


def streamed_batches(src: dict[str, torch.Tensor], order: np.ndarray, bounds: Sequence[tuple[int, int]],
                     columns: Sequence[str], *, device: torch.device, pin: bool, var_rows: VarRows) -> Iterator[Batch]:
    """Batches of entry rows ``order`` gathered from host tensors ``src`` into pinned buffers
    (two, in turn: the next run is gathered while the last one is copied) and copied to
    ``device`` on a side stream; variable-length columns by ``var_rows``."""
    cuda = device.type == "cuda"
    stream = torch.cuda.Stream(device) if cuda else None
    names = ["__key__", "__weight__", *[n for n in columns if n in src]]
    grouped = runs(bounds, _row_bytes([src[n] for n in names]))
    most = max((r[-1][1] - r[0][0] for r in grouped), default=0)
    slots = [
        {n: torch.empty((most, *src[n].shape[1:]), dtype=src[n].dtype, pin_memory=pin and cuda) for n in names}
        for _ in range(min(2, len(grouped)))
    ]
    done: list[Any] = [None, None]
    for i, run in enumerate(grouped):
        k = i % 2
        if done[k] is not None:
            done[k].synchronize()  # the copy out of this slot has finished
        lo, hi = run[0][0], run[-1][1]
        ti = torch.from_numpy(order[lo:hi])
        host = {n: torch.index_select(src[n], 0, ti, out=slots[k][n][: hi - lo]) for n in names}
        if cuda:
            assert stream is not None
            with torch.cuda.stream(stream):
                got = {n: t.to(device, non_blocking=True) for n, t in host.items()}
                ev = torch.cuda.Event()
                ev.record(stream)
            done[k] = ev
            cur = torch.cuda.current_stream(device)
            cur.wait_event(ev)
            for t in got.values():
                t.record_stream(cur)
        else:
            got = {n: t.to(device, copy=True) for n, t in host.items()}
        for s, e in run:
            yield _sliced(got, lo, s, e, columns, order, var_rows)
