"""Requests a store on S3 sends per operation, against raw Lance doing the same reads and writes.

On object storage a request costs a round trip (10-30 ms on S3 from another region's machine,
a few ms within one), so the count of requests bounds an operation's latency where its bytes do
not. The script starts moto's S3 server in this process behind a WSGI wrapper that counts every
request by sender (``lance``: Lance's Rust client; ``store``: the store's own files through
fsspec/s3fs) and by kind (``HEAD``, ``GET``, ``LIST``, ``PUT``, ``DELETE``, ``POST``), then runs
each operation once after one untimed warm-up of the same kind (the counts of a second run
are the same; the first open of a process also reads what it keeps), and prints a table.

What each side does, on the same rows (``key`` int64, ``ts`` int64, ``x`` 16 x float32):

- **store**: a store built by ``--versions`` appends of ``--rows`` rows and a delete of 1%;
  ``Store.open`` in a fresh handle, ``as_of(latest).keys()``, ``as_of(first).keys()``,
  ``to_table(["ts", "x"])`` of the latest version, an ``append`` of 1,000 rows, a delete of
  10 keys.
- **raw Lance**: a dataset of the same rows written by the same appends and a
  ``LanceDataset.delete`` of the same 1%; ``lance.dataset(uri)``, its ``key`` column (its
  deletion files applied), an old version's ``key`` column (``version=``), ``to_table`` of
  ``ts`` and ``x``, ``write_dataset(mode="append")`` of the same 1,000 rows, ``delete`` of the
  same 10 keys.

Run::

    python benchmarks/s3_requests.py --rows 100000 --versions 10

Needs the ``s3`` and ``test`` extras (s3fs, moto, boto3). Timings are printed too, but they are
moto's in-process latency (well under a millisecond a request), not an object store's.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

KINDS = ("HEAD", "GET", "LIST", "PUT", "POST", "DELETE")


class Counting:
    """A WSGI wrapper that counts requests by (sender, kind) while ``on`` is set."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.counts: Counter[tuple[str, str]] = Counter()
        self.on = False
        self.trace: list[str] | None = None  # the store's requests, when kept
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.on:
            method = environ.get("REQUEST_METHOD", "")
            query = environ.get("QUERY_STRING", "")
            kind = "LIST" if method == "GET" and "list-type=2" in query else method  # ListObjectsV2
            agent = environ.get("HTTP_USER_AGENT", "").lower()
            sender = "store" if ("botocore" in agent or "s3fs" in agent) else "lance"
            with self._lock:
                self.counts[(sender, kind)] += 1
                if self.trace is not None and sender == "store":
                    self.trace.append(f"{kind} {str(environ.get('PATH_INFO', ''))}?{query!s}")
        return self.app(environ, start_response)

    @contextmanager
    def counting(self) -> Iterator[Counter[tuple[str, str]]]:
        """Count the requests of the block; the counter is filled when the block ends."""
        out: Counter[tuple[str, str]] = Counter()
        with self._lock:
            self.counts.clear()
        self.on = True
        try:
            yield out
        finally:
            self.on = False
            with self._lock:
                out.update(self.counts)


