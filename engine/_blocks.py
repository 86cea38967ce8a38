"""How the parallel kernels split their work.

Work is cut into at most 64 fixed blocks, each of at least ``min_rows`` rows, so results never
depend on the thread count. A kernel with a single block runs it in the calling thread: a parallel
region costs a wake-up and a barrier, which on a busy machine (another process holding a core)
can cost more than the whole job.
"""

from __future__ import annotations

from numba import njit

__all__ = ["MAX_BLOCKS", "PARALLEL_ROWS", "n_blocks"]

MAX_BLOCKS = 64
PARALLEL_ROWS = 1 << 18  # rows (or row x column work units) per block below which we stay serial


@njit(cache=True, inline="always")
def n_blocks(n, min_rows):  # type: ignore[no-untyped-def]
    """Number of blocks for ``n`` work units: between 1 and MAX_BLOCKS, each >= ``min_rows``."""
    return max(1, min(MAX_BLOCKS, n // min_rows))
