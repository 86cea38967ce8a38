"""Check the loader on a CUDA device against the pinned host-to-device bandwidth of the same run.

Builds a store of 272-byte rows (``key`` int64, ``ts`` int64, 64 x float32), materializes a 25%
random selection, and times warm shuffled epochs in two modes:

- ``resident``: the set fits the device-memory budget, is copied once, batches are gathered
  on the device;
- ``streamed``: budget 0, batches are gathered into pinned host buffers and copied
  asynchronously (double buffering).

It also measures the pinned host-to-device copy bandwidth (one large pinned buffer) and prints
each mode's rows/s and GB/s next to it; the target for warm epochs is >= 0.5x of it. Two more
lines say what bounds the modes: the host gather alone (shuffled rows into pinned buffers, the
streamed mode's host work) and the time to draw one epoch's shuffled order. Without
CUDA it runs the same table on the CPU (the "copy" is then a host-to-host copy of a pinned-less
buffer), so the script is checked everywhere::

    python benchmarks/gpu_check.py --rows 2000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_training import DIM, _timed, make_store, selection  # noqa: E402

ROW_BYTES = 8 + 8 + 4 * DIM + 4  # key, ts, x, and the float32 weight served with every batch


def h2d_bandwidth(device: str, nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes/s of copying one pinned host buffer to ``device`` (host-to-host on CPU)."""
    import torch

    cuda = device.startswith("cuda")
    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=cuda)
    src.fill_(1)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src, non_blocking=cuda)
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best


def host_gather_seconds(rows: int, device: str) -> float:
    """Seconds to gather ``rows`` shuffled rows of key, weight, ts and x from host tensors into
    pinned buffers, a run of :data:`training.transfer.RUN_BYTES` at a time (what the streamed
    mode does on the host before each copy)."""
    import numpy as np
    import torch

    from training.transfer import RUN_BYTES

    pin = device.startswith("cuda")
    src = [torch.arange(rows), torch.ones(rows), torch.arange(rows), torch.ones(rows, DIM)]
    per = max(1, RUN_BYTES // ROW_BYTES)
    out = [torch.empty((per, *t.shape[1:]), dtype=t.dtype, pin_memory=pin) for t in src]
    order = torch.from_numpy(np.random.default_rng(0).permutation(rows))
    t0 = time.perf_counter()
    for lo in range(0, rows, per):
        ti = order[lo : lo + per]
        for t, o in zip(src, out):
            torch.index_select(t, 0, ti, out=o[: ti.numel()])
    return time.perf_counter() - t0


def epoch_seconds(dl: object, device: str) -> float:
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = None
    for b in dl:  # type: ignore[attr-defined]
        s = b["x"].sum()  # consume the batch on the device
        acc = s if acc is None else acc + s
    if cuda:
        torch.cuda.synchronize()
    else:
        _ = float(acc) if acc is not None else 0.0
    return time.perf_counter() - t0


def main() -> None:
    import torch

    from training.loading import LoaderOptions, epoch_order, loader

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (no CUDA device)"
    tmp = tempfile.mkdtemp(prefix="gpu-check-")
    try:
        store = make_store(os.path.join(tmp, "store"), args.rows)
        ts = selection(store, 0.25, 1)
        bw = h2d_bandwidth(device)
        print(f"device: {name}; rows: {args.rows}, selected: {ts.size}, batch: {args.batch_size}, "
              f"host threads: {torch.get_num_threads()}")
        print(f"{'mode':<10} {'rows/s':>14} {'GB/s':>8} {'pinned H2D GB/s':>16} {'ratio':>7}")
        modes = {"resident": None, "streamed": 0}
        for mode, budget in modes.items():
            opts = LoaderOptions(device_memory_budget=budget)
            dl = loader(store, ts, columns=["ts", "x"], batch_size=args.batch_size, seed=0, device=device, options=opts)
            epoch_seconds(dl, device)  # warm: cache built, device copy made, kernels loaded
            sec = min(epoch_seconds(dl, device) for _ in range(args.repeats))
            rows_s = ts.size / sec
            gbs = rows_s * ROW_BYTES / 1e9
            label = mode if device == "cuda" else f"{mode}*"
            print(f"{label:<10} {rows_s:>14,.0f} {gbs:>8.2f} {bw / 1e9:>16.2f} {gbs / (bw / 1e9):>7.2f}")
        # the streamed mode's host work alone: shuffled rows gathered into pinned buffers
        sec = min(host_gather_seconds(ts.size, device) for _ in range(args.repeats))
        print(f"host gather into pinned buffers alone: {ts.size / sec:,.0f} rows/s, "
              f"{ts.size * ROW_BYTES / sec / 1e9:.2f} GB/s")
        # the host computes each epoch's shuffled order (both modes; the next epoch's is computed
        # while one is served)
        sec = min(_timed(lambda: epoch_order(ts, 1, shuffle=True, seed=0)) for _ in range(args.repeats))
        print(f"epoch order on the host: {sec * 1e3:.1f} ms per epoch ({ts.size / sec:,.0f} rows/s alone)")
        if device != "cuda":
            print("* no CUDA device: both modes serve from host memory; the copy is host-to-host")
        print(f"target: warm epochs >= 0.5x of the pinned host-to-device bandwidth; rows of {ROW_BYTES} bytes")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
