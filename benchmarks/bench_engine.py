"""Engine kernel benchmarks (asv), each next to the strongest thing a user would write instead.

Peers (what each side does is stated where it is timed):

* top-k: ``np.partition`` to find the k-th value, then ``np.flatnonzero(x >= threshold)`` (unsorted
  positions, like the kernel's ``sorted=False``), and ``torch.topk(sorted=False)``; the naive
  ``np.argpartition`` is kept as an extra, labelled row.
* weighted sampling without replacement: NumPy Efraimidis-Spirakis (``Generator.exponential(n) / w``,
  ``np.argpartition`` for the k smallest: the same distribution as the kernel's ``log(u) / w``);
  ``Generator.choice(replace=False, p=...)`` is the naive extra row.
* MMD permutation test: the vectorized NumPy version with the same matmul trick
  (``naive.mmd_permutation_matmul``: BLAS distances, ``np.median`` of the upper triangle, ``np.exp``,
  ``diag(A^T K A)`` from one ``K @ A``), and the same code with its two avoidable full-matrix
  passes removed (:func:`numpy_mmd_matmul_inplace`: the median by one ``np.partition`` of the
  upper triangle's squared distances, the kernel ``np.exp`` in place); the per-permutation NumPy
  loop is the naive extra row.

Every peer runs as many times as the kernel (best of each), interleaved, and the script checks
that kernel and peers return the same rows (top-k: the same scores; weighted sampling: k distinct
positions; MMD: the same statistic) before it prints a row.

The asv classes time the kernels over a small grid of row counts (10^5 .. 10^8). Running the file
as a script measures the headline ratios of ``docs/PERFORMANCE.md`` (Engine kernels) in one process,
kernel and peers interleaved, best of several runs each::

    python benchmarks/bench_engine.py            # prints a Markdown table
    python benchmarks/bench_engine.py --quick    # smaller inputs, for a smoke test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "tests", "engine"))

import engine  # noqa: E402
from engine import drift, scores  # noqa: E402

K = 1000
CLASSES = 10


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def numpy_mmd_permutation(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int) -> tuple[float, float]:
    """The naive NumPy baseline: three ``np.ix_`` sub-blocks per permutation (``tests/engine/naive.py``)."""
    import naive

    return naive.mmd_permutation_numpy(x, y, n_permutations, seed)


def numpy_mmd_matmul(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int) -> tuple[float, float]:
    """The strong NumPy peer: every permutation from one ``K @ A`` (``tests/engine/naive.py``)."""
    import naive

    return naive.mmd_permutation_matmul(x, y, n_permutations, seed)


def numpy_mmd_matmul_inplace(x: np.ndarray, y: np.ndarray, n_permutations: int, seed: int) -> tuple[float, float]:
    """:func:`numpy_mmd_matmul` without two avoidable full-matrix passes (``naive``'s ``lean``
    variant): the bandwidth's median by one ``np.partition`` of the upper triangle's squared
    distances instead of ``np.triu_indices`` and ``np.sqrt`` of every pair, and the kernel's
    ``np.exp`` in place. Same permutations, same statistic and p-value."""
    import naive

    return naive.mmd_permutation_matmul(x, y, n_permutations, seed, lean=True)


def numpy_top_k(x: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest, unsorted: ``np.partition`` finds the k-th value, one comparison
    pass keeps the rows at or above it (ties at the threshold may add rows)."""
    threshold = np.partition(x, x.size - k)[x.size - k]
    return np.flatnonzero(x >= threshold)


