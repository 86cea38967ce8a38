"""The first query of a fresh process: open a store with 2% of its rows deleted, time
``as_of().keys()`` (``--stream``: ``iter_keys()``) twice, and say whether Numba was imported.
``--spread`` builds the store with keys spread over the int64 range (hashed ids; see
``_store_data.spread_keys``) instead of auto-assigned ones.

``read_cache`` says whether the per-user folder of derived values (``$MODYN_STORE_READ_CACHE``,
see docs/ARCHITECTURE.md) answered the first read (``warm``: an earlier process read the same
tables as they are now, or the delete that made the version wrote its entry; ``cold``: this
process derived values and wrote entries; ``off``). A new empty folder per process
(``MODYN_STORE_READ_CACHE=$(mktemp -d)``) is the first process on a machine. The first process
after a delete, with the folder an earlier read filled: ``--delete-next`` deletes one more key
and exits, so that the next process measures that case (warm where the delete wrote the entry
of its version, cold after a delete that merged the tombstone table)::

    for i in $(seq 20); do python benchmarks/first_query.py /tmp/fq-1m 1000000 --delete-next; \
        python benchmarks/first_query.py /tmp/fq-1m 1000000; \
        python benchmarks/first_query.py /tmp/fq-1m 1000000 --raw; done

Run it once per tree to compare (see docs/PERFORMANCE.md, "The store's key-set searches")::

    python benchmarks/first_query.py /tmp/fq-2m 2000000

``open_and_first_ms`` also counts ``Store.open``; ``bytecode_cached=False`` says the process
compiled some of the store's modules first (run once without ``PYTHONDONTWRITEBYTECODE`` to
cache them, as an installed package has them). With ``--raw`` the process instead times a
Lance user's read of every key of the store's samples table, open included
(``lance.dataset(...).to_table(columns=["key"])``, no version, no deletions), twice: the peer of
``open_and_first_ms``. Alternate the two in fresh processes and compare medians::

    for i in $(seq 25); do python benchmarks/first_query.py /tmp/fq-1m 1000000; \
        python benchmarks/first_query.py /tmp/fq-1m 1000000 --raw; done
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_STARTED = time.time()  # (before the store's modules are imported)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from modyn_store import Store  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("rows", type=int)
    p.add_argument("--raw", action="store_true", help="time Lance's raw key scan of the store's samples instead")
    p.add_argument("--spread", action="store_true",
                   help="build the store with keys spread over the int64 range (hashed ids) instead of auto keys")
    p.add_argument("--stream", action="store_true", help="time iter_keys() (a stream in storage order) instead of keys()")
    p.add_argument("--delete-next", action="store_true",
                   help="delete the smallest live key in this process and exit (a version with one more tombstone)")
    args = p.parse_args()
    if args.delete_next:
        s = Store.open(args.path)
        s.delete(keys=s.as_of().keys()[:1])
        print(f"deleted one key: version {s.version}")
        return
    if not Path(args.path).exists():
        s = Store.open(args.path, create=True)
        if args.spread:
            from _store_data import spread_keys

            keys = spread_keys(args.rows)
            s.append(pa.table({"key": keys, "ts": np.arange(args.rows), "x": np.zeros(args.rows)}))
            s.delete(keys=keys[::50])
        else:
            s.append(pa.table({"ts": np.arange(args.rows), "x": np.zeros(args.rows)}))
            s.delete(keys=np.arange(0, args.rows, 50))
        print("built; run again in a fresh process to measure")
        return
    if args.raw:
        import lance

        uri = str(Path(args.path) / "samples.lance")
        times = []
        for _ in range(2):
            t = time.perf_counter()
            lance.dataset(uri).to_table(columns=["key"]).column("key").to_numpy()
            times.append(time.perf_counter() - t)
        print(f"rows={args.rows} raw_first_ms={1e3 * times[0]:.1f} raw_second_ms={1e3 * times[1]:.1f}")
        return
    before = _entries(Path(args.path))
    t_open = time.perf_counter()
    s = Store.open(args.path)
    read = (lambda: sum(k.size for k in s.as_of().iter_keys())) if args.stream else (lambda: s.as_of().keys())
    t0 = time.perf_counter()
    read()
    t1 = time.perf_counter()
    read()
    t2 = time.perf_counter()
    after = _entries(Path(args.path))
    cache = "off" if after is None else "cold" if after - (before or set()) else "warm"
    # a stream keeps what it dropped beside the samples table's other entries (see _deadpos)
    samples = "" if not args.stream or after is None else f" samples_entries={sum(t == 'samples' for t, _, _ in after)}"
    print(f"rows={args.rows} first_ms={1e3 * (t1 - t0):.0f} second_ms={1e3 * (t2 - t1):.0f} "
          f"numba_imported={'numba' in sys.modules} open_and_first_ms={1e3 * (t1 - t_open):.1f} "
          f"bytecode_cached={_bytecode_cached()} read_cache={cache}{samples}")


def _entries(store: Path) -> set[tuple[str, str, int]] | None:
    """The read cache's entries for the store's tombstones and samples with their modification
    times (``None``: keeping is off): a read that derived a value and kept it adds or rewrites one."""
    from modyn_store.core import _kept

    subs = {t: _kept.table_folder(store / f"{t}.lance") for t in ("tombstones", "samples")}
    if any(sub is None for sub in subs.values()):
        return None
    return {(t, str(p), p.stat().st_mtime_ns) for t, sub in subs.items() if sub is not None for p in sub.glob("*.kept")}


def _bytecode_cached() -> bool:
    """Whether every module of the store that this process loaded had its bytecode cached before
    the process started: otherwise the first read also compiled the modules it imports (about
    4 ms; e.g. under PYTHONDONTWRITEBYTECODE=1 in a source checkout), which an installed package
    does not pay."""
    import importlib.util
    import os

    def cached(source: str) -> bool:
        pyc = importlib.util.cache_from_source(source)
        return os.path.exists(pyc) and os.path.getmtime(source) <= os.path.getmtime(pyc) < _STARTED

    files = [getattr(m, "__file__", None) for name, m in list(sys.modules.items())
             if name.split(".")[0] in ("modyn_store", "engine")]
    return all(cached(f) for f in files if f and f.endswith(".py"))


if __name__ == "__main__":
    main()
