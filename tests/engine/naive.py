"""Slow, obvious references for the engine's kernels: plain Python, NumPy and SciPy.

Where a kernel draws random numbers, the reference re-implements the engine's SplitMix64 with
Python integers, so the two can be compared exactly; the statistical tests compare against
NumPy's own samplers instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.spatial.distance
import scipy.special
import scipy.stats

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


# ------------------------------------------------------------------------------------ randomness


def mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def seed_state(seed: int) -> int:
    return mix((seed + GOLDEN) & MASK)


def hash_key(state: int, key: int) -> int:
    return mix((state + (key & MASK) * GOLDEN) & MASK)


def to_open01(x: int) -> float:
    return min(((x >> 11) + 0.5) * 2.0**-53, 1.0 - 2.0**-53)


class Stream:
    """The engine's sequential generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed_state(seed)

    def u64(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        return mix(self.state)

    def u01(self) -> float:
        return to_open01(self.u64())


# ------------------------------------------------------------------------------------- selection


def top_k(scores: Sequence[float], k: int, keys: Sequence[int] | None = None, largest: bool = True) -> list[int]:
    """Positions of the k best non-NaN scores, best first; ties: smaller key."""
    s = np.asarray(scores)
    kk = list(range(len(s))) if keys is None else [int(v) for v in keys]
    rows = [i for i in range(len(s)) if not (s.dtype.kind == "f" and math.isnan(s[i]))]
    sign = -1 if largest else 1
    rows.sort(key=lambda i: (sign * s[i].item(), kk[i]))
    return rows[:k]


def uniform_sample(n: int, k: int, seed: int, keys: Sequence[int] | None = None) -> list[int]:
    st = seed_state(seed)
    kk = list(range(n)) if keys is None else [int(v) for v in keys]
    ranks = [hash_key(st, kk[i]) >> 1 for i in range(n)]
    rows = sorted(range(n), key=lambda i: (-ranks[i], kk[i]))[:k]
    return sorted(rows)


def weighted_sample(w: Sequence[float], k: int, seed: int,
                    keys: Sequence[int] | None = None) -> tuple[list[int], list[float]]:
    """Efraimidis-Spirakis with the engine's per-key uniforms; importance W / (n w_i)."""
    st = seed_state(seed)
    n = len(w)
    kk = list(range(n)) if keys is None else [int(v) for v in keys]
    es = {}
    for i in range(n):
        if w[i] > 0:
            lu = math.log(to_open01(hash_key(st, kk[i])))
            key = lu / w[i]
            # a key below the float64 range (a tiny weight) ranks below every finite key, by
            # log(-log u) - log w (smaller is better), quantized as the engine stores it
            es[i] = (1, key) if key != -math.inf else (0, math.floor((800.0 - (math.log(-lu) - math.log(w[i]))) * 2.0**44))
    rows = sorted(sorted(es, key=lambda i: (-es[i][0], -es[i][1], kk[i]))[:k])
    total = float(np.sum(np.asarray(w, dtype=np.float64)))
    return rows, [total / (n * w[i]) for i in rows]


def reservoir(items: Sequence[int], k: int, seed: int) -> list[int]:
    """Li's Algorithm L, step by step, with the engine's stream."""
    rng = Stream(seed)
    res: list[int] = []
    n = len(items)
    if k == 0:
        return []
    res = list(items[:k])
    if n <= k:
        return sorted(res)

    def skip(w: float) -> int:
        return int(math.floor(math.log(rng.u01()) / math.log1p(-w)) + 1.0)

    w = math.exp(math.log(rng.u01()) / k)
    i = k - 1 + skip(w)
    while i < n:
        res[int(to_open01(rng.u64()) * k)] = items[i]
        w *= math.exp(math.log(rng.u01()) / k)
        i += skip(w)
    return sorted(res)


def allocate_quotas(counts: Sequence[int], budget: int) -> list[int]:
    """Round-robin: one unit per unsaturated group per round, groups in order."""
    q = [0] * len(counts)
    left = budget
    while left > 0 and any(q[g] < counts[g] for g in range(len(counts))):
        for g in range(len(counts)):
            if left == 0:
                break
            if q[g] < counts[g]:
                q[g] += 1
                left -= 1
    return q


def _quota_ranks(n: int, rule: str, scores, timestamps, keys, seed: int):  # type: ignore[no-untyped-def]
    """Keys, per-row rank (larger is better) and eligibility, as the quota kernels rank rows."""
    kk = list(range(n)) if keys is None else [int(v) for v in keys]
    if rule == "uniform":
        st = seed_state(seed)
        return kk, [hash_key(st, kk[i]) >> 1 for i in range(n)], [True] * n
    if rule == "top":
        rank = [float(v) for v in scores]
        return kk, rank, [not math.isnan(v) for v in rank]
    return kk, [int(v) for v in timestamps], [True] * n


def balanced_select(groups: Sequence[int], budget: int, rule: str, *,  # type: ignore[no-untyped-def]
                    scores=None, timestamps=None, keys=None, seed: int = 0) -> list[int]:
    n = len(groups)
    kk, rank, ok = _quota_ranks(n, rule, scores, timestamps, keys, seed)
    labels = sorted({int(groups[i]) for i in range(n) if ok[i]})
    members = {g: [i for i in range(n) if ok[i] and int(groups[i]) == g] for g in labels}
    quotas = allocate_quotas([len(members[g]) for g in labels], budget)
    return _best_per_group(members, labels, quotas, rank, kk)


def _best_per_group(members, labels, quotas, rank, kk) -> list[int]:  # type: ignore[no-untyped-def]
    out: list[int] = []
    for g, q in zip(labels, quotas):
        out += sorted(members.get(g, []), key=lambda i: (-rank[i], kk[i]))[:q]
    return sorted(out)


def select_quotas(groups: Sequence[int], labels: Sequence[int], quotas: Sequence[int], rule: str, *,  # type: ignore[no-untyped-def]
                  scores=None, timestamps=None, keys=None, seed: int = 0) -> list[int]:
    """The best ``quotas[i]`` rows of group ``labels[i]`` (rank desc, key asc); other groups: none."""
    n = len(groups)
    kk, rank, ok = _quota_ranks(n, rule, scores, timestamps, keys, seed)
    members: dict[int, list[int]] = {}
    for i in range(n):
        if ok[i]:
            members.setdefault(int(groups[i]), []).append(i)
    return _best_per_group(members, [int(v) for v in labels], [int(q) for q in quotas], rank, kk)


# ------------------------------------------------------------------------------------------ sets


def isin(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return np.isin(values, keys)


def semi_join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[np.isin(a, b)]


def anti_join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[~np.isin(a, b)]


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.union1d(a, b).astype(np.int64)


def latest_per_key(keys: Sequence[int], versions: Sequence[int], as_of: int | None) -> dict[int, int]:
    """key -> winning row: highest version <= as_of, then the later row."""
    best: dict[int, int] = {}
    for i, (k, v) in enumerate(zip(keys, versions)):
        if as_of is not None and v > as_of:
            continue
        j = best.get(int(k))
        if j is None or (v, i) >= (versions[j], j):
            best[int(k)] = i
    return dict(sorted(best.items()))


# ---------------------------------------------------------------------------------------- scores


def _finite_rows(z: np.ndarray) -> np.ndarray:
    return np.isfinite(z).all(axis=1)


def scores(kind: str, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape[0], np.nan)
    ok = _finite_rows(z)
    zz = z[ok]
    logp = scipy.special.log_softmax(zz, axis=1)
    p = np.exp(logp)
    if kind == "loss":
        v = -logp[np.arange(zz.shape[0]), y[ok]]
    elif kind == "least_confidence":
        v = 1.0 - p.max(axis=1)
    elif kind == "entropy":
        v = scipy.stats.entropy(p, axis=1) if zz.shape[0] else np.empty(0)
    elif kind == "margin":
        ps = -np.sort(-p, axis=1)
        v = ps[:, 0] - (ps[:, 1] if p.shape[1] > 1 else 0.0)
    else:
        onehot = np.eye(z.shape[1])[y[ok]]
        v = np.linalg.norm(p - onehot, axis=1)
    out[ok] = v
    return out


# ----------------------------------------------------------------------------------------- drift


def median_sigma(z: np.ndarray) -> float:
    d = scipy.spatial.distance.pdist(z)
    med = float(np.median(d)) if d.size else 0.0
    return med if med > 0 else 1.0


def rbf(z: np.ndarray, sigma: float) -> np.ndarray:
    d2 = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(z, "sqeuclidean"))
    return np.exp(-d2 / (2.0 * sigma * sigma))


def mmd2_from_kernel(k: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> float:
    n, m = ix.size, iy.size
    kxx = k[np.ix_(ix, ix)]
    kyy = k[np.ix_(iy, iy)]
    kxy = k[np.ix_(ix, iy)]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2.0 * kxy.mean())


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigma: float | None = None) -> float:
    z = np.concatenate([x, y])
    k = rbf(z, median_sigma(z) if sigma is None else sigma)
    return mmd2_from_kernel(k, np.arange(len(x)), np.arange(len(x), len(z)))


