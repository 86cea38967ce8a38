"""Nearest-neighbour queries over 10^6 embeddings (d=64): LanceDB IVF-PQ index vs exact brute force.

Data: 10^6 float32 vectors around 1,000 Gaussian cluster centres (seeded), 200 queries near
random stored vectors. Exact baselines, same process and run: NumPy brute force one query at a
time (what a neighbour lookup inside a selection loop does) and batched over all queries
(one ``[200, 10^6]`` distance matrix in chunks: the strongest exact baseline). The index:
``modyn_store.core.vectors.VectorIndex`` (LanceDB IVF-PQ, ``nprobes`` partitions searched,
candidates re-ranked by exact distance with ``refine_factor``), queried one at a time and as one
batch. Recall@10 against the exact answer.

Run (under the heavy lock; about 3 minutes on 2 cores)::

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
    ap.add_argument("--sub-vectors", type=int, default=16)
    ap.add_argument("--nprobes", type=int, default=32)
    ap.add_argument("--refine", type=int, default=10)
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
    index = VectorIndex.from_arrays(keys, base, kind="ivf_pq", num_partitions=args.partitions,
                                    num_sub_vectors=args.sub_vectors, nprobes=args.nprobes,
                                    refine_factor=args.refine)
    build = index.build_seconds
    index.search(qs[:5], k=k)  # warm the index cache
    t0 = time.perf_counter()
    got = np.vstack([index.search(q, k=k)[0] for q in qs])
    t_index_one = (time.perf_counter() - t0) / len(qs)
    t0 = time.perf_counter()
    got_b, _ = index.search(qs, k=k)
    t_index_batch = (time.perf_counter() - t0) / len(qs)
    recall = float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(got, truth)]))
    recall_b = float(np.mean([np.intersect1d(a, b).size / k for a, b in zip(got_b, truth)]))
    index.close()
    print(f"n={args.n} d={args.d} queries={args.queries} k={k} partitions={args.partitions} "
          f"sub_vectors={args.sub_vectors} nprobes={args.nprobes} refine_factor={args.refine}")
    print(f"index build (table + IVF-PQ): {build:.1f} s")
    print(f"exact brute force, one query at a time: {t_exact_one * 1e3:.2f} ms/query")
    print(f"exact brute force, batched: {t_exact_batch * 1e3:.2f} ms/query")
    print(f"LanceDB IVF-PQ, one query at a time: {t_index_one * 1e3:.2f} ms/query, recall@{k} {recall:.3f}, "
          f"{t_exact_one / t_index_one:.1f}x faster than one-at-a-time exact")
    print(f"LanceDB IVF-PQ, batched: {t_index_batch * 1e3:.2f} ms/query, recall@{k} {recall_b:.3f}, "
          f"{t_exact_batch / t_index_batch:.1f}x vs batched exact")


if __name__ == "__main__":
    main()
