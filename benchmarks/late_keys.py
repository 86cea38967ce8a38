"""Appends of keys below the store's highest (late events that carry their own ids): the check
that every key is new, against Lance's own insert of rows whose keys are new.

    python benchmarks/late_keys.py --rows 10000000 --appends 100 --batch 1000 --rounds 10

The store and a Lance dataset get the same ``--rows`` rows (``key`` even numbers, ``ts``) in
``--appends`` appends (a Lance dataset of that many fragments; the store merges its own). Each
round then takes ``--batch`` odd keys from one narrow stretch of the old keys (late arrivals,
new keys) and times ``store.append`` of them (the store refuses a key it ever held: it scans for
the keys below its highest one) and Lance's ``merge_insert("key").when_not_matched_insert_all()``
of the same rows (it inserts the rows whose key the dataset lacks, a join on ``key`` over every
fragment), the store first in even rounds. Medians over the rounds.

``--spread`` takes each round's odd keys at random from the whole range instead (events with ids
spread over every fragment's keys), and ``--index`` builds the store's key index
(``store.index_keys()``) and a BTREE index on Lance's ``key`` (``create_scalar_index``, which
``merge_insert`` uses) after the appends, before the timed rounds:

    python benchmarks/late_keys.py --rows 10000000 --appends 100 --batch 1000 --rounds 10 --spread --index
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modyn_store import Store  # noqa: E402


def _rows(keys: np.ndarray) -> pa.Table:
    return pa.table({"key": keys, "ts": keys})


def run(rows: int, appends: int, batch: int, rounds: int, root: str, spread: bool = False, index: bool = False) -> None:
    store = Store.open(f"{root}/store", create=True)
    uri = f"{root}/lance"
    step = rows // appends
    for i in range(appends):
        keys = np.arange(2 * i * step, 2 * (i + 1) * step, 2, dtype=np.int64)
        store.append(_rows(keys))
        lance.write_dataset(_rows(keys), uri, mode="append" if i else "create")
    if index:
        built = store.index_keys().tables["samples"].indexed_rows
        ds = lance.dataset(uri)
        ds.create_scalar_index("key", "BTREE")
        print(f"key index: {built:,} rows; Lance BTREE on key: {ds.stats.index_stats('key_idx')['num_indexed_rows']:,} rows")
    rng = np.random.default_rng(0)
    ours: list[float] = []
    peer: list[float] = []
    taken: set[int] = set()
    spans: list[int] = []
    for r in range(rounds):
        if spread:  # odd keys among the even ones, anywhere in the range, none drawn twice
            odd = np.setdiff1d(np.unique(rng.integers(0, rows - 1, 2 * batch)), np.fromiter(taken, np.int64))
            keys = 2 * rng.permutation(odd)[:batch].astype(np.int64) + 1
            taken.update(((keys - 1) // 2).tolist())
        else:
            start = 2 * int(rng.integers(0, rows - batch)) + 1  # odd keys among the even ones: new
            keys = np.arange(start, start + 2 * batch, 2, dtype=np.int64)
        late = _rows(keys)
        spans.append(np.unique(keys // (2 * step)).size)  # the appends whose key range holds one of them
        sides = [("store", lambda t=late: store.append(t)),
                 ("lance", lambda t=late: lance.dataset(uri).merge_insert("key").when_not_matched_insert_all().execute(t))]
        for name, write in sides if r % 2 == 0 else sides[::-1]:
            t0 = time.perf_counter()
            write()
            (ours if name == "store" else peer).append(time.perf_counter() - t0)
    assert store.as_of().count() == lance.dataset(uri).count_rows() == rows + rounds * batch
    o, p = statistics.median(ours) * 1e3, statistics.median(peer) * 1e3
    what = ("keys spread over the range" if spread else "keys in a narrow stretch") + (", key indexes built" if index else "")
    print(f"{rows:,} rows in {appends} appends, {rounds} late appends of {batch:,} keys ({what}): store {o:.1f} ms, "
          f"Lance merge_insert (insert the new keys) {p:.1f} ms, {p / o:.2f}x the store's time; each late append's keys "
          f"fall in the key ranges of up to {max(spans)} of the {appends} appends")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=10**7)
    ap.add_argument("--appends", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--spread", action="store_true", help="late keys at random over the whole range")
    ap.add_argument("--index", action="store_true", help="build the store's key index and a BTREE on Lance's key first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        run(args.rows, args.appends, args.batch, args.rounds, root, args.spread, args.index)


if __name__ == "__main__":
    main()