def mmd_permutation_test(x: np.ndarray, y: np.ndarray, perms: np.ndarray,
                         sigma: float | None = None) -> tuple[float, float]:
    """The straightforward implementation: one kernel matrix, then each permutation's index sets.

    ``perms[p]`` holds the pooled positions assigned to the first sample by permutation p.
    """
    z = np.concatenate([x, y])
    k = rbf(z, median_sigma(z) if sigma is None else sigma)
    n = len(x)
    observed = mmd2_from_kernel(k, np.arange(n), np.arange(n, len(z)))
    hits = 0
    for ix in perms:
        iy = np.setdiff1d(np.arange(len(z)), ix)
        # ties within the documented rounding allowance count as equal
        hits += mmd2_from_kernel(k, np.sort(ix), iy) >= observed - 2.0**-40 * len(z)
    return observed, (1.0 + hits) / (1.0 + len(perms))


def mmd_permutation_numpy(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int) -> tuple[float, float]:
    """The benchmark's baseline: NumPy distances and kernel, ``Generator.permutation`` per round."""
    z = np.concatenate([x, y])
    sq = (z * z).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    iu = np.triu_indices(len(z), 1)
    sigma = float(np.median(np.sqrt(d2[iu])))
    k = np.exp(-d2 / (2.0 * sigma * sigma))
    n = len(x)
    observed = mmd2_from_kernel(k, np.arange(n), np.arange(n, len(z)))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_permutations):
        p = rng.permutation(len(z))
        hits += mmd2_from_kernel(k, p[:n], p[n:]) >= observed
    return observed, (1.0 + hits) / (1.0 + n_permutations)


