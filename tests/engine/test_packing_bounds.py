"""The selection kernels pack kept values without branches: every value is written and a kept one
advances the write position, so each destination needs one slot beyond what it keeps. These
tests check that no write lands outside its region, where Numba would not notice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine._rank import _F64_BITS, MODE_BITS
from engine._ranked import _EMPTY_I64, _collect_block

HERE = Path(__file__).parent
SENTINEL = -7


def _collect_into(s: np.ndarray, start: int, end: int, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    opos = np.full(size, SENTINEL, dtype=np.int64)
    orank = np.full(size, SENTINEL, dtype=np.int64)
    magmask, infbits, signmin = _F64_BITS
    seen = _collect_block(s.view(np.int64), s.shape[0], MODE_BITS, magmask, infbits, signmin,
                          np.int64(0), np.uint64(0), _EMPTY_I64, False, np.int64(0), _EMPTY_I64,
                          False, np.zeros(1, dtype=np.int64), 0, 1, opos, orank, start, end)
    return opos, orank, seen


@pytest.mark.parametrize("n", [1024, 5000, 70_000])
def test_collect_into_an_exactly_sized_region_writes_nothing_beyond_it(n: int) -> None:
    # Half the rows pass (scores >= 0), so most sub-blocks take the branch-free write; a region of
    # exactly the passing count must still end where it ends (in the parallel collect the next
    # slot is the first of another block's region).
    s = np.random.default_rng(n).normal(size=n)
    s[-1] = -1.0  # a row that does not pass is written after the last one that does
    want = np.flatnonzero(s >= 0.0)
    m = want.shape[0]
    opos, orank, seen = _collect_into(s, 3, 3 + m, m + 6)
    assert seen == m
    assert opos[:3].tolist() == [SENTINEL] * 3 and orank[:3].tolist() == [SENTINEL] * 3
    assert opos[3 + m:].tolist() == [SENTINEL] * 3 and orank[3 + m:].tolist() == [SENTINEL] * 3
    assert np.array_equal(opos[3:3 + m], want)
    assert np.array_equal(orank[3:3 + m], s[want].view(np.int64))


def test_collect_into_a_region_too_small_reports_the_overflow_and_stays_inside() -> None:
    s = np.random.default_rng(5).normal(size=8192)
    m = int((s >= 0.0).sum())
    opos, _, seen = _collect_into(s, 0, m - 10, m + 4)
    assert seen == m  # more than the region holds: the caller recollects into exact regions
    assert opos[m - 10:].tolist() == [SENTINEL] * 14


BOUNDS_SCRIPT = r"""
import numpy as np
from engine import top_k, weighted_sample
from engine._pick import _kth_largest

rng = np.random.default_rng(0)
for n in (1000, 70_000, 300_000):
    w = rng.random(n)
    for k in (1, n // 10, n // 2, n - 1):
        got = weighted_sample(w, k, seed=3)
        assert got.shape == (k,) and np.all(np.diff(got) > 0), (n, k)
        ref = np.sort(np.lexsort((np.arange(n), -w))[:k])
        assert np.array_equal(top_k(w, k, sorted=False), ref), (n, k)
for m in (40_000, 300_000):
    a = rng.integers(0, 1 << 40, m)
    for q in (1, m // 20, m // 2, m):
        assert _kth_largest(a, q) == np.sort(a)[m - q], (m, q)
print("ok")
"""


@pytest.mark.slow
def test_selection_kernels_stay_in_bounds_under_numba_boundscheck(tmp_path: Path) -> None:
    # Compiled with bounds checks (a fresh cache: checked code is not mixed with cached code),
    # any write one past a buffer raises IndexError instead of passing silently.
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", BOUNDS_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
