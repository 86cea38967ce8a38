"""What progress checkpoints cost a training: ``train(..., save_every=N)`` against the same
training without them (``save_every=0``), in one run on the same store.

A store of ``--rows`` rows with a ``--dim``-float feature vector is trained on by an MLP with
``--hidden`` units per layer (Adam: its optimizer state doubles what a save writes) for
``--epochs`` epochs; each ``--save-every`` value is timed ``--repeat`` times (best run kept),
alternating with the run without saves. Printed: seconds per training, the ratio to the run
without saves, the number of saves, the time a save adds and the bytes it writes.

    python benchmarks/progress_saves.py --rows 200000 --dim 64 --hidden 512 --epochs 2 --save-every 50 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def _store(path: str, rows: int, dim: int):  # type: ignore[no-untyped-def]
    from modyn_store import Store

    store = Store.open(path, create=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(rows), "label": (x[:, 0] > 0).astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim)}))
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--save-every", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--folder", default=None, help="where the store goes (default: a temporary folder)")
    args = ap.parse_args()

    import torch

    from modyn_store import TrainSet
    from training.progress import discard_progress
    from training.trainer import TrainConfig, train

    torch.set_num_threads(1)
    folder = args.folder or tempfile.mkdtemp(prefix="progress-bench-")
    store = _store(str(Path(folder) / "store"), args.rows, args.dim)
    ts = TrainSet.uniform(store.as_of(None).keys(), version=store.version)
    cfg = TrainConfig(model="mlp", model_params={"in_features": args.dim, "n_classes": 2,
                                                 "hidden": [args.hidden, args.hidden]},
                      inputs={"features": "x"}, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3)
    batches = args.epochs * -(-args.rows // args.batch_size)
    runs = [0, *args.save_every]
    best = {n: float("inf") for n in runs}
    size = {n: 0 for n in runs}
    counter = [0]

    def once(every: int) -> float:
        counter[0] += 1
        tid = f"b{counter[0]}"
        t0 = time.perf_counter()
        if every:
            from training import progress

            real, sizes = progress.Progress.save, []

            def save(self, *a, **k):  # type: ignore[no-untyped-def]
                real(self, *a, **k)
                sizes.append(Path(store.path(self._ref.uri)).stat().st_size)

            progress.Progress.save = save  # type: ignore[method-assign]
            try:
                train(store, ts, cfg, training_id=tid, save_every=every, record=False)
            finally:
                progress.Progress.save = real  # type: ignore[method-assign]
            size[every] = max(sizes, default=0)
        else:
            train(store, ts, cfg, training_id=tid, record=False)
        took = time.perf_counter() - t0
        discard_progress(store, tid)
        return took

    once(0)  # warm: the train set's cache entry is built by the first training
    for _ in range(args.repeat):
        for n in runs:
            best[n] = min(best[n], once(n))
    params = sum(p.numel() for p in __import__("training.models", fromlist=["build_model"]).build_model(
        "mlp", in_features=args.dim, n_classes=2, hidden=[args.hidden, args.hidden]).parameters())
    print(f"| {args.rows:,} rows x {args.epochs} epochs = {batches:,} batches of {args.batch_size}, MLP "
          f"{params:,} parameters, Adam, 1 thread | s a training | vs no saves | saves | ms a save | MB a save |")
    print("|---|---|---|---|---|---|")
    print(f"| save_every=0 | {best[0]:.2f} | 1.00 | 0 | - | - |")
    for n in args.save_every:
        saves = batches // n
        extra = (best[n] - best[0]) / saves * 1e3 if saves else float("nan")
        print(f"| save_every={n} | {best[n]:.2f} | {best[n] / best[0]:.3f} | {saves} | {extra:.1f} | "
              f"{size[n] / 1e6:.2f} |")


if __name__ == "__main__":
    main()
