"""Store benchmarks: append and as-of key queries against raw Lance on the same data.

Run with asv (``asv run``) or as a script for the ratios recorded in docs/PERFORMANCE.md::

    python benchmarks/bench_store.py --rows 100000 1000000 10000000 --repeat 3
    python benchmarks/bench_store.py --rows 1000000 10000000 --reads-only --baseline REV   # reads, before/after
    python benchmarks/bench_store.py --rows 1000000 --reads-only --keys gaps       # keys that are not runs
    python benchmarks/bench_store.py --rows 1000000 --reads-only --keys spread --kernels  # ids spread wide, Numba loaded
    python benchmarks/bench_store.py --rows 100000 1000000 --writes-only --small-versions 1000 --baseline REV

Peers: ``lance.write_dataset`` (fresh and ``mode="append"``), ``LanceDataset.delete`` of the same
rows, a raw Lance scan of the key column into one NumPy array (every row written, no version
filter, no deletions), Lance's read of a dataset holding the same rows with the same rows
deleted (deletion files applied by Lance), and, when ``deltalake`` is installed, Delta's read
of the same version of a Delta table written by the same appends and delete. Reads (``keys()``, ``iter_keys()``, ``to_batches()``)
are timed from a fresh ``Store.open`` each time; ``--baseline REV`` also times the store of git
revision REV (imported beside this one) on the same files, runs interleaved, in one process.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module below, under asv too

from modyn_store import Store  # noqa: E402
from _store_data import KEY_LAYOUTS, build_store, make_batches, spread_keys  # noqa: E402,F401 (spread_keys: spread_keys.py)
from _store_peers import check_same_rows, delta_peer, lance_keys, load_baseline  # noqa: E402
from _store_writes import small_versions, writes  # noqa: E402


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


class OneKeyDeleteSuite:
    """One-key deletes, one version each (erasure requests as they arrive), on a store of 10
    appends, against ``LanceDataset.delete("key = k")`` on a dataset of the same 10 appends;
    each call deletes the next of a shuffled list of live keys (``small_deletes.py`` times 200 in
    a row with turns taken, for the ratios in docs/PERFORMANCE.md)."""

    params = [[10**5, 10**6]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.dir = tempfile.mkdtemp()
        table = pa.concat_tables(make_batches(rows))
        self.store = build_store(f"{self.dir}/s", [table], delete=False)
        step = max(1, rows // 10)
        for start in range(0, rows, step):
            lance.write_dataset(table.slice(start, step), f"{self.dir}/peer.lance", mode="append" if start else "create")
        self.peer = lance.dataset(f"{self.dir}/peer.lance")
        order = np.random.default_rng(0).permutation(table.column("key").to_numpy())
        self.ours, self.theirs = iter(order.tolist()), iter(order.tolist())

    def teardown(self, rows: int) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def time_store_delete_one_key(self, rows: int) -> None:
        self.store.delete(keys=[next(self.ours)])

    def time_lance_delete_one_key(self, rows: int) -> None:
        self.peer.delete(f"key = {next(self.theirs)}")


class _KeysSuite:
    """A store per size (10 appends, then 1% deleted) for the read suites below, built once by
    asv; ``layout`` is the key layout (see :data:`KEY_LAYOUTS`). Peer: the raw key scan."""

    params: list[list[int]] = [[10**5, 10**6, 10**7]]
    param_names = ["rows"]
    timeout = 900
    layout = "runs"

    def setup_cache(self) -> dict[int, str]:
        root = tempfile.mkdtemp(prefix=f"bench-store-{self.layout}-")
        paths = {}
        for rows in self.params[0]:
            paths[rows] = f"{root}/s{rows}"
            build_store(paths[rows], make_batches(rows, layout=self.layout), where=KEY_LAYOUTS[self.layout])
            self._peer(paths[rows], rows)
        return paths

    def _peer(self, path: str, rows: int) -> None:
        """Anything else a suite reads beside the store at ``path``."""

    def time_raw_lance_key_scan(self, paths: dict[int, str], rows: int) -> None:
        lance_keys(f"{paths[rows]}/samples.lance")


class AsOfKeysSuite(_KeysSuite):
    """``as_of(N).keys()`` on a 10-version store with deletions vs a raw scan of the key column."""

    def _peer(self, path: str, rows: int) -> None:
        # the Lance peer: the same rows, the same 1% deleted by Lance itself
        peer = f"{path}-peer.lance"
        lance.write_dataset(pa.concat_tables(make_batches(rows)), peer, max_rows_per_file=max(1, rows // 10))
        lance.dataset(peer).delete("key % 100 = 0")

    def time_as_of_keys(self, paths: dict[int, str], rows: int) -> None:
        store = Store.open(paths[rows])
        store.as_of(store.version - 3).keys()

    def time_as_of_latest_keys(self, paths: dict[int, str], rows: int) -> None:
        store = Store.open(paths[rows])
        store.as_of(store.version).keys()

    def time_lance_latest_with_deletions(self, paths: dict[int, str], rows: int) -> None:
        lance_keys(f"{paths[rows]}-peer.lance")

    def peakmem_as_of_keys(self, paths: dict[int, str], rows: int) -> None:
        store = Store.open(paths[rows])
        store.as_of(store.version - 3).keys()


class FirstReadSuite(_KeysSuite):
    """``as_of().keys()`` as the first read of a process that derived nothing and keeps no
    read-cache entry (the first process on a machine): the tombstones are read and the key
    checksum checked from scratch before every sample. The stores' appends record their key
    runs, so no run is mixed (``core/_runclaims.py``); a regression that mixes them again
    costs about 2 ms per 10^6 keys here. Peer: the raw scan."""

    params = [[10**6, 10**7]]
    number = 1  # (setup forgets what the process derived before each timed read)
    repeat = 10

    def setup(self, paths: dict[int, str], rows: int) -> None:
        import os

        from modyn_store.core import _derived, _kept, integrity

        self._env = os.environ.get(_kept.ENV)
        os.environ[_kept.ENV] = "off"
        _derived.DERIVED.clear()
        integrity.forget_runs()

    def teardown(self, paths: dict[int, str], rows: int) -> None:
        import os

        from modyn_store.core import _kept

        if self._env is None:
            os.environ.pop(_kept.ENV, None)
        else:
            os.environ[_kept.ENV] = self._env

    def time_first_latest_keys(self, paths: dict[int, str], rows: int) -> None:
        Store.open(paths[rows]).as_of().keys()


class ShuffledStreamSuite(_KeysSuite):
    """``iter_keys()`` of the latest version (1% deleted) of a store whose keys were written in
    shuffled order: every batch's dead keys go through the hashed lookup. Peer: the raw scan."""

    params = [[10**5, 10**6]]
    layout = "shuffled"

    def time_latest_iter_keys(self, paths: dict[int, str], rows: int) -> None:
        for _ in Store.open(paths[rows]).as_of().iter_keys():
            pass


