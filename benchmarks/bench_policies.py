"""Selection benchmarks: streaming selection over a large snapshot in bounded memory.

The store holds ``rows`` narrow rows (``key``, ``ts``, ``label`` in 10 classes) in 10 versions.
Each strategy selects ``limit`` rows (a global limit) through the store's streaming read
(``Snapshot.to_batches``); score-based ones read a streaming score source (a scoring pass's
output, as ``SelectionContext.computed_scores``). Every measurement runs in a fresh process and
reports the peak resident memory added by the selection (``VmHWM`` reset before it) and rows/s,
after a first call of the same code on a tiny store (strategies, baselines and ``scan`` alike);
``scan`` is the store's streaming read of the three columns alone, for reference.
The baseline is the in-memory NumPy way: load every key (and the column it needs) and call
``Generator.choice`` / ``argpartition``, measured the same way in the same run.

Run as a script (``--rows 100000000`` for 10^8; the store is written to a temporary folder)::

    python benchmarks/bench_policies.py --rows 10000000

The asv classes below time the same selections on small stores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modyn_store import Store  # noqa: E402
from policies import SelectionContext, from_config  # noqa: E402

VERSIONS = 10
CLASSES = 10
CHUNK = 1 << 20


def make_store(path: str, rows: int) -> Store:
    """``rows`` rows (key, ts, label) appended as ``VERSIONS`` streamed versions."""
    store = Store.open(path, create=True)
    schema = pa.schema([("key", pa.int64()), ("ts", pa.int64()), ("label", pa.int64())])
    per = -(-rows // VERSIONS)
    for v in range(VERSIONS):
        lo, hi = v * per, min(rows, (v + 1) * per)
        if lo >= hi:
            break

        def batches(lo: int = lo, hi: int = hi) -> Iterator[pa.RecordBatch]:
            for s in range(lo, hi, CHUNK):
                k = np.arange(s, min(hi, s + CHUNK), dtype=np.int64)
                yield pa.record_batch([pa.array(k), pa.array(k * 7), pa.array(_hash(k) % CLASSES)],
                                      schema=schema)

        store.append(pa.RecordBatchReader.from_batches(schema, batches()))
    return store


def _hash(k: np.ndarray) -> np.ndarray:
    """A cheap deterministic per-key hash (int64 >= 0)."""
    x = k.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(29)
    return (x >> np.uint64(1)).astype(np.int64)


def loss_source(rows: int, batch: int = CHUNK) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A streaming score source: loss values for keys 0..rows-1, in batches."""

    def it() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for s in range(0, rows, batch):
            k = np.arange(s, min(rows, s + batch), dtype=np.int64)
            yield k, (_hash(k) % 1_000_003).astype(np.float64) / 1_000_003 + 1e-6

    return it


def strategies(rows: int, limit: int) -> dict[str, dict[str, Any]]:
    return {
        "uniform": {"name": "uniform", "ratio": limit / rows},
        "all_data_newest": {"name": "all_data", "limit": limit, "sample": "newest"},
        "new_data": {"name": "new_data", "limit": limit, "sample": "uniform"},
        "class_balanced": {"name": "class_balanced", "limit": limit},
        "trigger_balanced": {"name": "trigger_balanced", "limit": limit},
        "loss_top": {"name": "loss", "limit": limit, "ratio": 1.0},
        "loss_importance": {"name": "loss", "limit": limit, "ratio": 1.0, "method": "importance"},
    }


def context(store: Store, rows: int, seed: int = 0) -> SelectionContext:
    return SelectionContext(snapshot=store.as_of(None), trigger_index=4,
                            trigger_cutoffs=(2, 4, 6, 8), seed=seed, batch_size=CHUNK,
                            computed_scores={"loss": loss_source(rows)})


def numpy_baseline(store: Store, name: str, limit: int, seed: int = 0) -> np.ndarray:
    """The in-memory way: load whole columns, then one NumPy call."""
    snap = store.as_of(None)
    rng = np.random.default_rng(seed)
    if name == "uniform":
        return np.sort(rng.choice(snap.keys(), limit, replace=False))
    if name == "loss_top":
        keys = snap.keys()
        values = np.concatenate([v for _, v in loss_source(int(keys.size))()])
        return np.sort(keys[np.argpartition(-values, limit)[:limit]])
    if name == "class_balanced":
        t = snap.to_table(["key", "label"])
        keys, labels = t.column("key").to_numpy(), t.column("label").to_numpy()
        per = limit // CLASSES
        return np.sort(np.concatenate([rng.choice(keys[labels == c], per, replace=False)
                                       for c in range(CLASSES)]))
    raise KeyError(name)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # resets VmHWM to the current RSS
        fh.write("5")


