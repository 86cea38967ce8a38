"""Per-thread scratch buffers: distinct within a call, kept between calls, never shared by threads."""

from __future__ import annotations

import threading

import numpy as np

from engine._scratch import KEPT, scratch


def test_buffers_of_one_call_are_distinct_and_kept_between_calls() -> None:
    a, b, c = scratch(1000, 3)
    assert a.dtype == np.uint64 and a.shape == (1000,)
    assert not np.shares_memory(a, b) and not np.shares_memory(b, c) and not np.shares_memory(a, c)
    again = scratch(500, 3)
    assert all(np.shares_memory(x, y) for x, y in zip((a, b, c), again))  # the same kept memory


def test_large_requests_get_fresh_arrays() -> None:
    (small,) = scratch(10)
    big, big2 = scratch(KEPT + 1, 2)
    assert big.size == KEPT + 1 and not np.shares_memory(big, big2)
    assert not np.shares_memory(big, small)
    (later,) = scratch(KEPT + 1)
    assert not np.shares_memory(later, big)  # not kept


def test_threads_never_share_buffers() -> None:
    got: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        (buf,) = scratch(4096)
        barrier.wait()  # all four hold their buffer at once
        buf.fill(i)
        barrier.wait()
        got[i] = buf.copy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert (got[i] == i).all()