def mmd_permutation_matmul(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int,
                           perms: np.ndarray | None = None, *, lean: bool = False) -> tuple[float, float]:
    """The plain-NumPy version with the matmul trick (the benchmark's peer): BLAS distances, the
    median of the upper triangle, one ``np.exp``, and every permutation at once as
    ``diag(A^T K A)`` from one ``K @ A`` (A = 0/1 "in the first sample" per permutation, column 0
    the observed split).

    ``lean`` drops two avoidable full-matrix passes (the benchmark's stronger peer): the median
    is one ``np.partition`` of the upper triangle's squared distances (``sqrt`` is monotone: the
    same ``sigma``) instead of ``np.triu_indices`` and ``np.sqrt`` of every pair, and ``np.exp``
    runs in place. Same permutations, same statistic and p-value.

    Permutations come from ``Generator.permutation`` unless ``perms`` (as :func:`engine.drift.permutations`)
    is given, in which case the p-value must equal the engine's.
    """
    z = np.concatenate([x, y])
    n, total = len(x), len(z)
    zc = z - z.mean(axis=0)
    sq = np.einsum("ij,ij->i", zc, zc)
    d2 = zc @ zc.T
    d2 *= -2.0
    d2 += sq[:, None]
    d2 += sq[None, :]
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    if lean:
        upper = d2[np.triu(np.ones((total, total), dtype=bool), 1)]
        half = upper.size // 2
        if upper.size % 2:
            sigma = float(np.sqrt(np.partition(upper, half)[half]))
        else:
            mid = np.partition(upper, [half - 1, half])
            sigma = float((np.sqrt(mid[half - 1]) + np.sqrt(mid[half])) / 2.0)
        del upper
        sigma = sigma or 1.0
        d2 *= -1.0 / (2.0 * sigma * sigma)
        k = np.exp(d2, out=d2)
    else:
        sigma = float(np.median(np.sqrt(d2[np.triu_indices(total, 1)]))) or 1.0
        k = np.exp(d2 * (-1.0 / (2.0 * sigma * sigma)))
    a = np.zeros((total, n_permutations + 1))
    a[:n, 0] = 1.0
    rng = np.random.default_rng(seed)
    for p in range(n_permutations):
        a[perms[p] if perms is not None else rng.permutation(total)[:n], p + 1] = 1.0
    row = k.sum(axis=1)
    sxx = np.einsum("ip,ip->p", a, k @ a)
    sxy = row @ a - sxx
    syy = row.sum() - sxx - 2.0 * sxy
    m = total - n
    stats = (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    ties = stats[0] - 2.0**-40 * total  # the engine's allowance for ties
    return float(stats[0]), (1.0 + float(np.count_nonzero(stats[1:] >= ties))) / (1.0 + n_permutations)


def mmd2_linear(x: np.ndarray, y: np.ndarray, sigma: float) -> tuple[float, float]:
    m = min(len(x), len(y)) // 2

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.exp(-((a - b) ** 2).sum(axis=1) / (2.0 * sigma * sigma))

    x1, x2, y1, y2 = x[0:2 * m:2], x[1:2 * m:2], y[0:2 * m:2], y[1:2 * m:2]
    h = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    stat = float(h.mean())
    sd = float(h.std(ddof=1))
    return stat, float(scipy.stats.t.sf(stat / (sd / math.sqrt(m)), m - 1))


def mmd2_rff(x: np.ndarray, y: np.ndarray, w: np.ndarray, phase: np.ndarray) -> float:
    d = w.shape[1]
    fx = np.sqrt(2.0 / d) * np.cos(x @ w + phase)
    fy = np.sqrt(2.0 / d) * np.cos(y @ w + phase)
    diff = fx.mean(axis=0) - fy.mean(axis=0)
    return float(diff @ diff)


def ks_2samp(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    d = float(scipy.stats.ks_2samp(x, y).statistic)
    en = len(x) * len(y) / (len(x) + len(y))
    return d, float(scipy.special.kolmogorov(math.sqrt(en) * d))


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> float:
    return float(scipy.stats.wasserstein_distance(u, v))


# --------------------------------------------------------------------------------------- kcenter


def kcenter_greedy(emb: np.ndarray, k: int, initial: Sequence[int], first: int | None) -> list[int]:
    e = np.asarray(emb, dtype=np.float64)
    n = len(e)
    mind = np.full(n, np.inf)
    chosen = set(int(i) for i in initial)
    for c in chosen:
        mind = np.minimum(mind, ((e - e[c]) ** 2).sum(axis=1))
    out: list[int] = []
    want = min(k, n - len(chosen))
    while len(out) < want:
        if not out and not chosen:
            nxt = int(first)  # type: ignore[arg-type]
        else:
            cand = [i for i in range(n) if i not in chosen]
            best = max(mind[i] for i in cand)
            nxt = min(i for i in cand if mind[i] == best)
        out.append(nxt)
        chosen.add(nxt)
        mind = np.minimum(mind, ((e - e[nxt]) ** 2).sum(axis=1))
    return out


# ----------------------------------------------------------------------------------- gdumb memory


def greedy_balanced(mem_keys: Sequence[int], mem_cls: Sequence[int], keys: Sequence[int], cls: Sequence[int],
                    memory: int, n_classes: int, seed: int) -> tuple[list[int], list[int]]:
    mk, mc = list(mem_keys), list(mem_cls)
    counts = [0] * n_classes
    for c in mc:
        counts[c] += 1
    st = Stream(seed)
    for k, c in zip(keys, cls):
        if len(mk) < memory:
            mk.append(k)
            mc.append(c)
            counts[c] += 1
            continue
        n = sum(1 for x in counts if x > 0) + (counts[c] == 0)
        if counts[c] >= memory / n:
            continue
        largest = max(range(n_classes), key=lambda j: (counts[j], -j))
        while True:
            slot = int(st.u01() * len(mk))
            if mc[slot] == largest:
                break
        counts[largest] -= 1
        counts[c] += 1
        mk[slot], mc[slot] = k, c
    return mk, mc