class SpreadStreamSuite(ShuffledStreamSuite):
    """The same read of keys spread over the whole int64 range (the hashed filter, not a direct
    table) with Numba loaded first, as a pipeline or training process has it: the kernels'
    path (``engine._bloom``). Peer: the raw scan."""

    layout = "spread"

    def setup(self, paths: dict[int, str], rows: int) -> None:
        import numba  # noqa: F401  (as a pipeline or training process has it)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _pair(ours, peer, repeat: int) -> tuple[float, float]:
    """Best times of ``ours`` and ``peer``, runs interleaved (both see the same machine load),
    the two taking turns at going first (the first write of a round finds colder caches)."""
    a, b = [], []
    for r in range(repeat):
        if r % 2:
            b.append(_best(peer, 1))
            a.append(_best(ours, 1))
        else:
            a.append(_best(ours, 1))
            b.append(_best(peer, 1))
    return min(a), min(b)


def measure(rows: int, repeat: int, d: str, baseline: Any = None, layout: str = "runs") -> None:
    """Every store-vs-peer ratio of docs/PERFORMANCE.md (Store) at ``rows`` rows, in one process."""
    table = pa.concat_tables(make_batches(rows))
    counter = iter(range(10**6))

    # 1. one bulk append into a fresh store / a fresh Lance dataset
    t_store, t_lance = _pair(lambda: Store.open(f"{d}/st{next(counter)}", create=True).append(table),
                             lambda: lance.write_dataset(table, f"{d}/raw{next(counter)}.lance"), repeat)
    print(f"| append {rows:,} rows, fresh | {rows / t_store / 1e6:.1f} M rows/s | "
          f"lance.write_dataset: {rows / t_lance / 1e6:.1f} M rows/s | {t_lance / t_store:.2f} |")

    # 2. the same rows appended as the 11th version of an existing table (mode="append" for Lance)
    base = make_batches(rows, seed=1)
    shifted = table.set_column(0, "key", pa.array(table.column("key").to_numpy() + 10**12))
    shifted = shifted.set_column(1, "ts", shifted.column("key"))

    def fresh_pair() -> tuple[Store, str]:
        i = next(counter)
        st = build_store(f"{d}/ap{i}", base, versions=10, delete=False)
        uri = f"{d}/apraw{i}.lance"
        lance.write_dataset(pa.concat_tables(base), uri)
        return st, uri

    ta: list[float] = []
    tb: list[float] = []
    for r in range(repeat):
        st, uri = fresh_pair()
        sides = [(ta, lambda: st.append(shifted)), (tb, lambda: lance.write_dataset(shifted, uri, mode="append"))]
        for times, fn in sides[r % 2:] + sides[:r % 2]:  # the sides take turns at going first
            times.append(_best(fn, 1))
    print(f"| append {rows:,} rows to a 10-version table | {rows / min(ta) / 1e6:.1f} M rows/s | "
          f"lance.write_dataset(mode='append'): {rows / min(tb) / 1e6:.1f} M rows/s | {min(tb) / min(ta):.2f} |")

    # 3. soft-delete 1% (key % 100 = 0) vs Lance's delete of the same rows (deletion files)
    ta, tb = [], []
    for r in range(repeat):
        st, uri = fresh_pair()
        sides = [(ta, lambda: st.delete(where="key % 100 = 0")), (tb, lambda: lance.dataset(uri).delete("key % 100 = 0"))]
        for times, fn in sides[r % 2:] + sides[:r % 2]:  # the sides take turns at going first
            times.append(_best(fn, 1))
    # both deleted the same rows: the store's live keys are the Lance dataset's keys
    assert np.array_equal(st.as_of().keys(), np.sort(lance_keys(uri))), "store and Lance deleted different rows"
    print(f"| delete 1% of {rows:,} rows (`key % 100 = 0`) | {min(ta) * 1e3:.1f} ms | "
          f"LanceDataset.delete: {min(tb) * 1e3:.1f} ms | {min(tb) / min(ta):.2f} |")

    reads(rows, repeat, d, baseline, layout)


