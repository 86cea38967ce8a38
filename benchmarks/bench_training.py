"""Training-data benchmarks: cold materialization and warm epochs of the loader.

Rows are 272 bytes: ``key`` int64, ``ts`` int64 and ``x`` 64 x float32. Two comparisons, each
a ratio measured in one run:

1. cold materialization of a 25% random selection (``training.loader`` building its cache
   entry) vs ``lance.torch.data.LanceDataset`` scanning the whole table into torch;
2. cold time to the first batch and to the end of the first epoch of ``training.loader`` over
   the selection (materialization included; the loader serves epoch 0, shuffled block by block
   in key order, while it materializes, and the epoch ends once the entry is published) vs the
   first batch and the end of ``LanceDataset`` over the whole table (which a user would then
   have to filter); the first batch also against ``LanceDataset``'s first batch of the loader's
   batch size (4096 rows instead of 65536);
3. a warm, shuffled epoch served from the cache vs a gather (``index_select``) of the same
   shuffled rows from torch tensors already in memory, its permutation drawn by
   ``torch.randperm`` inside the timed epoch and, the stronger peer, drawn before it (the loader
   draws the next epoch's order in a background thread while one is served, where a core is
   free). The loader's order is NumPy's seeded permutation (what recorded trainings replay),
   drawn by ``engine._shuffle`` where Numba is loaded (``--kernels``: a pipeline's or a
   policy's process), else by NumPy.

Run as a script to print the ratios (``--rows`` sets the table size; every time is the median
of ``--repeats`` interleaved runs of both sides, printed with its spread)::

    python benchmarks/bench_training.py --rows 4000000 --repeats 5 --threads 1

The asv classes below time the same operations on smaller tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modyn_store import Store  # noqa: E402
from modyn_store.core.trainset import TrainSet  # noqa: E402

DIM = 64
SELECTIVITY = 0.25
BATCH = 4096


def make_store(path: str, rows: int, *, chunk: int = 1 << 20, dim: int = DIM,
               storage_options: dict[str, str] | None = None) -> Store:
    """A store of ``rows`` rows of 16 + 4 x ``dim`` bytes (key, ts, ``dim`` x float32; 272 bytes
    by default), appended as one streamed version."""
    store = Store.open(path, create=True, storage_options=storage_options)
    rng = np.random.default_rng(0)
    schema = pa.schema([("key", pa.int64()), ("ts", pa.int64()), ("x", pa.list_(pa.float32(), dim))])

    def batches() -> Any:
        for s in range(0, rows, chunk):
            m = min(chunk, rows - s)
            x = rng.standard_normal((m, dim), dtype=np.float32)
            k = np.arange(s, s + m, dtype=np.int64)
            x_col = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim)
            yield pa.record_batch([pa.array(k), pa.array(k), x_col], schema=schema)

    store.append(pa.RecordBatchReader.from_batches(schema, batches()))
    return store


def selection(store: Store, share: float, seed: int) -> TrainSet:
    keys = store.as_of(None).keys()
    rng = np.random.default_rng(seed)
    return TrainSet.uniform(rng.choice(keys, int(keys.size * share), replace=False), version=store.version)


def lance_torch_scan(store: Store) -> int:
    """Rows read by scanning the whole samples table through ``lance.torch.data.LanceDataset``.

    Uses lance's own arrow-to-torch conversion (zero-copy where it can; its warning about
    read-only arrays is silenced).
    """
    import warnings

    from lance.torch.data import LanceDataset

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for batch in LanceDataset(store.samples_dataset(), batch_size=65536, columns=["key", "ts", "x"]):
            n += int(batch["key"].shape[0])
    return n


def lance_masked_read(store: Store, ts: TrainSet) -> int:
    """Rows read by Lance's own masked scan of the selection (row-id allowlist), no bookkeeping.

    The ceiling of the ``scan`` strategy: no live check, no key lookup, no copy into the cache.
    """
    from lance.dataset import serialize_row_addrs

    ds = store.samples_dataset()
    t = ds.to_table(columns=["key"], with_row_id=True)
    keys = t.column("key").to_numpy()
    rid = t.column("_rowid").to_numpy()[np.isin(keys, ts.keys)]
    n = 0
    for b in ds.scanner(columns=["key", "ts", "x"], row_addr_allowlist=serialize_row_addrs(np.sort(rid).tolist()),
                        batch_size=65536).to_batches():
        n += b.num_rows
    return n


def cold_materialize(store: Store, ts: TrainSet, strategy: str = "auto") -> float:
    """Seconds to build the cache entry of ``ts`` (any previous entry is removed first)."""
    from training.cache import cache_for
    from training.loading import LoaderOptions, materialize_entry, selection_digest

    cols = ["ts", "x"]
    cache = cache_for(store)
    cache.discard(selection_digest(ts.version, ts.keys, cols))
    t0 = time.perf_counter()
    materialize_entry(store, ts, cols, LoaderOptions(strategy=strategy))  # type: ignore[arg-type]
    return time.perf_counter() - t0


def lance_torch_first_batch(store: Store, batch_size: int = 65536) -> float:
    """Seconds to the first batch of ``LanceDataset`` over the whole table (``batch_size`` rows:
    the whole-pass peer's 65536, or the loader's own ``BATCH``)."""
    import warnings

    from lance.torch.data import LanceDataset

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        next(iter(LanceDataset(store.samples_dataset(), batch_size=batch_size, columns=["key", "ts", "x"])))
    return time.perf_counter() - t0


def cold_loader(store: Store, ts: TrainSet, first_only: bool, strategy: str = "auto") -> float:
    """Seconds from no cache entry to the first batch (``first_only``) or to the end of the first
    epoch of ``training.loader`` over the selection (materialization included)."""
    from training.cache import cache_for
    from training.loading import LoaderOptions, loader, selection_digest

    cols = ["ts", "x"]
    cache_for(store).discard(selection_digest(ts.version, ts.keys, cols))
    t0 = time.perf_counter()
    dl = loader(store, ts, columns=cols, batch_size=BATCH, seed=0,
                options=LoaderOptions(strategy=strategy))  # type: ignore[arg-type]
    it = iter(dl)
    next(it)
    if not first_only:
        for _ in it:  # the epoch ends once the entry is published
            pass
    elapsed = time.perf_counter() - t0
    it.close()
    dl.wait_materialized()  # the build goes on after the first batch: let it end untimed
    return elapsed


def warm_epoch(dl: Any) -> float:
    t0 = time.perf_counter()
    n = 0
    for b in dl:
        n += int(b["key"].shape[0])
    return time.perf_counter() - t0


def tensor_gather_epoch(tensors: dict[str, Any], seed: int, drawn: bool = False) -> float:
    """The baseline: a shuffled epoch of ``index_select`` from torch tensors in memory, its
    order drawn by ``torch.randperm`` (the faster of torch's and NumPy's shuffles); with
    ``drawn`` the permutation is drawn before the timer starts (a peer that prepares the next
    epoch's order ahead, as the loader does in a background thread where a core is free)."""
    import torch

    n = tensors["key"].shape[0]
    def draw() -> Any:
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    ahead = draw() if drawn else None
    t0 = time.perf_counter()
    perm = ahead if ahead is not None else draw()
    for s in range(0, n, BATCH):
        idx = perm[s : s + BATCH]
        _ = {k: v.index_select(0, idx) for k, v in tensors.items()}
    return time.perf_counter() - t0


def order_times(n: int, repeats: int) -> dict[str, float]:
    """Best time to draw an epoch's order of ``n`` positions: NumPy's seeded permutation (the
    loader's order), ``engine._shuffle``'s kernel drawing the same array (where Numba is loaded)
    and ``torch.randperm`` (another order: what a torch user would call)."""
    import torch

    fns: dict[str, Any] = {
        "numpy": lambda: np.random.default_rng([0, 1]).permutation(n),
        "randperm": lambda: torch.randperm(n, generator=torch.Generator().manual_seed(1)),
    }
    if "numba" in sys.modules:
        from engine._shuffle import permutation

        assert np.array_equal(permutation([0, 1], n), fns["numpy"]())
        fns["kernel"] = lambda: permutation([0, 1], n)
    best = {k: float("inf") for k in fns}
    for r in range(repeats):
        for k in list(fns)[r % len(fns):] + list(fns)[: r % len(fns)]:
            t0 = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def run(rows: int, repeats: int = 3) -> dict[str, float]:
    import torch

    from training.loading import loader

    tmp = tempfile.mkdtemp(prefix="bench-training-")
    try:
        t0 = time.perf_counter()
        store = make_store(os.path.join(tmp, "store"), rows)
        print(f"# built {rows} rows in {time.perf_counter() - t0:.1f} s; torch threads={torch.get_num_threads()}")
        ts = selection(store, SELECTIVITY, 1)
        sel = ts.size
        # warm the OS page cache for both sides; the peers read what they are said to read
        assert lance_torch_scan(store) == rows and lance_masked_read(store, ts) == sel
        times: dict[str, list[float]] = {"base": [], "raw": [], "auto": [], "take": [], "scan": [],
                                         "base_first": [], "base_first_same": [], "ours_first": [], "ours_epoch": []}
        for _ in range(repeats):  # interleaved, so that load from other processes hits both sides
            times["base"].append(_timed(lambda: lance_torch_scan(store)))
            times["base_first"].append(lance_torch_first_batch(store))
            times["base_first_same"].append(lance_torch_first_batch(store, BATCH))
            times["ours_first"].append(cold_loader(store, ts, True))
            times["ours_epoch"].append(cold_loader(store, ts, False))
            times["raw"].append(_timed(lambda: lance_masked_read(store, ts)))
            for s in ("auto", "take", "scan"):
                times[s].append(cold_materialize(store, ts, s))
        med = {k: float(np.median(v)) for k, v in times.items()}
        base = med["base"]
        cold = {s: med[s] for s in ("auto", "take", "scan")}
        out = {
            "lance_torch_full_scan_rows_per_s": rows / base,
            "cold_materialize_selected_rows_per_s": sel / cold["auto"],
            "cold_take_selected_rows_per_s": sel / cold["take"],
            "cold_scan_selected_rows_per_s": sel / cold["scan"],
            "lance_masked_read_selected_rows_per_s": sel / med["raw"],
            "ratio_time_to_selection": base / cold["auto"],
            "ratio_time_to_selection_lance_masked_read": base / med["raw"],
            # the same rows both sides: Lance's masked read of the selection / ours (> 1: ours faster)
            "ratio_materialize_vs_lance_masked_read": med["raw"] / cold["auto"],
            "ratio_rows_per_s": (sel / cold["auto"]) / (rows / base),
            "lance_torch_first_batch_s": med["base_first"],
            "cold_first_batch_s": med["ours_first"],
            "cold_end_of_epoch_s": med["ours_epoch"],
            "lance_torch_end_of_epoch_s": base,
            "ratio_first_batch": med["base_first"] / med["ours_first"],
            # the peer's first batch of the loader's size (BATCH rows, not 65536)
            "lance_torch_first_batch_same_size_s": med["base_first_same"],
            "ratio_first_batch_same_size": med["base_first_same"] / med["ours_first"],
            "ratio_end_of_epoch": base / med["ours_epoch"],
        }
        dl = loader(store, ts, columns=["ts", "x"], batch_size=BATCH, seed=0)
        warm_epoch(dl)
        # an epoch serves every selected row once, the rows the gather below holds
        served = np.sort(np.concatenate([b["key"].numpy() for b in dl]))
        assert np.array_equal(served, np.sort(np.asarray(ts.keys)))
        entry = dl._entry
        tensors = {
            "key": torch.from_numpy(np.array(entry.keys)),
            "ts": torch.from_numpy(np.array(entry.fixed["ts"])),
            "x": torch.from_numpy(np.array(entry.fixed["x"])),
        }
        assert np.array_equal(np.sort(tensors["key"].numpy()), served)
        tensor_gather_epoch(tensors, 0)
        times["warm"], times["gather"], times["gather_drawn"] = [], [], []
        for i in range(max(repeats, 5)):  # interleaved
            times["warm"].append(warm_epoch(dl))
            times["gather"].append(tensor_gather_epoch(tensors, i))
            times["gather_drawn"].append(tensor_gather_epoch(tensors, i, drawn=True))
        ours, gather = float(np.median(times["warm"])), float(np.median(times["gather"]))
        drawn = float(np.median(times["gather_drawn"]))
        orders = order_times(sel, max(repeats, 5))
        out.update(
            {
                "warm_epoch_rows_per_s": sel / ours,
                "tensor_gather_rows_per_s": sel / gather,
                "ratio_warm_vs_gather": gather / ours,
                "ratio_warm_vs_gather_order_drawn_ahead": drawn / ours,
                "warm_epoch_gb_per_s": sel * (16 + 4 * DIM) / ours / 1e9,
                **{f"order_{k}_ms": v * 1e3 for k, v in orders.items()},
            }
        )
        if "kernel" in orders:
            out["ratio_order_kernel_vs_numpy"] = orders["numpy"] / orders["kernel"]
            out["ratio_order_kernel_vs_randperm"] = orders["randperm"] / orders["kernel"]
        print("# seconds per run, median [min - max] of the interleaved repeats:")
        for k, v in times.items():
            print(f"#   {k:<10} {np.median(v):.3f} [{min(v):.3f} - {max(v):.3f}]")
        print("# ratios below are of the medians")
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_cold(rows: int, repeats: int) -> None:
    """Only the cold loader, both read paths (``auto``: the default, takes by row id on this
    local store; ``scan``: Lance's masked scan), interleaved with ``LanceDataset``; prints
    medians and spreads."""
    tmp = tempfile.mkdtemp(prefix="bench-training-")
    try:
        store = make_store(os.path.join(tmp, "store"), rows)
        ts = selection(store, SELECTIVITY, 1)
        lance_torch_scan(store)
        times: dict[str, list[float]] = {}
        for _ in range(repeats):
            times.setdefault("lance_whole_pass", []).append(_timed(lambda: lance_torch_scan(store)))
            times.setdefault("lance_first", []).append(lance_torch_first_batch(store))
            times.setdefault("lance_first_same_size", []).append(lance_torch_first_batch(store, BATCH))
            for s in ("auto", "scan"):
                times.setdefault(f"{s}_first", []).append(cold_loader(store, ts, True, s))
                times.setdefault(f"{s}_epoch", []).append(cold_loader(store, ts, False, s))
        med = {k: float(np.median(v)) for k, v in times.items()}
        for k, v in times.items():
            peer = med["lance_first"] if k.endswith("first") else med["lance_whole_pass"]
            same = ""
            if k.startswith("lance"):  # the peers' own rows: against the 65536-row first batch / whole pass
                peer = med["lance_first"] if "first" in k else med["lance_whole_pass"]
            elif k.endswith("first"):  # and against LanceDataset's first batch of the loader's size
                same = f"; same-size first batch / this: {med['lance_first_same_size'] / med[k]:.2f}"
            print(f"{k:<16} {med[k]:.3f} s [{min(v):.3f} - {max(v):.3f}]  LanceDataset / this: {peer / med[k]:.2f}{same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- asv ----------------------------------------------------------------------------------
class Materialize:
    """Cold materialization of a 25% selection vs a full LanceDataset scan."""

    params = [[10**5, 10**6]]
    param_names = ["rows"]
    timeout = 600

    def setup_cache(self) -> str:
        root = tempfile.mkdtemp(prefix="asv-training-")
        for rows in self.params[0]:
            make_store(os.path.join(root, str(rows)), rows)
        return root

    def setup(self, root: str, rows: int) -> None:
        self.store = Store.open(os.path.join(root, str(rows)))
        self.ts = selection(self.store, SELECTIVITY, 1)

    def time_cold_materialize(self, root: str, rows: int) -> None:
        cold_materialize(self.store, self.ts)

    def time_lance_torch_scan(self, root: str, rows: int) -> None:
        lance_torch_scan(self.store)

    def peakmem_cold_materialize(self, root: str, rows: int) -> None:
        cold_materialize(self.store, self.ts)


class WarmEpoch:
    """A warm shuffled epoch from the cache vs a gather from in-memory torch tensors."""

    params = [[10**5, 10**6]]
    param_names = ["rows"]
    timeout = 600

    def setup_cache(self) -> str:
        return Materialize.setup_cache(self)  # type: ignore[arg-type]

    def setup(self, root: str, rows: int) -> None:
        import torch

        from training.loading import loader

        store = Store.open(os.path.join(root, str(rows)))
        ts = selection(store, SELECTIVITY, 1)
        self.dl = loader(store, ts, columns=["ts", "x"], batch_size=BATCH, seed=0)
        e = self.dl._entry
        self.tensors = {"key": torch.from_numpy(np.array(e.keys)), "ts": torch.from_numpy(np.array(e.fixed["ts"])),
                        "x": torch.from_numpy(np.array(e.fixed["x"]))}

    def time_warm_epoch(self, root: str, rows: int) -> None:
        warm_epoch(self.dl)

    def time_tensor_gather(self, root: str, rows: int) -> None:
        tensor_gather_epoch(self.tensors, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--cold-only", action="store_true", help="only the cold loader, default vs takes")
    ap.add_argument("--kernels", action="store_true",
                    help="load Numba first, as a pipeline or policy process has: epoch orders drawn by engine._shuffle")
    args = ap.parse_args()
    if args.kernels:
        import engine._shuffle  # noqa: F401  (imports Numba)
    print(f"# Numba loaded: {'numba' in sys.modules}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.cold_only:
        run_cold(args.rows, args.repeats)
        return
    res = run(args.rows, args.repeats)
    width = max(len(k) for k in res)
    for k, v in res.items():
        shown = f"{v:,.3f}" if "ratio" in k or v <= 100 else f"{v:,.0f}"
        print(f"{k:<{width}}  {shown}")


if __name__ == "__main__":
    main()


class EpochOrder:
    """An epoch's order of 500,000 positions: the loader's (NumPy's seeded permutation, drawn by
    ``engine._shuffle``'s kernel), NumPy drawing the same array, and ``torch.randperm``."""

    params = [[500_000]]
    param_names = ["n"]

    def setup(self, n: int) -> None:
        import torch

        from engine._shuffle import permutation

        permutation([0, 1], n)  # compiled or loaded from Numba's cache before the timers
        torch.randperm(n, generator=torch.Generator().manual_seed(1))  # (torch's first call sets up)

    def time_kernel(self, n: int) -> None:
        from engine._shuffle import permutation

        permutation([0, 1], n)

    def time_numpy(self, n: int) -> None:
        np.random.default_rng([0, 1]).permutation(n)

    def time_randperm(self, n: int) -> None:
        import torch

        torch.randperm(n, generator=torch.Generator().manual_seed(1))
