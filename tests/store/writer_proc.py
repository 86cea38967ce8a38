"""A writer process for the crash and concurrency tests (run as a script).

Usage: python writer_proc.py STORE SEED N_OPS KEY_BASE [LOCK_TIMEOUT]

``MODYN_TEST_STORAGE_OPTIONS`` (JSON) holds the storage options of an object-store URI.
``MODYN_TEST_KILL_AT=N`` makes the process SIGKILL itself inside operation N (1-based), right
after that operation's first rows reach a table and before its version commits (it prints
``WROTE <table>`` first): a crash exactly inside a write.

Prints ``BEGIN <json>`` before and ``DONE <version>`` after each operation, flushing each line.
Payloads are derived from keys so a reader can check every row's content.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

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
    kill_at = int(os.environ.get("MODYN_TEST_KILL_AT", "0"))
    begun = 0
    if kill_at:
        write = store._tables.append

        def append(name: str, data: Any) -> Any:
            out = write(name, data)
            if begun == kill_at and name != "versions":
                print(f"WROTE {name}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        store._tables.append = append  # type: ignore[method-assign]
    mine: list[int] = []
    next_key = base
    for _ in range(n_ops):
        begun += 1
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