def numpy_weighted_sample(w: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Efraimidis-Spirakis in NumPy: exponential keys divided by the weights, the k smallest
    (``E / w`` smallest is ``log(u) / w`` largest), unsorted positions."""
    keys = np.random.default_rng(seed).exponential(size=w.size)
    keys /= w
    return np.argpartition(keys, k)[:k]


def torch_top_k(t: Any, k: int) -> Any:
    """``torch.topk(t, k, sorted=False)`` on a tensor that shares the NumPy buffer."""
    import torch

    return torch.topk(t, k, sorted=False).indices


# -------------------------------------------------------------------------------------- asv suite


class TopK:
    """Top 1000 of ``rows`` float32 scores vs ``np.partition`` + threshold, ``torch.topk`` and
    (naive) ``np.argpartition``; all unsorted."""

    params = [[10**5, 10**6, 10**7, 10**8]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        import torch

        self.x = _rng().random(rows, dtype=np.float32)
        self.t = torch.from_numpy(self.x)
        engine.top_k(self.x[:10], 1)

    def time_numpy_partition(self, rows: int) -> None:
        numpy_top_k(self.x, K)

    def time_torch_topk(self, rows: int) -> None:
        torch_top_k(self.t, K)

    def time_top_k(self, rows: int) -> None:
        engine.top_k(self.x, K, sorted=False)

    def time_top_k_sorted(self, rows: int) -> None:
        engine.top_k(self.x, K)

    def time_argpartition(self, rows: int) -> None:
        np.argpartition(self.x, rows - K)

    def peakmem_top_k(self, rows: int) -> None:
        engine.top_k(self.x, K, sorted=False)


class WeightedSample:
    """``rows // 10`` of ``rows`` by weight, without replacement, vs NumPy Efraimidis-Spirakis and
    (naive) ``Generator.choice``."""

    params = [[10**5, 10**6, 10**7]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.w = _rng().random(rows) + 0.01
        self.p = self.w / self.w.sum()
        engine.weighted_sample(self.w[:10], 2, seed=0)

    def time_weighted_sample(self, rows: int) -> None:
        engine.weighted_sample(self.w, rows // 10, seed=1)

    def time_numpy_efraimidis_spirakis(self, rows: int) -> None:
        numpy_weighted_sample(self.w, rows // 10, 1)

    def time_generator_choice(self, rows: int) -> None:
        _rng(1).choice(rows, size=rows // 10, replace=False, p=self.p)


class UniformStream:
    """Uniform sample of 10^4 keys streamed in 2^20-row chunks vs ``Generator.choice``."""

    params = [[10**6, 10**7]]
    param_names = ["rows"]

    def setup(self, rows: int) -> None:
        self.keys = np.arange(rows, dtype=np.int64)
        engine.uniform_sample(10, 2, seed=0)

    def time_uniform_sampler(self, rows: int) -> None:
        s = engine.UniformSampler(10_000, seed=1)
        for lo in range(0, rows, 1 << 20):
            s.update(self.keys[lo:lo + (1 << 20)])
        s.result()

    def time_reservoir(self, rows: int) -> None:
        r = engine.Reservoir(10_000, seed=1)
        for lo in range(0, rows, 1 << 20):
            r.update(self.keys[lo:lo + (1 << 20)])

    def time_generator_choice(self, rows: int) -> None:
        _rng(1).choice(self.keys, size=10_000, replace=False)


class BalancedQuota:
    """Class-balanced uniform selection of ``rows // 100`` rows over 10 classes."""

    params = [[10**5, 10**6, 10**7, 10**8]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.labels = _rng().integers(0, CLASSES, rows)
        self.scores = _rng(1).random(rows)
        engine.balanced_select(self.labels[:100], 10)

    def time_uniform(self, rows: int) -> None:
        engine.balanced_select(self.labels, rows // 100, seed=1)

    def time_top_score(self, rows: int) -> None:
        engine.balanced_select(self.labels, rows // 100, rule="top", scores=self.scores)

    def track_uniform_rows_per_second(self, rows: int) -> float:
        return rows / _best(lambda: engine.balanced_select(self.labels, rows // 100, seed=1), 3)

    track_uniform_rows_per_second.unit = "rows/s"  # type: ignore[attr-defined]


class BalancedQuotaStream:
    """``BalancedSelector(rows // 10, rule="top")`` fed 2^18-row chunks: a budget of many chunks,
    where a pass over the kept candidates per chunk would cost O(budget / chunk) a row."""

    params = [[10**6, 10**7]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.labels = _rng().integers(0, CLASSES, rows)
        self.scores = _rng(1).random(rows)
        warm = engine.BalancedSelector(10, rule="top")
        warm.update(self.labels[:100], scores=self.scores[:100])
        warm.result()

    def time_streamed(self, rows: int) -> None:
        sel = engine.BalancedSelector(rows // 10, rule="top")
        for lo in range(0, rows, 1 << 18):
            sel.update(self.labels[lo:lo + (1 << 18)], scores=self.scores[lo:lo + (1 << 18)])
        sel.result()

    def time_one_shot(self, rows: int) -> None:
        engine.balanced_select(self.labels, rows // 10, rule="top", scores=self.scores)


class MMDPermutation:
    """MMD^2 permutation test, n = m = 2000, d = 32, 200 permutations."""

    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 600

    def setup(self) -> None:
        rng = _rng()
        self.x = rng.normal(size=(2000, 32))
        self.y = rng.normal(0.05, 1.0, size=(2000, 32))
        drift.mmd_permutation_test(self.x[:300], self.y[:300], n_permutations=2)  # compiles every path

    def time_engine(self) -> None:
        drift.mmd_permutation_test(self.x, self.y, n_permutations=200, seed=0)

    def time_numpy_matmul(self) -> None:
        numpy_mmd_matmul(self.x, self.y, 200, 0)

    def time_numpy_matmul_inplace(self) -> None:
        numpy_mmd_matmul_inplace(self.x, self.y, 200, 0)

    def time_numpy(self) -> None:
        numpy_mmd_permutation(self.x, self.y, 200, 0)


class Drift1D:
    """KS and Wasserstein-1 between two samples of ``rows`` values each."""

    params = [[10**5, 10**7]]
    param_names = ["rows"]

    def setup(self, rows: int) -> None:
        self.a = _rng().normal(size=rows)
        self.b = _rng(1).normal(0.1, 1.0, size=rows)
        drift.ks_2samp(self.a[:10], self.b[:10])
        drift.wasserstein_1d(self.a[:10], self.b[:10])

    def time_ks(self, rows: int) -> None:
        drift.ks_2samp(self.a, self.b)

    def time_wasserstein(self, rows: int) -> None:
        drift.wasserstein_1d(self.a, self.b)


class SortedSets:
    """Anti-join of ``rows`` sorted keys against ``rows // 10`` keys vs ``np.isin``."""

    params = [[10**5, 10**7]]
    param_names = ["rows"]

    def setup(self, rows: int) -> None:
        self.a = np.sort(_rng().integers(0, 4 * rows, rows))
        self.b = np.unique(_rng(1).integers(0, 4 * rows, rows // 10))
        engine.anti_join(self.a[:10], self.b[:10])

    def time_anti_join(self, rows: int) -> None:
        engine.anti_join(self.a, self.b)

    def time_numpy_isin(self, rows: int) -> None:
        self.a[~np.isin(self.a, self.b)]


class Scores:
    """Entropy and EL2N of ``rows`` x 10 float32 logits."""

    params = [[10**5, 10**6]]
    param_names = ["rows"]

    def setup(self, rows: int) -> None:
        self.z = _rng().normal(size=(rows, CLASSES)).astype(np.float32)
        self.y = _rng(1).integers(0, CLASSES, rows)
        scores.entropy(self.z[:2])
        scores.el2n(self.z[:2], self.y[:2])

    def time_entropy(self, rows: int) -> None:
        scores.entropy(self.z)

    def time_el2n(self, rows: int) -> None:
        scores.el2n(self.z, self.y)


class KCenter:
    """50 greedy k-centers among ``rows`` 32-d embeddings."""

    params = [[10**4, 10**5]]
    param_names = ["rows"]

    def setup(self, rows: int) -> None:
        self.e = _rng().normal(size=(rows, 32)).astype(np.float32)
        engine.kcenter_greedy(self.e[:10], 2)

    def time_kcenter(self, rows: int) -> None:
        engine.kcenter_greedy(self.e, 50, seed=0)


def timeraw_import_engine() -> str:
    """Cold import of the package (compiles nothing)."""
    return "import engine"


def timeraw_import_and_first_call() -> str:
    """Cold import plus a first call, which loads the kernel from Numba's on-disk cache."""
    return "import numpy as np, engine; engine.top_k(np.arange(100.0), 5)"


# ------------------------------------------------------------------------------- headline script


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _pair(ours: Callable[[], Any], base: Callable[[], Any], repeat: int, base_repeat: int) -> tuple[float, float]:
    """Best times of ``ours`` and ``base``, runs interleaved so both see the same machine load."""
    t_ours, t_base = float("inf"), float("inf")
    for i in range(max(repeat, base_repeat)):
        if i < repeat:
            t_ours = min(t_ours, _best(ours, 1))
        if i < base_repeat:
            t_base = min(t_base, _best(base, 1))
    return t_ours, t_base


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Best time of each function over ``repeat`` rounds, one run of each per round (the same
    count for every side), the order rotated every round; also each function's last result."""
    best = {name: float("inf") for name in fns}
    out: dict[str, Any] = {}
    names = list(fns)
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            out[name] = fns[name]()
            best[name] = min(best[name], time.perf_counter() - t)
    return best, out


def _check_top_k(x: np.ndarray, k: int, ours: np.ndarray, part: np.ndarray, tk: Any) -> None:
    """The kernel and both peers selected the same scores (the threshold peer may add ties)."""
    tk = tk.numpy()
    assert ours.size == tk.size == k and part.size >= k, (ours.size, tk.size, part.size)
    assert np.array_equal(np.sort(x[ours]), np.sort(x[tk])), "engine and torch.topk differ"
    assert np.isin(ours, part).all() and x[part].min() == x[ours].min(), "engine and the threshold peer differ"


def _cold_import() -> float:
    code = "import time; t = time.perf_counter(); import engine; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=_ROOT).stdout) for _ in range(3)]
    return min(runs)


def _secs(t: float) -> str:
    """A time with three significant digits or more: milliseconds below 0.1 s."""
    return f"{t * 1e3:.2f} ms" if t < 0.1 else f"{t:.3f} s"


def _row(what: str, ours: float, base: float, peer: str, target: str = "") -> tuple[str, str, str, str, str]:
    return (what, _secs(ours), f"{peer}: {_secs(base)}", f"{base / ours:.2f}x", target)


def headline(quick: bool = False, naive: bool = True) -> list[tuple[str, str, str, str, str]]:
    """Rows of (what, engine, peer, ratio, target); ratio > 1 means the engine is faster."""
    import torch

    scale = 100 if quick else 1
    rows = []
    rng = _rng()

    x = rng.random(10**8 // scale, dtype=np.float32)
    t = torch.from_numpy(x)
    engine.top_k(x[:10], 1)
    for k in (K, 10**6 // scale):
        what = f"top-{k} of {x.size:.0e} float32, unsorted"
        best, got = _interleaved({"engine": lambda: engine.top_k(x, k, sorted=False),
                                  "numpy": lambda: numpy_top_k(x, k), "torch": lambda: torch_top_k(t, k)}, 5)
        _check_top_k(x, k, got["engine"], got["numpy"], got["torch"])
        ours, part, tk = best["engine"], best["numpy"], best["torch"]
        rows.append(_row(what, ours, part, "np.partition + threshold", ">= 2x"))
        rows.append(_row(what, ours, tk, "torch.topk(sorted=False)", ">= 2x"))
        if naive:
            _, ap = _pair(lambda: None, lambda: np.argpartition(x, x.size - k), 0, 3)
            rows.append(_row(what, ours, ap, "(naive) np.argpartition"))
    ours, _ = _pair(lambda: engine.top_k(x, K), lambda: None, 5, 0)
    rows.append((f"top-{K} of {x.size:.0e} float32, best-first order", _secs(ours), "", "", ""))
    del x, t

    for n in (10**7 // scale, 10**6 // scale):
        w = rng.random(n) + 0.01
        k = n // 10
        engine.weighted_sample(w[:10], 2, seed=0)
        what = f"weighted sample {k:.0e} of {n:.0e}, without replacement"
        best, got = _interleaved({"engine": lambda: engine.weighted_sample(w, k, seed=1),
                                  "numpy": lambda: numpy_weighted_sample(w, k, 1)}, 5)
        for pos in got.values():  # k distinct positions each (different random streams)
            assert pos.size == k and np.unique(pos).size == k
        ours, es = best["engine"], best["numpy"]
        rows.append(_row(what, ours, es, "NumPy Efraimidis-Spirakis", ">= 2x"))
        if naive:
            p = w / w.sum()
            _, ch = _pair(lambda: None, lambda: _rng(1).choice(n, size=k, replace=False, p=p), 0, 2)
            rows.append(_row(what, ours, ch, "(naive) Generator.choice(replace=False, p=)"))
    del w

    n = 2000 // (10 if quick else 1)
    a, b = rng.normal(size=(n, 32)), rng.normal(0.05, 1.0, size=(n, 32))
    drift.mmd_permutation_test(a[:300], b[:300], n_permutations=2)
    what = f"MMD^2 permutation test, n = m = {n}, d = 32, 200 permutations"
    best, got = _interleaved({"engine": lambda: drift.mmd_permutation_test(a, b, n_permutations=200, seed=0),
                              "numpy": lambda: numpy_mmd_matmul(a, b, 200, 0),
                              "numpy_inplace": lambda: numpy_mmd_matmul_inplace(a, b, 200, 0)}, 5)
    stat = got["engine"].statistic
    for peer in ("numpy", "numpy_inplace"):
        assert np.isclose(got[peer][0], stat, rtol=1e-9, atol=0.0), (peer, got[peer][0], stat)
    ours, mm = best["engine"], best["numpy"]
    rows.append(_row(what, ours, mm, "NumPy, same matmul trick", ">= 2x"))
    rows.append(_row(what, ours, best["numpy_inplace"], "NumPy, same matmul trick, median by partition, exp in place",
                     ">= 2x"))
    if naive:
        _, nv = _pair(lambda: None, lambda: numpy_mmd_permutation(a, b, 200, 0), 0, 1)
        rows.append(_row(what, ours, nv, "(naive) NumPy, np.ix_ per permutation"))

    labels = rng.integers(0, CLASSES, 10**8 // scale)
    engine.balanced_select(labels[:100], 10)
    t_ = _best(lambda: engine.balanced_select(labels, labels.size // 100, seed=1), 5)
    rows.append((f"class-balanced uniform quota, {labels.size:.0e} rows, 10 classes, budget 1%",
                 f"{t_:.3f} s = {labels.size / t_ / 1e6:.0f} M rows/s", "", "", ">= 100 M rows/s"))
    scores_ = _rng(1).random(labels.size)
    t_ = _best(lambda: engine.balanced_select(labels, labels.size // 100, rule="top", scores=scores_), 3)
    rows.append((f"class-balanced top-score quota, {labels.size:.0e} rows", f"{t_:.3f} s = "
                 f"{labels.size / t_ / 1e6:.0f} M rows/s", "", "", ""))
    del labels, scores_

    rows.append(("cold `import engine` (fresh interpreter)", f"{_cold_import():.2f} s", "", "", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="inputs 100x smaller (smoke test)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive extra rows (MMD's takes ~30 s)")
    args = parser.parse_args()
    import numba
    import torch

    print(f"numba {numba.__version__}, numpy {np.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), {numba.get_num_threads()} Numba threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| what | engine | peer | ratio | target |")
    print("|---|---|---|---|---|")
    for row in headline(args.quick, not args.no_naive):
        print("| " + " | ".join(row) + " |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
