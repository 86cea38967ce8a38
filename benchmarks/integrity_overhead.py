"""What checking a version's live count and key checksum against the log costs ``Snapshot.keys()``.

Usage: python benchmarks/integrity_overhead.py ROWS

Builds a store of ROWS rows in 10 appends with 1% deleted, then times ``keys()`` on fresh
snapshots of the latest version, alternating with the check and without it (the scan's running
checksum replaced by one that adds nothing, and the log's expected checksum by "unknown"), 8
times each; prints the medians and their ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.core import _keyscan, integrity


class _NoChecksum:
    """What the scan would do without the checksum: nothing."""

    value = 0

    def add(self, keys: np.ndarray) -> None:
        pass

    def add_value(self, value: int) -> None:
        pass

    def remove(self, keys: np.ndarray) -> None:
        pass


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    store = Store.open(tempfile.mkdtemp() + "/s", create=True)
    for _ in range(10):
        store.append(pa.table({"ts": np.arange(n // 10), "x": np.zeros(n // 10)}))
    store.delete(keys=np.arange(0, n, 97))
    checked, running = integrity.expected_checksum, _keyscan.Checksum
    times: dict[str, list[float]] = {"checked": [], "unchecked": []}
    for _ in range(8):
        for label in times:
            integrity.expected_checksum = checked if label == "checked" else (lambda *a, **k: None)
            setattr(_keyscan, "Checksum", running if label == "checked" else _NoChecksum)
            snap = store.as_of()
            t = time.perf_counter()
            snap.keys()
            times[label].append(time.perf_counter() - t)
    integrity.expected_checksum = checked
    setattr(_keyscan, "Checksum", running)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"rows={n} keys() checked {med['checked'] * 1e3:.1f} ms, unchecked {med['unchecked'] * 1e3:.1f} ms, "
          f"ratio {med['checked'] / med['unchecked']:.2f}")


if __name__ == "__main__":
    main()
