"""Engine kernel benchmarks (asv), each next to the plain NumPy way of doing the same thing.

The asv classes time the kernels over a small grid of row counts (10^5 .. 10^8). Running the file
as a script measures the four headline ratios of ``docs/PERFORMANCE.md`` (Engine kernels) in one process,
kernel and baseline interleaved, best of several runs each::

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
    """The straightforward NumPy baseline (``tests/engine/naive.py``)."""
    import naive

    return naive.mmd_permutation_numpy(x, y, n_permutations, seed)


# -------------------------------------------------------------------------------------- asv suite


class TopK:
    """Top 1000 of ``rows`` float32 scores vs ``np.argpartition``."""

    params = [[10**5, 10**6, 10**7, 10**8]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.x = _rng().random(rows, dtype=np.float32)
        engine.top_k(self.x[:10], 1)

    def time_top_k(self, rows: int) -> None:
        engine.top_k(self.x, K, sorted=False)

    def time_top_k_sorted(self, rows: int) -> None:
        engine.top_k(self.x, K)

    def time_argpartition(self, rows: int) -> None:
        np.argpartition(self.x, rows - K)

    def peakmem_top_k(self, rows: int) -> None:
        engine.top_k(self.x, K, sorted=False)


class WeightedSample:
    """``rows // 10`` of ``rows`` by weight, without replacement, vs ``Generator.choice``."""

    params = [[10**5, 10**6, 10**7]]
    param_names = ["rows"]
    timeout = 600

    def setup(self, rows: int) -> None:
        self.w = _rng().random(rows) + 0.01
        self.p = self.w / self.w.sum()
        engine.weighted_sample(self.w[:10], 2, seed=0)

    def time_weighted_sample(self, rows: int) -> None:
        engine.weighted_sample(self.w, rows // 10, seed=1)

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
        drift.mmd_permutation_test(self.x[:5], self.y[:5], n_permutations=2)

    def time_engine(self) -> None:
        drift.mmd_permutation_test(self.x, self.y, n_permutations=200, seed=0)

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


def _cold_import() -> float:
    code = "import time; t = time.perf_counter(); import engine; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=_ROOT).stdout) for _ in range(3)]
    return min(runs)


def headline(quick: bool = False) -> list[tuple[str, str, str, str, str]]:
    """Rows of (what, engine, baseline, ratio, target)."""
    scale = 100 if quick else 1
    rows = []
    rng = _rng()

    x = rng.random(10**8 // scale, dtype=np.float32)
    engine.top_k(x[:10], 1)
    for k in (K, 10**6 // scale):
        ours, base = _pair(lambda: engine.top_k(x, k, sorted=False), lambda: np.argpartition(x, x.size - k), 5, 3)
        rows.append((f"top-{k} of {x.size:.0e} float32 vs np.argpartition", f"{ours:.3f} s", f"{base:.3f} s",
                     f"{base / ours:.1f}x", ">= 2x"))
    ours, _ = _pair(lambda: engine.top_k(x, K), lambda: None, 5, 0)
    rows.append((f"top-{K} of {x.size:.0e} float32, sorted output", f"{ours:.3f} s", "", "", ""))
    del x

    w = rng.random(10**7 // scale) + 0.01
    p = w / w.sum()
    engine.weighted_sample(w[:10], 2, seed=0)
    ours, base = _pair(lambda: engine.weighted_sample(w, w.size // 10, seed=1),
                       lambda: _rng(1).choice(w.size, size=w.size // 10, replace=False, p=p), 5, 2)
    rows.append((f"weighted sample {w.size // 10:.0e} of {w.size:.0e} vs Generator.choice(replace=False, p=)",
                 f"{ours:.3f} s", f"{base:.3f} s", f"{base / ours:.1f}x", ">= 10x"))
    del w, p

    n = 2000 // (10 if quick else 1)
    a, b = rng.normal(size=(n, 32)), rng.normal(0.05, 1.0, size=(n, 32))
    drift.mmd_permutation_test(a[:5], b[:5], n_permutations=2)
    ours, base = _pair(lambda: drift.mmd_permutation_test(a, b, n_permutations=200, seed=0),
                       lambda: numpy_mmd_permutation(a, b, 200, 0), 3, 1)
    rows.append((f"MMD permutation test n = m = {n}, d = 32, 200 permutations vs NumPy", f"{ours:.3f} s",
                 f"{base:.3f} s", f"{base / ours:.1f}x", ">= 10x"))

    labels = rng.integers(0, CLASSES, 10**8 // scale)
    engine.balanced_select(labels[:100], 10)
    t = _best(lambda: engine.balanced_select(labels, labels.size // 100, seed=1), 5)
    rows.append((f"class-balanced uniform quota, {labels.size:.0e} rows, 10 classes, budget 1%",
                 f"{t:.3f} s = {labels.size / t / 1e6:.0f} M rows/s", "", "", ">= 100 M rows/s"))
    scores_ = _rng(1).random(labels.size)
    t = _best(lambda: engine.balanced_select(labels, labels.size // 100, rule="top", scores=scores_), 3)
    rows.append((f"class-balanced top-score quota, {labels.size:.0e} rows", f"{t:.3f} s = "
                 f"{labels.size / t / 1e6:.0f} M rows/s", "", "", ""))
    del labels, scores_

    rows.append(("cold `import engine` (fresh interpreter)", f"{_cold_import():.2f} s", "", "", ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="inputs 100x smaller (smoke test)")
    args = parser.parse_args()
    import numba

    print(f"numba {numba.__version__}, numpy {np.__version__}, {numba.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print("| what | engine | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in headline(args.quick):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
