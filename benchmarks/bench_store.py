"""Store benchmarks: append and as-of key queries against raw Lance on the same data.

Run with asv (``asv run``) or as a script for the ratios recorded in docs/PERFORMANCE.md::

    python benchmarks/bench_store.py --rows 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from modyn_store import Store

BATCH = 1 << 20


def make_batches(rows: int, seed: int = 0) -> list[pa.Table]:
    """Narrow time-ordered rows (key, ts, x) in chunks of about a million."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        out.append(
            pa.table(
                {
                    "key": np.arange(start, start + n, dtype=np.int64),
                    "ts": np.arange(start, start + n, dtype=np.int64),
                    "x": rng.random(n, dtype=np.float32),
                }
            )
        )
    return out


def build_store(path: str, batches: list[pa.Table], versions: int = 10) -> Store:
    """A store holding ``batches`` spread over ``versions`` appends, with 1% soft-deleted."""
    store = Store.open(path, create=True)
    table = pa.concat_tables(batches)
    step = max(1, table.num_rows // versions)
    for start in range(0, table.num_rows, step):
        store.append(table.slice(start, step))
    keys = table.column("key").to_numpy()
    store.delete(keys=keys[:: 100])
    return store


class AppendSuite:
    """Append throughput of ``Store.append`` vs ``lance.write_dataset`` on the same batches."""

    params = [[10**5, 10**6, 10**7]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.table = pa.concat_tables(make_batches(rows))
        self.dir = tempfile.mkdtemp()
        self.n = 0

    def teardown(self, rows: int) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _path(self) -> str:
        self.n += 1
        return f"{self.dir}/{self.n}"

    def time_store_append(self, rows: int) -> None:
        Store.open(self._path(), create=True).append(self.table)

    def time_lance_write(self, rows: int) -> None:
        lance.write_dataset(self.table, self._path() + ".lance")

    def peakmem_store_append(self, rows: int) -> None:
        Store.open(self._path(), create=True).append(self.table)


class AsOfKeysSuite:
    """``as_of(N).keys()`` on a 10-version store with deletions vs a raw scan of the key column."""

    params = [[10**5, 10**6, 10**7]]
    param_names = ["rows"]
    timeout = 900

    def setup_cache(self) -> dict[int, str]:
        root = tempfile.mkdtemp(prefix="bench-store-")
        paths = {}
        for rows in self.params[0]:
            paths[rows] = f"{root}/s{rows}"
            build_store(paths[rows], make_batches(rows))
        return paths

    def time_as_of_keys(self, paths: dict[int, str], rows: int) -> None:
        store = Store.open(paths[rows])
        store.as_of(store.version - 3).keys()

    def time_raw_lance_key_scan(self, paths: dict[int, str], rows: int) -> None:
        lance.dataset(f"{paths[rows]}/samples.lance").to_table(columns=["key"])

    def peakmem_as_of_keys(self, paths: dict[int, str], rows: int) -> None:
        store = Store.open(paths[rows])
        store.as_of(store.version - 3).keys()


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for rows in args.rows:
        batches = make_batches(rows)
        table = pa.concat_tables(batches)
        with tempfile.TemporaryDirectory() as d:
            counter = iter(range(10**6))
            t_lance = _best(lambda: lance.write_dataset(table, f"{d}/raw{next(counter)}.lance"), args.repeat)
            t_store = _best(lambda: Store.open(f"{d}/st{next(counter)}", create=True).append(table), args.repeat)
            print(
                f"append rows={rows:>11,}  store {rows / t_store / 1e6:7.1f} M rows/s  "
                f"lance.write_dataset {rows / t_lance / 1e6:7.1f} M rows/s  "
                f"ratio (store/lance throughput) {t_lance / t_store:5.2f}"
            )
            store = build_store(f"{d}/q", batches)
            v = store.version - 3
            t_keys = _best(lambda: Store.open(f"{d}/q").as_of(v).keys(), args.repeat)
            t_raw = _best(lambda: lance.dataset(f"{d}/q/samples.lance").to_table(columns=["key"]), args.repeat)
            n = Store.open(f"{d}/q").as_of(v).count()
            print(
                f"as_of  rows={rows:>11,}  as_of(N).keys() {t_keys * 1e3:8.1f} ms ({n:,} keys)  "
                f"raw key scan {t_raw * 1e3:8.1f} ms  ratio (time) {t_keys / t_raw:5.2f}"
            )


if __name__ == "__main__":
    main()
