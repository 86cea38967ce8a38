"""Scratch buffers that each thread keeps between calls.

NumPy allocates every temporary afresh. For arrays of a few hundred KB, the allocator often
hands back memory the process has just returned to the system, and touching it again costs a
page fault per 4 KB: on the machines measured, more than the arithmetic of a batch of 64K keys
itself (a checksum of 16 such batches: 7 ms with fresh temporaries, 1.7 ms in kept buffers).
Passes that run batch after batch (the store's key checksum, the hashed key lookup) write
into these buffers instead.

Example
-------
>>> import numpy as np
>>> a, b = scratch(4, 2)
>>> a.shape, b.dtype.name
((4,), 'uint64')
>>> np.shares_memory(scratch(4, 1)[0], a)  # the same kept buffer, not a new array
True
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["KEPT", "scratch"]

#: buffers of up to this many elements are kept (8 bytes each: 1 MiB a buffer); larger requests
#: get fresh arrays, so that a thread never holds more than a few MiB
KEPT = 1 << 17
_LOCAL = threading.local()


def scratch(n: int, count: int = 1) -> tuple[np.ndarray, ...]:
    """``count`` distinct uint64 arrays of ``n`` elements, contents undefined.

    Views of the calling thread's kept buffers (valid until its next call) when ``n`` is at
    most :data:`KEPT`, fresh arrays otherwise. Callers must not hold them across a call that
    may itself use scratch buffers.
    """
    if n > KEPT:
        return tuple(np.empty(n, np.uint64) for _ in range(count))
    kept: list[np.ndarray] | None = getattr(_LOCAL, "kept", None)
    if kept is None:
        kept = _LOCAL.kept = []
    while len(kept) < count:
        kept.append(np.empty(0, np.uint64))
    out = []
    for i in range(count):
        if kept[i].size < n:
            kept[i] = np.empty(max(n, 1 << 16), np.uint64)
        out.append(kept[i][:n])
    return tuple(out)