def child(path: str, rows: int, limit: int, name: str) -> dict[str, Any]:
    """Measure one selection (or baseline) in this process."""
    store = Store.open(path)
    # the tiny store has the big one's shape (VERSIONS versions), so that every strategy's warm-up
    # call takes the paths the timed call takes (new_data's cutoff 8 selects rows from it)
    warm = make_store(f"memory://warm-{os.getpid()}", 1000)
    cfg = strategies(rows, limit).get(name)
    # every side's first call runs on the tiny store outside the measurement (kernels compiled,
    # the store's and Lance's first-use costs paid), strategies and baselines alike
    if cfg is not None:
        small = {**cfg, **({"ratio": 0.1} if "ratio" in cfg and cfg["name"] == "uniform" else {})}
        small.update({"limit": 50} if "limit" in cfg else {})
        from_config("selection", small).select(context(warm, 1000))
    elif name == "scan":
        sum(b.num_rows for b in warm.as_of(None).to_batches(["key", "ts", "label"], batch_size=CHUNK))
    else:
        numpy_baseline(warm, name.removeprefix("numpy_"), 50)
    _reset_peak()
    base = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    if cfg is not None:
        selected = from_config("selection", cfg).select(context(store, rows)).size
    elif name == "scan":  # the store's streaming read alone, for reference
        selected = sum(b.num_rows for b in store.as_of(None).to_batches(
            ["key", "ts", "label"], batch_size=CHUNK))
    else:
        selected = int(numpy_baseline(store, name.removeprefix("numpy_"), limit).size)
    secs = time.perf_counter() - t0
    return {"name": name, "rows": rows, "selected": int(selected), "seconds": secs,
            "rows_per_s": rows / secs, "peak_mib": (_rss_kib("VmHWM") - base) / 1024}


def run_all(rows: int, limit: int, names: list[str], baselines: list[str]) -> list[dict[str, Any]]:
    tmp = tempfile.mkdtemp(prefix="bench-policies-")
    try:
        t0 = time.perf_counter()
        make_store(os.path.join(tmp, "store"), rows)
        print(f"store of {rows:,} rows written in {time.perf_counter() - t0:.1f} s", flush=True)
        results = []
        for name in names + [f"numpy_{b}" for b in baselines]:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--store",
                   os.path.join(tmp, "store"), "--rows", str(rows), "--limit", str(limit)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{r['name']:>18}: {r['seconds']:7.2f} s  {r['rows_per_s'] / 1e6:7.1f} M rows/s  "
                  f"peak +{r['peak_mib']:8.1f} MiB  selected {r['selected']:,}", flush=True)
        by = {r["name"]: r for r in results}
        for b in baselines:
            s, n = by.get(b if b != "loss_top" else "loss_top"), by[f"numpy_{b}"]
            if s is not None:
                print(f"{b}: streaming / numpy time {s['seconds'] / n['seconds']:.2f}x, "
                      f"peak memory {s['peak_mib'] / max(n['peak_mib'], 1e-9):.3f}x")
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--limit", type=int, default=100_000)
    ap.add_argument("--strategies", default=",".join(["scan", *strategies(10, 1)]))
    ap.add_argument("--baselines", default="uniform,class_balanced,loss_top")
    ap.add_argument("--child")
    ap.add_argument("--store")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.store, args.rows, args.limit, args.child)))
        return
    names = [s for s in args.strategies.split(",") if s]  # "scan": the plain read
    baselines = [b for b in args.baselines.split(",") if b]
    run_all(args.rows, args.limit, names, baselines)


# ----------------------------------------------------------------------------------------- asv


class _Select:
    params = [[100_000, 1_000_000]]
    param_names = ["rows"]
    strategy = "uniform"
    timeout = 600

    def setup_cache(self) -> str:
        tmp = tempfile.mkdtemp(prefix="asv-policies-")
        for rows in self.params[0]:
            make_store(os.path.join(tmp, str(rows)), rows)
        return tmp

    def setup(self, tmp: str, rows: int) -> None:
        self.store = Store.open(os.path.join(tmp, str(rows)))
        self.rows = rows
        self.cfg = strategies(rows, max(1, rows // 100))[self.strategy]

    def time_select(self, tmp: str, rows: int) -> None:
        from_config("selection", self.cfg).select(context(self.store, rows))

    def peakmem_select(self, tmp: str, rows: int) -> None:
        from_config("selection", self.cfg).select(context(self.store, rows))


class SelectUniform(_Select):
    strategy = "uniform"


class SelectClassBalanced(_Select):
    strategy = "class_balanced"


class SelectLossTopK(_Select):
    strategy = "loss_top"


class SelectTriggerBalanced(_Select):
    strategy = "trigger_balanced"


if __name__ == "__main__":
    main()
