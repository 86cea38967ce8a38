"""The top 53-bit random draw must map below 1.0: ``int(u * n)`` is then a valid index.

``(2**53 - 1) + 0.5`` rounds to ``2**53``, so ``u64_to_open01`` once returned exactly 1.0 for a
draw whose top 53 bits are all set, and the kernels that draw an index as ``int(u * n)``
(k-center's first center, the permutation test's shuffle, reservoir slots) indexed ``n``: out of
range. The seeds below are built by inverting SplitMix64 so that a chosen draw is that value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import naive
import numpy as np

from engine import kcenter_greedy, reservoir_sample, weighted_sample
from engine._random import seed_state, u64_to_open01

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _unxorshift(z: int, s: int) -> int:
    x = z
    for _ in range(64 // s + 1):
        x = z ^ (x >> s)
    return x & _MASK


def _unmix(y: int) -> int:
    z = _unxorshift(y, 31)
    z = (z * pow(_M2, -1, 1 << 64)) & _MASK
    z = _unxorshift(z, 27)
    z = (z * pow(_M1, -1, 1 << 64)) & _MASK
    return _unxorshift(z, 30)


def seed_with_top_draw(draw: int) -> int:
    """A seed whose sequential stream's ``draw``-th output (from 0) is 2**64 - 1."""
    state = (_unmix(_MASK) - (draw + 1) * _GOLDEN) & _MASK  # seed_state(seed)
    return (_unmix(state) - _GOLDEN) & _MASK


def test_top_draw_maps_below_one() -> None:
    top = u64_to_open01(np.uint64(_MASK))
    assert 0.0 < top < 1.0
    assert u64_to_open01(np.uint64(_MASK - (1 << 11))) < top  # the mapping stays monotone
    for n in (1, 2, 3, 5, 7, 1000, 2**40 + 1):
        assert int(top * n) == n - 1


def test_kcenter_first_center_in_range() -> None:
    emb = np.arange(10.0).reshape(5, 2)
    got = kcenter_greedy(emb, 3, seed=seed_with_top_draw(0))
    assert got.tolist() == [4, 0, 2]  # the top draw picks the last row first


def test_reservoir_slot_in_range() -> None:
    # draws 0 and 1 end the fill phase; draw 2 is the slot of the first replacement
    seed = seed_with_top_draw(2)
    got = reservoir_sample(np.arange(4), 3, seed=seed)
    # item 3 replaces the last slot; before the fix it went to slot 3, past the end, and was lost
    assert got.tolist() == naive.reservoir(list(range(4)), 3, seed) == [0, 1, 3]


def test_permutation_shuffle_in_range() -> None:
    # the first draw of the permutation stream swaps position n - 1 with int(u * n): out of
    # range before the fix (a crash or corrupted indices), so run it in a child process
    code = textwrap.dedent(f"""
        import json
        import numpy as np
        from engine import drift
        p = drift.permutations(6, 3, 2, {seed_with_top_draw(0)})
        print(json.dumps(p.tolist()))
        x = np.arange(6.0).reshape(3, 2)
        print(drift.mmd_permutation_test(x, x + 0.1, n_permutations=5, seed={seed_with_top_draw(0)}).p_value)
    """)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    perms, p = out.stdout.split("\n")[:2]
    rows = json.loads(perms)
    assert all(len(set(r)) == 3 and all(0 <= i < 6 for i in r) for r in rows)
    assert 0.0 < float(p) <= 1.0


def key_with_top_hash(seed: int) -> int:
    """The int64 key whose counter-based draw ``hash_key(seed_state(seed), key)`` is 2**64 - 1."""
    state = int(seed_state(seed))
    key = ((_unmix(_MASK) - state) * pow(_GOLDEN, -1, 1 << 64)) & _MASK
    return key - (1 << 64) if key >= 1 << 63 else key


def test_weighted_top_hash_key_follows_its_weight() -> None:
    # u == 1.0 gave that key the Efraimidis-Spirakis key log(1) / w = -0.0, the best of all,
    # so it was drawn first whatever its weight (u = 1 - 2**-53 gives log(u) / w = -1.1e-16 / w)
    seed = 3
    special = key_with_top_hash(seed)
    keys = np.array([special, 1, 2, 3, 4], dtype=np.int64)
    w = np.array([1e-30, 1.0, 1.0, 1.0, 1.0])  # its key is then about -1e14: last
    got = weighted_sample(w, 1, seed=seed, keys=keys)
    assert got.tolist() != [0]
    assert got.tolist() == naive.weighted_sample(w.tolist(), 1, seed, keys.tolist())[0]
