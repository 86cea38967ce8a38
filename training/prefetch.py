"""Background prefetch of batches and the host-memory budget of the loader.

Example
-------
>>> from training.prefetch import prefetched
>>> list(prefetched(iter([1, 2, 3]), depth=2))
[1, 2, 3]
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import torch

__all__ = ["host_budget", "prefetched"]

T = TypeVar("T")

_END = object()


class _Failed:
    """What the producer thread hands over when ``gen`` raised: the error, in a type no item
    has, so an item that is itself an exception instance is delivered, never raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def host_budget(budget: int | None) -> int:
    """``budget``, or a quarter of the available memory (0 where the platform cannot say)."""
    if budget is not None:
        return int(budget)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 4
    except (ValueError, OSError, AttributeError):
        return 0


def prefetched(gen: Iterator[T], depth: int) -> Iterator[T]:
    """Run ``gen`` in a background thread, ``depth`` items ahead; errors it raises re-raise
    here (an exception instance it yields as an item is yielded as it is)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    threads = torch.get_num_threads()

    def produce() -> None:
        # OpenMP's thread count is per thread: give the producer the consumer's setting
        torch.set_num_threads(threads)
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(_Failed(exc))

    t = threading.Thread(target=produce, name="modyn-store-loader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if type(item) is _Failed:
                raise item.error
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        t.join()