def reads(rows: int, repeat: int, d: str, baseline: Any = None, layout: str = "runs") -> None:
    """Reads of a version with 1% deleted (the latest) and before the delete (latest - 3), each
    from a fresh ``Store.open``: the store now (and ``baseline``'s store, if given) vs a raw Lance
    key scan and vs Lance reading the same rows with the same rows deleted by Lance itself.

    ``layout``: the keys (:data:`KEY_LAYOUTS`). ``keys()`` returns the keys sorted; the raw key
    scan returns them in storage order, so with ``shuffled`` keys a third peer, the raw scan
    followed by ``np.sort``, returns what ``keys()`` returns."""
    path = f"{d}/q"
    where = KEY_LAYOUTS[layout]
    batches = make_batches(rows, layout=layout)
    build_store(path, batches, where=where)
    uri = f"{path}/samples.lance"
    peer = f"{d}/qpeer.lance"
    lance.write_dataset(pa.concat_tables(batches), peer, max_rows_per_file=max(1, rows // 10))
    lance.dataset(peer).delete(where)
    latest = Store.open(path).version
    sides = {"now": Store} | ({"before": baseline} if baseline is not None else {})
    delta = delta_peer(f"{d}/qdelta", batches, where)

    def keys(cls: Any, v: int) -> Callable[[], object]:
        return lambda: cls.open(path).as_of(v).keys()

    def iter_keys(cls: Any, v: int) -> Callable[[], object]:
        return lambda: sum(a.size for a in cls.open(path).as_of(v).iter_keys())

    def to_batches(cls: Any, v: int) -> Callable[[], object]:
        return lambda: sum(b.num_rows for b in cls.open(path).as_of(v).to_batches())

    def lance_stream(u: str) -> Callable[[], object]:
        return lambda: sum(b.num_rows for b in lance.dataset(u).to_batches(batch_size=65536))

    for v in (latest, latest - 3):  # untimed: every side with the deletions reads the same rows
        check_same_rows(Store.open(path).as_of(v), peer if v == latest else None,
                         delta(v - 1, False) if delta is not None else None)

    for name, v in (("latest (1% deleted)", latest), ("latest - 3 (before the delete)", latest - 3)):
        for what, make in (("keys()", keys), ("iter_keys()", iter_keys), ("to_batches()", to_batches)):
            fns = {side: make(cls, v) for side, cls in sides.items()}
            fns["raw"] = lambda: lance_keys(uri)
            if layout in ("shuffled", "spread") and what == "keys()":
                fns["raw sorted"] = lambda: np.sort(lance_keys(uri))
            if what == "to_batches()":
                fns["raw stream"] = lance_stream(uri)
            if v == latest:
                fns["lance"] = (lambda: lance_keys(peer)) if what != "to_batches()" else lance_stream(peer)
            if delta is not None:  # Delta's version of the same rows: store version v is Delta's v - 1
                fns["delta"] = delta(v - 1, what == "to_batches()")
            t = _interleaved(fns, repeat)
            cells = [f"{t[s] * 1e3:.1f} ms" for s in ("before", "now") if s in t]
            peer_txt = f"{t['lance'] * 1e3:.1f} ms ({t['lance'] / t['now']:.2f})" if "lance" in t else "-"
            delta_txt = f" | Delta: {t['delta'] * 1e3:.1f} ms ({t['delta'] / t['now']:.2f})" if "delta" in t else ""
            stream_txt = f"; raw stream of all columns {t['raw stream'] * 1e3:.1f} ms" if "raw stream" in t else ""
            stream_ratio = f" ({t['now'] / t['raw stream']:.2f}x the stream)" if "raw stream" in t else ""
            if "raw sorted" in t:
                stream_txt += f"; raw key scan + `np.sort` {t['raw sorted'] * 1e3:.1f} ms"
                stream_ratio += f" ({t['now'] / t['raw sorted']:.2f}x scan + sort)"
            print(f"| {what} as of {name}, {rows:,} rows, {layout} keys | {' -> '.join(cells)} | raw key scan {t['raw'] * 1e3:.1f} ms"
                  f"{stream_txt} | {t['now'] / t['raw']:.2f}x raw{stream_ratio} | Lance with the deletions: {peer_txt}"
                  f"{delta_txt} |")


def _interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best time of each function, one run of each in turn per round (all see the same load),
    in an order shuffled every round (seeded): no side always runs right after the same other.

    (Rotating one order keeps every side's predecessor fixed: the store's reads then always
    followed a peer that had just freed gigabytes, and at 10^8 rows paid the kernel's page
    compaction for the next large allocation in every round.)"""
    best = {k: float("inf") for k in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeat):
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small-versions", type=int, default=200, help="appends for the fixed-cost row (0: skip)")
    parser.add_argument("--reads-only", action="store_true", help="only the read rows (keys, iter_keys, to_batches)")
    parser.add_argument("--writes-only", action="store_true", help="only the write rows (append, delete, small versions)")
    parser.add_argument("--keys", choices=sorted(KEY_LAYOUTS), default="runs",
                        help="key layout of the read rows (runs: 0, 1, 2, ...; gaps: 0, 2, 4, ...; shuffled: a permutation; "
                             "spread: distinct keys in no order over the whole int64 range)")
    parser.add_argument("--kernels", action="store_true",
                        help="import Numba first, as a pipeline, policy or training process has: streams over "
                             "spread keys then take the engine's kernels (engine._bloom) for their dead keys")
    parser.add_argument("--baseline", metavar="REV", help="also time the store at git revision REV (reads; writes with --writes-only)")
    args = parser.parse_args()
    if args.writes_only and args.keys != "runs":
        parser.error("--keys applies to the read rows, not to --writes-only (whose rows have new keys above the old)")
    import os

    baseline = load_baseline(args.baseline) if args.baseline else None
    if args.kernels:
        import numba  # noqa: F401
    print(f"load average {os.getloadavg()[0]:.1f}; pylance {lance.__version__}; Numba loaded: {'numba' in sys.modules}")
    print("| what | store | peer | ratio (peer time / store time; > 1: store faster) |")
    print("|---|---|---|---|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as d:
            if args.reads_only:
                reads(rows, args.repeat, d, baseline, args.keys)
            elif args.writes_only:
                writes(rows, args.repeat, d, baseline)
            else:
                measure(rows, args.repeat, d, baseline, args.keys)
        if not args.writes_only:  # (a build may load Numba: a large delete's lookups take the kernels)
            print(f"Numba loaded after the reads of {rows:,} rows: {'numba' in sys.modules}")
    if args.small_versions and not args.reads_only:
        with tempfile.TemporaryDirectory() as d:
            small_versions(args.small_versions, 100, d, baseline if args.writes_only else None)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
