"""``engine._shuffle.permutation`` is NumPy's seeded permutation, bit for bit: every recorded
training's epoch order is reproduced from its seed, whichever of the two drew it."""

from __future__ import annotations

import numpy as np
import pytest

from engine import _shuffle
from engine._shuffle import agrees, permutation


@pytest.mark.parametrize("n", [0, 1, 2, 3, 31, 32, 33, 1000, 65_537, 500_000])
@pytest.mark.parametrize("seed", [[0, 0], [3, 1], [12345, 7], 99, [2**63, 2**40]])
def test_the_same_permutation_as_numpy(n: int, seed: object) -> None:
    want = np.random.default_rng(seed).permutation(n)
    assert np.array_equal(permutation(seed, n), want)
    values = np.arange(n, dtype=np.int64) * 7 - 3  # of an array: its values moved as positions are
    assert np.array_equal(permutation(seed, values), values[want])


def test_more_draws_than_the_first_chunk_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stream fetched in chunks of 64 outputs: every chunk ends mid-shuffle
    monkeypatch.setattr(_shuffle, "_RAW_PER_POSITION", 0.0)
    for seed in range(20):
        assert np.array_equal(permutation([seed, 1], 5000), np.random.default_rng([seed, 1]).permutation(5000))


def test_inputs_of_other_kinds_keep_numpy_semantics() -> None:
    x = np.arange(12, dtype=np.uint32)
    got = permutation(5, x)
    assert got.dtype == np.int64 and np.array_equal(got, np.random.default_rng(5).permutation(x))
    strided = np.arange(40)[::3]
    assert np.array_equal(permutation(5, strided), np.random.default_rng(5).permutation(strided))
    assert strided.tolist() == list(range(0, 40, 3))  # the input is not shuffled in place
    huge = np.array([2**64 - 1, 3, 2**63], dtype=np.uint64)  # not int64 values: NumPy's, kept uint64
    got = permutation(5, huge)
    assert got.dtype == np.uint64 and np.array_equal(got, np.random.default_rng(5).permutation(huge))
    floats = np.linspace(0, 1, 9)  # not integers: NumPy's own permutation
    assert np.array_equal(permutation(5, floats), np.random.default_rng(5).permutation(floats))


def test_the_kernel_is_used_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert agrees()
    calls = []
    real = _shuffle._consume
    monkeypatch.setattr(_shuffle, "_consume", lambda x, i, raw: calls.append(i) or real(x, i, raw))
    permutation(1, 1000)
    assert calls and calls[0] == 999


def test_falls_back_to_numpy_where_the_kernel_would_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shuffle, "agrees", lambda: False)
    monkeypatch.setattr(_shuffle, "_consume", lambda *a: pytest.fail("the kernel was used"))
    assert np.array_equal(permutation(9, 777), np.random.default_rng(9).permutation(777))


def test_values_beyond_int32_are_kept_whole() -> None:
    # positions are shuffled as int32 where every value fits, else as int64
    x = np.array([0, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**62, 5], dtype=np.int64)
    for seed in range(30):
        assert np.array_equal(permutation([seed], x), np.random.default_rng([seed]).permutation(x))
    fits = np.array([-(2**31), 2**31 - 1, 0, 7], dtype=np.int64)
    assert np.array_equal(permutation(3, fits), np.random.default_rng(3).permutation(fits))
