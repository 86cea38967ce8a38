"""A writer process for the crash and concurrency tests (run as a script).

Usage: python writer_proc.py STORE SEED N_OPS KEY_BASE [LOCK_TIMEOUT]

``MODYN_TEST_STORAGE_OPTIONS`` (JSON) holds the storage options of an object-store URI.

Prints ``BEGIN <json>`` before and ``DONE <version>`` after each operation, flushing each line.
Payloads are derived from keys so a reader can check every row's content.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pyarrow as pa

from modyn_store import ConflictError, Store


def payload(keys: np.ndarray) -> dict[str, object]:
    return {
        "key": keys,
        "ts": keys * 10,
        "text": [f"row-{int(k)}-" + "x" * 64 for k in keys],
        "x": keys.astype(np.float64) * 0.5,
    }


def main() -> None:
    uri, seed, n_ops, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
    rng = np.random.default_rng(seed)
    options = json.loads(os.environ.get("MODYN_TEST_STORAGE_OPTIONS", "null"))
    store = Store.open(uri, create=True, lock_timeout=timeout, storage_options=options)
    mine: list[int] = []
    next_key = base
    for _ in range(n_ops):
        live = [k for k in mine]
        r = rng.random()
        if r < 0.6 or len(live) < 4:
            n = int(rng.integers(50, 400))
            keys = np.arange(next_key, next_key + n, dtype=np.int64)
            next_key += n
            op = {"op": "append", "keys": [int(keys[0]), int(keys[-1])]}
            print("BEGIN " + json.dumps(op), flush=True)
            try:
                rec = store.append(pa.table(payload(keys)))
            except ConflictError as exc:
                print("CONFLICT " + str(exc).replace("\n", " "), flush=True)
                continue
            mine.extend(keys.tolist())
        elif r < 0.85:
            chosen = sorted(rng.choice(live, size=min(len(live), 3), replace=False).tolist())
            op = {"op": "delete", "keys": chosen}
            print("BEGIN " + json.dumps(op), flush=True)
            rec = store.delete(keys=chosen)
            mine = [k for k in mine if k not in chosen]
        else:
            chosen = sorted(rng.choice(live, size=min(len(live), 2), replace=False).tolist())
            op = {"op": "erase", "keys": chosen}
            print("BEGIN " + json.dumps(op), flush=True)
            rec = store.erase(chosen, reason="crash test")
            mine = [k for k in mine if k not in chosen]
        print(f"DONE {rec.version}", flush=True)


if __name__ == "__main__":
    main()