def start_server() -> tuple[str, Counting, Any]:
    """A moto S3 server in a thread behind :class:`Counting`: ``(endpoint, counter, server)``."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    wrapper = Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, wrapper, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}", wrapper, server


def rows(n: int, start: int, rng: np.random.Generator) -> pa.Table:
    x = rng.standard_normal((n, 16)).astype(np.float32)
    return pa.table({"key": np.arange(start, start + n), "ts": np.arange(start, start + n),
                     "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 16)})


def measure(n_rows: int, versions: int, trace: bool = False) -> list[tuple[str, str, Counter[tuple[str, str]], float]]:
    import boto3
    import lance

    from modyn_store import Store

    endpoint, counter, server = start_server()
    counter.trace = [] if trace else None
    opts = {"aws_endpoint": endpoint, "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "aws_region": "us-east-1", "allow_http": "true"}
    bucket = f"bench-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    rng = np.random.default_rng(0)
    batches = [rows(n_rows, i * n_rows, rng) for i in range(versions)]
    total = versions * n_rows
    dead = "key % 100 = 0"
    store_uri, lance_uri = f"s3://{bucket}/store", f"s3://{bucket}/lance"
    store = Store.open(store_uri, create=True, storage_options=opts)
    for b in batches:
        store.append(b)
        lance.write_dataset(b, lance_uri, mode="append" if b is not batches[0] else "create",
                            storage_options=opts)
    store.delete(where=dead)
    lance.dataset(lance_uri, storage_options=opts).delete(dead)
    first_store, first_lance = 1, 1
    extra = [rows(1000, total + 1000 * i, rng) for i in range(4)]
    out: list[tuple[str, str, Counter[tuple[str, str]], float]] = []

    def run(what: str, side: str, fn: Callable[[], Any], warm: Callable[[], Any] | None = None) -> Any:
        (warm or fn)()
        if counter.trace is not None:
            counter.trace.clear()
        with counter.counting() as got:
            t0 = time.perf_counter()
            res = fn()
            dt = time.perf_counter() - t0
        out.append((what, side, got, dt))
        if counter.trace:
            print(f"-- {what}, {side}: the store's own requests", *counter.trace, sep="\n   ")
        return res

    def open_store() -> Any:
        return Store.open(store_uri, storage_options=opts)

    def open_lance() -> Any:
        return lance.dataset(lance_uri, storage_options=opts)

    s, d = open_store(), open_lance()
    a = run("open", "store", open_store)
    b = run("open", "raw Lance", open_lance)
    del a, b
    ks = run("keys of the latest version", "store", lambda: s.as_of().keys())
    kl = run("keys of the latest version", "raw Lance",
             lambda: open_lance().to_table(columns=["key"]).column("key").to_numpy())
    assert np.array_equal(np.sort(ks), np.sort(kl)), "both sides read the same live keys"
    run("keys of the first version", "store", lambda: s.as_of(first_store).keys())
    run("keys of the first version", "raw Lance",
        lambda: lance.dataset(lance_uri, version=first_lance, storage_options=opts).to_table(columns=["key"]))
    run("to_table(ts, x) of the latest version", "store", lambda: s.as_of().to_table(columns=["ts", "x"]))
    run("to_table(ts, x) of the latest version", "raw Lance",
        lambda: open_lance().to_table(columns=["ts", "x"]))
    it = iter(extra)
    run("append 1,000 rows", "store", lambda: s.append(next(it)))
    it2 = iter(extra)
    run("append 1,000 rows", "raw Lance",
        lambda: lance.write_dataset(next(it2), lance_uri, mode="append", storage_options=opts))
    gone = iter(range(1, 20))
    run("delete 10 keys", "store", lambda: s.delete(where=f"key % 1000 = {next(gone)}"))
    gone2 = iter(range(1, 20))
    run("delete 10 keys", "raw Lance", lambda: open_lance().delete(f"key % 1000 = {next(gone2)}"))
    server.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows per version")
    ap.add_argument("--versions", type=int, default=10, help="appends before the delete")
    ap.add_argument("--trace", action="store_true", help="print each of the store's own requests")
    args = ap.parse_args()
    got = measure(args.rows, args.versions, args.trace)
    print(f"rows per version {args.rows}, versions {args.versions} (+ a delete of 1%)")
    print(f"{'operation':40} {'side':10} {'requests':>8}  " + " ".join(f"{k:>6}" for k in KINDS)
          + "  store's own  moto ms")
    for what, side, counts, dt in got:
        per_kind = {k: sum(v for (_, kk), v in counts.items() if kk == k) for k in KINDS}
        own = sum(v for (sender, _), v in counts.items() if sender == "store")
        print(f"{what:40} {side:10} {sum(counts.values()):8d}  " + " ".join(f"{per_kind[k]:6d}" for k in KINDS)
              + f"  {own:11d}  {dt * 1e3:7.1f}")


if __name__ == "__main__":
    main()
