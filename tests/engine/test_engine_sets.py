"""Sorted key sets and latest-per-key against NumPy / dict references."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.sets
from engine import EngineInputError, LatestPerKey, anti_join, isin_sorted, latest_per_key, semi_join, union

# engine.sets.NUMPY_BELOW values that send every input to the Numba kernels / to the NumPy path
PATHS = {"kernels": 0, "numpy": 2**62}


@contextmanager
def _path(name: str) -> Iterator[None]:
    with mock.patch.object(engine.sets, "NUMPY_BELOW", PATHS[name]):
        yield

sorted_keys = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60).map(
    lambda v: np.sort(np.array(v, dtype=np.int64)))


@settings(max_examples=150, deadline=None)
@given(sorted_keys, sorted_keys)
def test_set_ops_property(a: np.ndarray, b: np.ndarray) -> None:
    for path in PATHS:
        with _path(path):
            assert np.array_equal(isin_sorted(a, b), naive.isin(a, b)), path
            assert np.array_equal(isin_sorted(a[::-1], b), naive.isin(a[::-1], b)), path  # unsorted left
            big = np.repeat(a, 9)  # sorted and over 8 times longer than b: b is searched in it
            assert np.array_equal(isin_sorted(big, b[:3]), naive.isin(big, b[:3])), path
    assert np.array_equal(semi_join(a, b), naive.semi_join(a, b))
    assert np.array_equal(anti_join(a, b), naive.anti_join(a, b))
    assert np.array_equal(union(a, b), naive.union(a, b))


@pytest.mark.parametrize("seed", range(4))
def test_set_ops_large_and_chunked(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.sort(rng.integers(0, 10**7, 400_000))  # duplicates included
    b = np.unique(rng.integers(0, 10**7, 50_000 if seed % 2 else 2_000_000))
    perm = rng.permutation(a)
    for path in PATHS:
        with _path(path):
            assert np.array_equal(isin_sorted(a, b), np.isin(a, b)), path
            assert np.array_equal(isin_sorted(perm, b), np.isin(perm, b)), path
            assert np.array_equal(isin_sorted(a, b[::997]), np.isin(a, b[::997])), path
    parts = np.split(a, np.sort(rng.integers(0, a.size, 9)))
    assert np.array_equal(np.concatenate([semi_join(p, b) for p in parts]), semi_join(a, b))
    assert np.array_equal(np.concatenate([anti_join(p, b) for p in parts]), anti_join(a, b))
    acc = np.empty(0, dtype=np.int64)
    for p in parts:
        acc = union(acc, p)
    assert np.array_equal(union(acc, b), np.union1d(a, b))


def test_set_edge_cases() -> None:
    e = np.empty(0, dtype=np.int64)
    assert isin_sorted(e, [1, 2]).tolist() == []
    assert isin_sorted([1, 2], e).tolist() == [False, False]
    assert union(e, e).tolist() == []
    assert union([], [3, 3]).tolist() == [3]
    assert semi_join([1, 1, 2], [1]).tolist() == [1, 1]


@pytest.mark.parametrize("path", PATHS)
def test_unsorted_right_side_is_rejected(path: str) -> None:
    with _path(path), pytest.raises(EngineInputError) as err:
        semi_join([1, 2], [5, 3])
    assert err.value.name == "right[1]"
    with _path(path), pytest.raises(EngineInputError) as err:
        isin_sorted([1], [2, 4, 1, 0])
    assert err.value.name == "sorted_keys[2]"
    with pytest.raises(EngineInputError, match="left"):
        union([2, 1], [1])
    with pytest.raises(EngineInputError, match="integers"):
        anti_join([1.5], [1])


def _latest_case(rng: np.random.Generator, n: int):  # type: ignore[no-untyped-def]
    keys = rng.integers(0, max(1, n // 3), n)
    versions = rng.integers(0, 8, n)  # (key, version) duplicates on purpose
    values = rng.normal(size=(n, 3))
    return keys, versions, values


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("as_of", [None, -1, 0, 3, 100])
def test_latest_matches_reference(seed: int, as_of: int | None) -> None:
    rng = np.random.default_rng(seed)
    keys, versions, values = _latest_case(rng, int(rng.integers(0, 500)))
    if seed == 0:  # already sorted by key
        order = np.argsort(keys, kind="stable")
        keys, versions, values = keys[order], versions[order], values[order]
    ref = naive.latest_per_key(keys.tolist(), versions.tolist(), as_of)
    got = latest_per_key(keys, versions, values, as_of=as_of)
    assert got.keys.tolist() == list(ref)
    assert got.positions.tolist() == list(ref.values())
    assert got.versions.tolist() == versions[list(ref.values())].tolist()
    assert np.array_equal(got.values, values[list(ref.values())])
    assert latest_per_key(keys, versions, as_of=as_of).values is None


@pytest.mark.parametrize("seed", range(4))
def test_latest_streaming_equals_one_shot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    keys, versions, values = _latest_case(rng, 5000)
    ref = latest_per_key(keys, versions, values[:, 0], as_of=5)
    acc = LatestPerKey(as_of=5)
    for part in np.split(np.arange(5000), np.sort(rng.integers(0, 5000, 6))):
        acc.update(keys[part], versions[part], values[part, 0])
    got = acc.result()
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)


def test_latest_invalid_input() -> None:
    with pytest.raises(EngineInputError, match="versions"):
        latest_per_key([1, 2], [1])
    with pytest.raises(EngineInputError, match="values"):
        latest_per_key([1, 2], [1, 1], [1.0])
    with pytest.raises(EngineInputError, match="as_of"):
        latest_per_key([1], [1], as_of=1.5)  # type: ignore[arg-type]
    acc = LatestPerKey()
    acc.update([1], [1], [1.0])
    with pytest.raises(EngineInputError, match="every chunk or in none"):
        acc.update([1], [2])
