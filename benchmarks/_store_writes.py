"""The write benchmarks of ``bench_store.py`` (``--writes-only``, ``--small-versions``): appends and
deletes of the store against Lance's, interleaved, one fresh store or dataset per side and round."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling module below, under asv too

from modyn_store import Store  # noqa: E402
from _store_data import build_store, make_batches  # noqa: E402


def writes(rows: int, repeat: int, d: str, baseline: Any = None) -> None:
    """Append to a 10-version table and delete 1% of it three times (two filters, then a list of
    keys): the store now (and ``baseline``'s store)
    vs Lance, one fresh store / dataset per side and round, runs interleaved.

    Two Lance peers hold the same rows: ``lance`` was written in one call (one fragment per
    10^6 rows, the fewest files to scan), ``lance10`` by the same 10 appends as the store (the
    same fragments; what a Lance user appending a version a day has). A third store, compacted
    after its 10 appends, has the one-write peer's layout. For the append, a third Lance peer
    writes what the store writes: the same 10 appends with the store's ``_version`` column and
    stable row ids, so the gap to it is the store's own work, not its format."""
    table = pa.concat_tables(make_batches(rows))
    base = make_batches(rows, seed=1)
    shifted = table.set_column(0, "key", pa.array(table.column("key").to_numpy() + 10**12))
    shifted = shifted.set_column(1, "ts", shifted.column("key"))
    sides = {"now": Store} | ({"before": baseline} if baseline is not None else {})
    counter = iter(range(10**6))
    best: dict[tuple[str, str], float] = {}
    whole = pa.concat_tables(base)
    step = max(1, whole.num_rows // 10)
    all_keys = whole.column("key").to_numpy()
    by_keys = all_keys[all_keys % 100 == 2]
    in_list = f"key IN ({', '.join(map(str, by_keys.tolist()))})"
    for round_ in range(repeat):
        made = {side: build_store(f"{d}/w{next(counter)}", base, versions=10, delete=False, cls=cls)
                for side, cls in sides.items()}
        # the same 10 versions after `compact()`: one data fragment, the one-write peer's layout
        made["compacted"] = build_store(f"{d}/w{next(counter)}", base, versions=10, delete=False)
        made["compacted"].compact()
        uri = f"{d}/wraw{next(counter)}.lance"
        lance.write_dataset(whole, uri)
        uri10, uri_layout = f"{d}/wraw{next(counter)}.lance", f"{d}/wraw{next(counter)}.lance"
        for i, start in enumerate(range(0, whole.num_rows, step)):
            part, mode = whole.slice(start, step), "append" if start else "create"
            lance.write_dataset(part, uri10, mode=mode)
            part = part.append_column("_version", pa.array(np.full(part.num_rows, i + 1, np.int64)))
            lance.write_dataset(part, uri_layout, mode=mode, enable_stable_row_ids=True)
        shifted_layout = shifted.append_column("_version", pa.array(np.full(shifted.num_rows, 11, np.int64)))
        steps: list[tuple[str, str, Callable[[], object]]] = []
        for side, st in made.items():
            steps.append(("append", side, functools.partial(st.append, shifted)))
        steps.append(("append", "lance", lambda: lance.write_dataset(shifted, uri, mode="append")))
        steps.append(("append", "lance10", lambda: lance.write_dataset(shifted, uri10, mode="append")))
        steps.append(("append", "layout", lambda: lance.write_dataset(shifted_layout, uri_layout, mode="append")))
        for side, st in made.items():
            steps.append(("delete", side, functools.partial(st.delete, where="key % 100 = 0")))
        steps.append(("delete", "lance", lambda: lance.dataset(uri).delete("key % 100 = 0")))
        steps.append(("delete", "lance10", lambda: lance.dataset(uri10).delete("key % 100 = 0")))
        # a second delete: the tombstone table exists now (a delete a day, after the first)
        for side, st in made.items():
            steps.append(("delete2", side, functools.partial(st.delete, where="key % 100 = 1")))
        steps.append(("delete2", "lance", lambda: lance.dataset(uri).delete("key % 100 = 1")))
        steps.append(("delete2", "lance10", lambda: lance.dataset(uri10).delete("key % 100 = 1")))
        # a third, by keys (the ids a user was asked to remove): the store's `delete(keys=...)`,
        # Lance's delete of `key IN (...)` listing the same keys
        for side, st in made.items():
            steps.append(("delete3", side, functools.partial(st.delete, keys=by_keys)))
        steps.append(("delete3", "lance", lambda: lance.dataset(uri).delete(in_list)))
        steps.append(("delete3", "lance10", lambda: lance.dataset(uri10).delete(in_list)))
        # Lance's other delete by keys: a merge-insert that deletes the rows matching a key table
        # (a copy of the one-write dataset, so that both Lance deletes find the same rows)
        uri_mi = f"{d}/wraw{next(counter)}.lance"
        lance.write_dataset(whole, uri_mi)
        for flt in ("key % 100 = 0", "key % 100 = 1"):
            lance.dataset(uri_mi).delete(flt)
        keys_table = pa.table({"key": by_keys})
        steps.append(("delete3", "lance_mi", lambda: lance.dataset(uri_mi).merge_insert("key")
                      .when_matched_delete().execute(keys_table)))
        # within each kind of step the sides take turns at going first (the first write after
        # building finds colder caches): round r starts at the r-th side
        kinds = list(dict.fromkeys(what for what, _, _ in steps))
        ordered = []
        for kind in kinds:
            group = [step for step in steps if step[0] == kind]
            shift = round_ % len(group)
            ordered += group[shift:] + group[:shift]
        for what, side, fn in ordered:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[(what, side)] = min(best.get((what, side), float("inf")), dt)
    for what, label in (("append", f"append {rows:,} rows to a 10-version table"),
                        ("delete", f"delete 1% of {rows:,} rows (`key % 100 = 0`)"),
                        ("delete2", f"then delete 1% more (`key % 100 = 1`)"),
                        ("delete3", f"then delete 1% more by keys (`delete(keys=...)`; Lance: `key IN (...)` or a merge-insert delete)")):
        cells = [f"{best[(what, s)] * 1e3:.1f} ms" for s in ("before", "now") if (what, s) in best]
        for peer, name in (("lance", "Lance (one write)"), ("lance10", "Lance (10 appends)")):
            ratios = [f"{best[(what, peer)] / best[(what, s)]:.2f}" for s in ("before", "now") if (what, s) in best]
            print(f"| {label} | {' -> '.join(cells)} | {name}: {best[(what, peer)] * 1e3:.1f} ms | {' -> '.join(ratios)} |")
        if (what, "lance_mi") in best:
            ratios = [f"{best[(what, 'lance_mi')] / best[(what, s)]:.2f}" for s in ("before", "now") if (what, s) in best]
            print(f"| {label} | {' -> '.join(cells)} | Lance (one write), merge-insert delete of the keys: "
                  f"{best[(what, 'lance_mi')] * 1e3:.1f} ms | {' -> '.join(ratios)} |")
        if (what, "layout") in best:
            ratios = [f"{best[(what, 'layout')] / best[(what, s)]:.2f}" for s in ("before", "now") if (what, s) in best]
            print(f"| {label} | {' -> '.join(cells)} | Lance, the store's layout (10 appends, `_version`, stable row "
                  f"ids): {best[(what, 'layout')] * 1e3:.1f} ms | {' -> '.join(ratios)} |")
        print(f"| {label}, the store compacted first (`compact()`) | {best[(what, 'compacted')] * 1e3:.1f} ms | "
              f"Lance (one write): {best[(what, 'lance')] * 1e3:.1f} ms | {best[(what, 'lance')] / best[(what, 'compacted')]:.2f} |")


def small_versions(n: int, rows: int, d: str, baseline: Any = None) -> None:
    """Fixed cost per version: ``n`` appends of ``rows`` rows, store (now, and ``baseline``'s)
    vs Lance ``mode="append"``, one append of each in turn; the side that goes first rotates
    every version (the write after another side's finds colder caches)."""
    batches = [pa.table({"key": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
                         "ts": np.arange(i * rows, (i + 1) * rows, dtype=np.int64),
                         "x": np.zeros(rows, np.float32)}) for i in range(n)]
    sides = {"now": Store} | ({"before": baseline} if baseline is not None else {})
    stores = {side: cls.open(f"{d}/small-{side}", create=True) for side, cls in sides.items()}
    uri = f"{d}/small.lance"
    lance.write_dataset(batches[0], uri)
    for st in stores.values():
        st.append(batches[0])
    writes: dict[str, Callable[[pa.Table], object]] = {side: st.append for side, st in stores.items()}
    writes["lance"] = lambda b: lance.write_dataset(b, uri, mode="append")
    names = list(writes)
    total = {k: 0.0 for k in names}
    for i, b in enumerate(batches[1:]):
        for side in names[i % len(names):] + names[: i % len(names)]:
            t0 = time.perf_counter()
            writes[side](b)
            total[side] += time.perf_counter() - t0
    k = n - 1
    per = {side: t / k * 1e3 for side, t in total.items()}
    order = [s for s in ("before", "now") if s in per]
    print(f"| {k} appends of {rows} rows | {' -> '.join(f'{per[s]:.2f}' for s in order)} ms/version | "
          f"Lance append: {per['lance']:.2f} ms/version | "
          f"{' -> '.join(f'{per[s] - per[lance_key]:.2f}' for s in order for lance_key in ['lance'])} ms fixed cost above Lance |")
