"""Scale-out figures for docs/scale-out.md: Ray scoring and selection (class quotas too) with 1
and 2 workers, and a store on S3 (moto's local server) against a local folder for append and
as_of.

Run: ``python benchmarks/scale_out.py [--rows N] [--only ray|quota|s3]`` (needs the ray, s3 and
test extras).
Each figure is the best of ``--repeat`` runs after one untimed call of the same side (which, for
Ray, checks that it returns what the single process returns), all sides in the same process and run.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa


def best(fn: Callable[[], Any], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def _rows(n: int, start: int, rng: np.random.Generator) -> pa.Table:
    x = rng.standard_normal((n, 16)).astype(np.float32)
    return pa.table({"key": np.arange(start, start + n), "ts": np.arange(start, start + n),
                     "label": (x[:, 0] > 0).astype(np.int64),
                     "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 16)})


def ray_figures(rows: int, repeat: int) -> list[tuple[str, str, float]]:
    import ray
    import torch

    from modyn_store import Store
    from modyn_store.app.pipeline.ray_exec import _quiet, score_on_ray, select_on_ray
    from policies import Loss, Uniform
    from policies.base import SelectionContext
    from training.scoring import score

    rng = np.random.default_rng(0)
    store = Store.open(tempfile.mkdtemp(prefix="bench-ray-"), create=True)
    for i in range(8):
        store.append(_rows(rows // 8, i * (rows // 8), rng))
    store.delete(keys=np.arange(0, rows, 97))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    snap = store.as_of()
    n = snap.count()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    _quiet()
    out = []
    single = score(store, model, inputs={"input": "x"}, scores=("loss",), write=False)
    out.append(("scoring pass", "single process", n / best(lambda: score(store, model, inputs={"input": "x"},
                                                                         scores=("loss",), write=False), repeat)))
    for w in (1, 2):
        # an untimed first call, as the single process had above, that also checks the result
        on_ray = score_on_ray(store, model, inputs={"input": "x"}, scores=("loss",), write=False, workers=w)
        assert np.array_equal(on_ray.keys, single.keys)
        assert np.allclose(on_ray.values["loss"], single.values["loss"], rtol=1e-5, atol=1e-6)
        out.append(("scoring pass", f"Ray, {w} worker(s)", n / best(
            lambda: score_on_ray(store, model, inputs={"input": "x"}, scores=("loss",), write=False, workers=w),
            repeat)))
    computed = {"loss": (single.keys, single.values["loss"])}
    for strat in (Uniform(ratio=0.1), Loss(ratio=0.1)):
        label = f"selection {strat.name}"
        ctx = SelectionContext(snapshot=snap, seed=1, computed_scores=computed)
        # untimed first calls on both sides, which select the same train set
        assert np.array_equal(select_on_ray(strat, snap, seed=1, scores=computed).keys, strat.select(ctx).keys)
        out.append((label, "single process", n / best(lambda: strat.select(ctx), repeat)))
        out.append((label, "Ray, 2 CPUs", n / best(lambda: select_on_ray(strat, snap, seed=1, scores=computed), repeat)))
    ray.shutdown()
    return out


def quota_figures(rows: int, repeat: int) -> list[tuple[str, str, float]]:
    """``class_balanced(ratio=0.1)`` over 10 skewed classes (the rarest below its share) and
    ``trigger_balanced(ratio=0.1)`` over 8 intervals: one process, then Ray with 1 and 2 CPUs."""
    import ray

    from modyn_store import Store
    from modyn_store.app.pipeline.ray_exec import _quiet, select_on_ray
    from policies import ClassBalanced, TriggerBalanced
    from policies.base import SelectionContext

    rng = np.random.default_rng(2)
    store = Store.open(tempfile.mkdtemp(prefix="bench-quota-"), create=True)
    p = np.array([2.0 ** -i for i in range(10)])
    versions = []
    for i in range(8):
        t = _rows(rows // 8, i * (rows // 8), rng)
        versions.append(store.append(t.append_column("cls", pa.array(rng.choice(10, t.num_rows, p=p / p.sum())))).version)
    store.delete(keys=np.arange(0, rows, 97))
    snap = store.as_of()
    n = snap.count()
    cases = [("selection class_balanced(ratio=0.1), 10 classes", ClassBalanced(ratio=0.1),
              SelectionContext(snapshot=snap, seed=1, label_column="cls")),
             ("selection trigger_balanced(ratio=0.1), 8 intervals", TriggerBalanced(ratio=0.1),
              SelectionContext(snapshot=snap, seed=1, trigger_cutoffs=tuple(versions[:-1])))]
    for _, strat, ctx in cases:  # an untimed first call, as each Ray cluster's below
        strat.select(ctx)
    out = [(label, "single process", n / best(lambda: strat.select(ctx), repeat)) for label, strat, ctx in cases]
    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        _quiet()
        for label, strat, ctx in cases:
            assert np.array_equal(select_on_ray(strat, ctx).keys, strat.select(ctx).keys)
            out.append((label, f"Ray, {cpus} worker(s)", n / best(lambda: select_on_ray(strat, ctx), repeat)))
        ray.shutdown()
    return out


@contextmanager
def local_s3(bucket: str = "bench") -> Iterator[dict[str, str]]:
    """A local S3 endpoint (moto's server in a thread) holding ``bucket``; yields the store's
    ``storage_options`` for it and stops the server afterwards."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        ep = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=ep, aws_access_key_id="t", aws_secret_access_key="t",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        yield {"aws_endpoint": ep, "aws_access_key_id": "t", "aws_secret_access_key": "t",
               "aws_region": "us-east-1", "allow_http": "true"}
    finally:
        server.stop()


def s3_figures(rows: int, repeat: int) -> list[tuple[str, str, float]]:
    from modyn_store import Store

    rng = np.random.default_rng(1)
    out = []
    with local_s3() as opts:
        for where, uri, so in (("local folder", os.path.join(tempfile.mkdtemp(), "s"), None),
                               ("S3 (local moto endpoint)", f"s3://bench/{uuid.uuid4().hex}", opts)):
            store = Store.open(uri, create=True, storage_options=so)
            start = [0]

            def append() -> None:
                store.append(_rows(rows, start[0], rng))
                start[0] += rows

            out.append((f"append {rows} rows", where, best(append, repeat)))
            out.append(("as_of(1).count()", where,
                        best(lambda: Store.open(uri, storage_options=so).as_of(1).count(), repeat)))
            out.append(("as_of(1).to_table(['x'])", where, best(lambda: store.as_of(1).to_table(["x"]), repeat)))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", choices=["ray", "quota", "s3"], action="append",
                   help="run only these groups of figures (repeatable; default: all)")
    a = p.parse_args()
    only = set(a.only or ["ray", "quota", "s3"])
    for group, fn in (("ray", ray_figures), ("quota", quota_figures)):
        if group in only:
            for what, side, value in fn(a.rows, a.repeat):
                print(f"| {what} | {side} | {value:,.0f} rows/s |", flush=True)
    if "s3" in only:
        for what, side, value in s3_figures(a.rows // 4, a.repeat):
            print(f"| {what} | {side} | {value * 1000:,.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
