"""Streaming top-k, class-balanced quota and samplers with a large k, fed in chunks, vs NumPy on the whole array.

    python benchmarks/stream_merge.py            # k = budget = 10^6 over 60 chunks of 2^20 rows
    python benchmarks/stream_merge.py --k 1000 --chunks 4 --chunk 4096    # a quick run

Ours: ``engine.TopK(k)``, ``engine.BalancedSelector(budget, rule="top")``,
``engine.sample.UniformSampler(k)`` (keys) and ``engine.sample.WeightedSampler(k)`` fed chunk by
chunk (what a store scan does). Peer: the same rows held in memory at once, ``np.argpartition``
for the top-k, a per-class ``np.argpartition`` with the same quotas (``engine.allocate_quotas``)
for the quota, ``Generator.choice(n, k, replace=False)`` of positions for the uniform sample and
NumPy's Efraimidis-Spirakis (``Generator.exponential(n) / w``, then ``np.argpartition``) for the
weighted one. Kernels are compiled before timing; one run each, printed as seconds and ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(k: int = 10**6, chunks: int = 60, chunk: int = 1 << 20) -> None:
    import engine

    rng = np.random.default_rng(0)
    scores = [rng.random(chunk) for _ in range(chunks)]
    labels = [rng.integers(0, 10, chunk) for _ in range(chunks)]
    warm_t, warm_q = engine.TopK(1000), engine.BalancedSelector(1000, rule="top")
    warm_t.update(scores[0], keys=np.arange(chunk))
    warm_q.update(labels[0], keys=np.arange(chunk), scores=scores[0].astype(np.float32))
    warm_t.result(), warm_q.result()

    t = time.perf_counter()
    acc = engine.TopK(k)
    for c, s in enumerate(scores):
        acc.update(s, keys=np.arange(c * chunk, (c + 1) * chunk))
    acc.result()
    ours_top = time.perf_counter() - t
    t = time.perf_counter()
    sel = engine.BalancedSelector(k, rule="top")
    for c, (g, s) in enumerate(zip(labels, scores)):
        sel.update(g, keys=np.arange(c * chunk, (c + 1) * chunk), scores=s.astype(np.float32))
    sel.result()
    ours_quota = time.perf_counter() - t

    all_s, all_g = np.concatenate(scores), np.concatenate(labels)
    t = time.perf_counter()
    np.argpartition(all_s, all_s.size - k)[all_s.size - k:]
    peer_top = time.perf_counter() - t
    t = time.perf_counter()
    counts = np.bincount(all_g, minlength=10)
    quotas = engine.allocate_quotas(counts, k)
    for cls, q in enumerate(quotas):
        idx = np.flatnonzero(all_g == cls)
        if q:
            idx[np.argpartition(all_s[idx], idx.size - q)[idx.size - q:]]
    peer_quota = time.perf_counter() - t
    n = chunks * chunk
    print(f"rows {n:,}, k = budget = {k:,}, chunks of {chunk:,}")
    print(f"top-k:  TopK streamed {ours_top:.2f} s, np.argpartition in memory {peer_top:.2f} s, ratio {peer_top / ours_top:.2f}")
    print(f"quota:  BalancedSelector streamed {ours_quota:.2f} s, per-class argpartition in memory {peer_quota:.2f} s, "
          f"ratio {peer_quota / ours_quota:.2f}")
    _samplers(scores, k, chunk)


def _samplers(scores: list[np.ndarray], k: int, chunk: int) -> None:
    from engine.sample import UniformSampler, WeightedSampler

    keys = [np.arange(c * chunk, (c + 1) * chunk, dtype=np.int64) for c in range(len(scores))]
    UniformSampler(10, seed=0).update(keys[0])  # compiled before the timer
    WeightedSampler(10, seed=0).update(scores[0])
    t = time.perf_counter()
    u = UniformSampler(k, seed=1)
    for kk in keys:
        u.update(kk)
    u.result()
    ours_u = time.perf_counter() - t
    t = time.perf_counter()
    ws = WeightedSampler(k, seed=1)
    for kk, w in zip(keys, scores):
        ws.update(w, keys=kk)
    ws.result()
    ours_w = time.perf_counter() - t
    all_w = np.concatenate(scores)
    gen = np.random.default_rng(1)
    t = time.perf_counter()
    gen.choice(all_w.size, k, replace=False)
    peer_u = time.perf_counter() - t
    t = time.perf_counter()
    np.argpartition(gen.exponential(size=all_w.size) / all_w, k)[:k]
    peer_w = time.perf_counter() - t
    print(f"uniform:  UniformSampler streamed {ours_u:.2f} s, Generator.choice in memory {peer_u:.2f} s, "
          f"ratio {peer_u / ours_u:.2f}")
    print(f"weighted: WeightedSampler streamed {ours_w:.2f} s, NumPy Efraimidis-Spirakis in memory {peer_w:.2f} s, "
          f"ratio {peer_w / ours_w:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10**6, help="k of the top-k and samplers, budget of the quota")
    ap.add_argument("--chunks", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=1 << 20, help="rows per chunk")
    a = ap.parse_args()
    main(a.k, a.chunks, a.chunk)
