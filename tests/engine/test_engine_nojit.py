"""A few kernels run as plain Python (NUMBA_DISABLE_JIT=1) in a subprocess, so line coverage
(when the run is measured) sees the kernel bodies, and the pure-Python path stays correct."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

SCRIPT = r"""
import warnings
import numpy as np
warnings.simplefilter("ignore")  # uint64 scalar arithmetic wraps on purpose
np.seterr(over="ignore")
import naive
import engine
from engine import drift, scores

rng = np.random.default_rng(0)
s = rng.normal(size=300); s[::17] = np.nan
assert engine.top_k(s, 20).tolist() == naive.top_k(s, 20)
assert engine.uniform_sample(200, 15, seed=3).tolist() == naive.uniform_sample(200, 15, 3)
w = rng.exponential(size=150); w[::7] = 0.0
assert engine.weighted_sample(w, 12, seed=4).tolist() == naive.weighted_sample(w, 12, 4)[0]
assert engine.reservoir_sample(np.arange(500), 9, seed=5).tolist() == naive.reservoir(list(range(500)), 9, 5)
labels = rng.integers(0, 4, 200)
assert engine.balanced_select(labels, 30, seed=1).tolist() == naive.balanced_select(labels, 30, "uniform", seed=1)
a = np.sort(rng.integers(0, 100, 80)); b = np.unique(rng.integers(0, 100, 40))
assert engine.anti_join(a, b).tolist() == naive.anti_join(a, b).tolist()
assert engine.union(a, b).tolist() == naive.union(a, b).tolist()
z = rng.normal(size=(50, 4)); y = rng.integers(0, 4, 50)
np.testing.assert_allclose(scores.el2n(z, y), naive.scores("el2n", z, y), rtol=1e-9)
x1, x2 = rng.normal(size=(20, 2)), rng.normal(size=(25, 2))
st, p = drift.mmd_permutation_test(x1, x2, n_permutations=10, seed=0)
assert p == naive.mmd_permutation_test(x1, x2, drift.permutations(45, 20, 10, 0))[1]
assert abs(drift.ks_2samp(x1[:, 0], x2[:, 0]).statistic - naive.ks_2samp(x1[:, 0], x2[:, 0])[0]) < 1e-12
from engine.memory import greedy_balanced
gc = rng.integers(0, 3, 100)
gk, gm = greedy_balanced([], [], np.arange(100), gc, memory=10, n_classes=3, seed=2)
assert (gk.tolist(), gm.tolist()) == naive.greedy_balanced([], [], list(range(100)), gc.tolist(), 10, 3, 2)
e = rng.normal(size=(60, 3))
got = engine.kcenter_greedy(e, 5, seed=2)
assert got.tolist() == naive.kcenter_greedy(e, 5, [], int(got[0]))
from engine._bloom import KeySet
ks = np.unique(rng.integers(-2**63, 2**63 - 1, 300, dtype=np.int64, endpoint=True))
ks[0] = np.iinfo(np.int64).min  # the hash set's empty-slot value, a member here
probe = np.concatenate([ks[::3], rng.integers(-2**63, 2**63 - 1, 500, dtype=np.int64), ks[:1]])
out = np.empty(probe.size, np.int64)
n = KeySet(ks, 9).hits(probe, out)
assert out[:n].tolist() == np.flatnonzero(np.isin(probe, ks)).tolist()
from engine._shuffle import agrees, permutation
assert agrees()
assert permutation([4, 2], 3000).tolist() == np.random.default_rng([4, 2]).permutation(3000).tolist()
print("ok")
"""


def test_kernels_without_jit() -> None:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
