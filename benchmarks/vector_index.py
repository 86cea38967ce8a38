"""Nearest-neighbour queries over 10^6 embeddings (d=64): LanceDB IVF-PQ index vs exact brute force.

Data: 10^6 float32 vectors around 1,000 Gaussian cluster centres (seeded), 200 queries near
random stored vectors. Exact baselines, same process and run: NumPy brute force one query at a
time (what a neighbour lookup inside a selection loop does) and batched over all queries
(one ``[200, 10^6]`` distance matrix in chunks: the strongest exact baseline). The index:
``modyn_store.core.vectors.VectorIndex`` (LanceDB IVF-PQ, ``nprobes`` partitions searched,
candidates re-ranked by exact distance with ``refine_factor``), queried one at a time and as one
batch. Recall@10 against the exact answer.

Run (about 5 minutes on 2 cores, peak memory about 1.7 GB)::

    flock /tmp/modyn-heavy.lock python benchmarks/vector_index.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def data(n: int, d: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(1000, d)).astype(np.float32) * 3
    base = centers[rng.integers(0, 1000, n)] + rng.normal(size=(n, d)).astype(np.float32)
    q = base[rng.choice(n, n_queries, replace=False)] + 0.3 * rng.normal(size=(n_queries, d)).astype(np.float32)
    return np.ascontiguousarray(base, dtype=np.float32), np.ascontiguousarray(q, dtype=np.float32)


def exact_one(base: np.ndarray, norms: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    d2 = norms - 2.0 * (base @ q)
    idx = np.argpartition(d2, k)[:k]
    return idx[np.argsort(d2[idx])]


def exact_batch(base: np.ndarray, norms: np.ndarray, qs: np.ndarray, k: int, chunk: int = 50) -> np.ndarray:
    out = []
    for s in range(0, qs.shape[0], chunk):
        d2 = norms[None, :] - 2.0 * (qs[s:s + chunk] @ base.T)
        idx = np.argpartition(d2, k, axis=1)[:, :k]
        rows = np.arange(idx.shape[0])[:, None]
        out.append(idx[rows, np.argsort(d2[rows, idx], axis=1)])
    return np.vstack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=1024)
    ap.add_argument("--sub-vectors", type=int, default=32)
    ap.add_argument("--kinds", nargs="*", default=["hnsw", "ivf_pq"])
    ap.add_argument("--sweep", type=lambda v: tuple(int(x) for x in v.split(":")), nargs="*",
                    default=[(8, 0), (16, 0), (32, 0), (8, 2)],
                    help="nprobes:refine_factor pairs queried on the one index")
    args = ap.parse_args()
    from modyn_store.core.vectors import VectorIndex

    base, qs = data(args.n, args.d, args.queries)
    norms = (base.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
    k = args.k

    t0 = time.perf_counter()
    truth = np.vstack([exact_one(base, norms, q, k) for q in qs])
    t_exact_one = (time.perf_counter() - t0) / len(qs)
    t0 = time.perf_counter()
    truth_b = exact_batch(base, norms, qs, k)
    t_exact_batch = (time.perf_counter() - t0) / len(qs)
    assert np.mean([np.intersect1d(a, b).size for a, b in zip(truth, truth_b)]) > k - 0.05

    keys = np.arange(args.n, dtype=np.int64)
    print(f"n={args.n} d={args.d} queries={args.queries} k={k}")
    print(f"exact brute force, one query at a time: {t_exact_one * 1e3:.2f} ms/query")
    print(f"exact brute force, batched: {t_exact_batch * 1e3:.2f} ms/query", flush=True)
    for kind in args.kinds:
        index = VectorIndex.from_arrays(keys, base, kind=kind, num_partitions=args.partitions,
                                        num_sub_vectors=args.sub_vectors)
        print(f"{kind} (partitions={args.partitions}, sub_vectors={args.sub_vectors}) build: "
              f"{index.build_seconds:.1f} s", flush=True)
        for nprobes, refine in args.sweep:
            # re-time the exact baselines next to each measurement: the shared machine's load drifts
            t0 = time.perf_counter()
            for q in qs[:50]:
                exact_one(base, norms, q, k)
            t_exact_one = (time.perf_counter() - t0) / 50
            t0 = time.perf_counter()
            exact_batch(base, norms, qs[:50], k)
            t_exact_batch = (time.perf_counter() - t0) / 50
            index.nprobes, index.refine_factor = nprobes, refine
            index.search(qs[:5], k=k)  # warm the index cache
            t0 = time.perf_counter()
            got = np.vstack([index.search(q, k=k)[0] for q in qs])
            t_one = (time.perf_counter() - t0) / len(qs)
            t0 = time.perf_counter()
            got_b, _ = index.search(qs, k=k)
            t_batch = (time.perf_counter() - t0) / len(qs)
            recall = float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(got, truth)]))
            recall_b = float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(got_b, truth)]))
            print(f"{kind} nprobes={nprobes} refine_factor={refine}: one at a time {t_one * 1e3:.2f} ms/query "
                  f"(recall@{k} {recall:.3f}, {t_exact_one / t_one:.1f}x vs one-at-a-time exact); batched "
                  f"{t_batch * 1e3:.2f} ms/query (recall@{k} {recall_b:.3f}, "
                  f"{t_exact_batch / t_batch:.1f}x vs batched exact; exact re-timed alongside: "
                  f"{t_exact_one * 1e3:.1f} / {t_exact_batch * 1e3:.1f} ms/query)", flush=True)
        index.close()


if __name__ == "__main__":
    main()
