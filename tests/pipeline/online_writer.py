"""A writer process for the online tests: appends a deterministic stream, one version at a time.

Usage: ``python online_writer.py STORE VERSIONS ROWS SLEEP``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pyarrow as pa

from modyn_store import Store


def batch(i: int, rows: int) -> pa.Table:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    x[:, 0] += 0.1 * i  # slow covariate drift
    label = (x[:, 0] + 0.5 * x[:, 1] > 0.1 * i).astype(np.int64)
    return pa.table({
        "key": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
        "ts": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
        "label": label,
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4),
    })


def main() -> None:
    path, versions, rows, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    store = Store.open(path, create=True)
    for i in range(versions):
        store.append(batch(i, rows), message=f"batch {i}")
        time.sleep(pause)


if __name__ == "__main__":
    main()
