"""The scans a pipeline trigger pays over all data, each against the way it was done before.

A store of ``rows`` narrow rows (``key``, ``ts``, ``x``) in ``versions`` appends; at the latest
version, best of ``repeat`` runs in one process:

- **selection**: ``Uniform(ratio).select`` (one pass: count and sample together, bounded by the
  snapshot's metadata) against counting the eligible rows first and sampling in a second pass
  (the same keys, asserted);
- **locate**: ``Snapshot.locate`` of the selected keys (liveness and row ids in one scan of the
  version's keys) against the loader's previous live check (a scan of the live keys) plus
  ``RowReader.locate`` (a scan of every stored key);
- **delta**: ``store.delta`` of the latest version (its own fragments, ``_version`` taken from
  the fragment's recorded range) against the filtered read of ``_version`` over every fragment
  it replaced, and against the read of its own fragment with the ``_version`` column and the
  version filter (the read it replaced in turn);
- **raw**: one stream of the key column (the floor of any pass).

Run (see docs/PERFORMANCE.md, "Pipelines")::

    python benchmarks/trigger_passes.py --rows 10000000 --versions 20
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modyn_store import Store  # noqa: E402
from modyn_store.core.trainset import TrainSet  # noqa: E402
from policies import SelectionContext, Uniform  # noqa: E402
from policies._pick import derive_seed, pick  # noqa: E402
from policies._stream import count_rows  # noqa: E402
from training.entries import live_check  # noqa: E402


def _best(f: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best of ``repeat`` timed calls, after one untimed call (compilation, first reads)."""
    times, out = [], f()
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--versions", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    folder = tempfile.mkdtemp(prefix="trigger-passes-")
    try:
        store = Store.open(os.path.join(folder, "s"), create=True)
        per = args.rows // args.versions
        for v in range(args.versions):
            k = np.arange(v * per, (v + 1) * per)
            store.append(pa.table({"key": k, "ts": k, "x": np.zeros(k.size, np.float32)}))
        top = store.version
        snap = store.as_of(top)
        print(f"{args.rows:,} rows in {args.versions} versions, best of {args.repeat}")
        for ratio in (0.002, 0.01):
            ctx = SelectionContext(snapshot=snap, seed=1, batch_size=1 << 18)
            u = Uniform(ratio=ratio)
            t_one, ts = _best(lambda: u.select(ctx), args.repeat)

            def two() -> np.ndarray:
                n = count_rows(ctx)
                return pick(ctx, u.expected_size(n), "uniform", seed=derive_seed(ctx.seed, 3), n=n)

            t_two, old = _best(two, args.repeat)
            assert np.array_equal(np.sort(ts.keys), old)
            sk = np.sort(ts.keys)
            t_loc, _ = _best(lambda: store.as_of(top).locate(sk), args.repeat)
            tset = TrainSet.uniform(sk, version=top)
            t_old_loc, _ = _best(lambda: (live_check(store, tset, sk), store.as_of(top).row_reader().locate(sk)),
                                 args.repeat)
            print(f"ratio {ratio}: selection {t_one:.3f} s (one pass) vs {t_two:.3f} s (count, then sample); "
                  f"locate {t_loc:.3f} s (one scan) vs {t_old_loc:.3f} s (live check + locate)")
        ds = store._tables.open("samples")
        assert ds is not None
        t_delta, _ = _best(lambda: store.delta(top - 1, top), args.repeat)
        t_full, _ = _best(lambda: ds.to_table(columns=["key", "ts", "_version"],
                                              filter=f"_version > {top - 1} AND _version <= {top}"), args.repeat)
        own = [f for f in ds.get_fragments()
               if store._tables.fragment_versions("samples", ds)[f.fragment_id] == (top, top)]
        t_own, _ = _best(lambda: ds.scanner(columns=["key", "ts", "_version"], fragments=own,
                                            filter=f"_version > {top - 1} AND _version <= {top}").to_table(),
                         args.repeat)
        print(f"delta of one version: {t_delta:.4f} s (its fragments) vs {t_full:.4f} s (filter over every "
              f"fragment) vs {t_own:.4f} s (its fragment with _version and the filter)")
        t_raw, _ = _best(lambda: sum(b.num_rows for b in snap.to_batches(["key"], batch_size=1 << 20)), args.repeat)
        print(f"raw key stream: {t_raw:.3f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
