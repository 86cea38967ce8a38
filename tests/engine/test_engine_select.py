"""top_k / bottom_k / TopK against the sorted-list reference."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import EngineInputError, TopK, bottom_k, top_k

SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0])


def _scores(rng: np.random.Generator, n: int, dtype: type, ties: bool) -> np.ndarray:
    if ties:  # few distinct values, so ties are everywhere
        s = rng.integers(-3, 4, n).astype(dtype)
    else:
        s = rng.normal(size=n).astype(dtype)
    if np.dtype(dtype).kind == "f" and n:
        at = rng.integers(0, n, max(1, n // 10))
        s[at] = rng.choice(SPECIALS, at.size).astype(dtype)
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
@pytest.mark.parametrize("seed", range(6))
def test_matches_reference(dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    s = _scores(rng, n, dtype, ties=seed % 2 == 0)
    keys = rng.permutation(n * 3)[:n] if seed % 3 == 0 else None
    for k in (0, 1, 7, n // 2, n, n + 5):
        for largest in (True, False):
            got = top_k(s, k, keys=keys, largest=largest)
            assert got.dtype == np.int64
            assert got.tolist() == naive.top_k(s, k, keys, largest)
            unsorted = top_k(s, k, keys=keys, largest=largest, sorted=False)
            assert unsorted.tolist() == sorted(got.tolist())


def test_large_input_uses_sampled_threshold_and_is_exact() -> None:
    rng = np.random.default_rng(1)
    # 1.2M rows: the parallel path; massive ties around every threshold
    s = rng.integers(0, 50, 1_200_000).astype(np.float32)
    s[::97] = np.nan
    for k in (1, 1000, 150_000, 1_150_000):
        got = top_k(s, k, sorted=False)
        v = np.where(np.isnan(s), -np.inf, s.astype(np.float64))
        ref = np.lexsort((np.arange(s.size), -v))
        ref = ref[~np.isnan(s[ref])][:k]
        assert np.array_equal(got, np.sort(ref))


@pytest.mark.parametrize("m", [1, 7, 40_000, 300_000])
def test_kth_largest_equals_sorting(m: int) -> None:
    # The radix select behind large picks (>= 2^15 candidates), on bit patterns that stress
    # each digit: extremes of int64, tiny spreads, every value equal, negative and positive.
    from engine._pick import _kth_largest

    rng = np.random.default_rng(m)
    i64 = np.iinfo(np.int64)
    mixed = rng.integers(i64.min, i64.max, m, endpoint=True)
    mixed[::7], mixed[::5], mixed[::3] = i64.min, i64.max, 0
    cases = [
        rng.integers(i64.min, i64.max, m, endpoint=True),
        rng.integers(-3, 3, m),
        np.full(m, i64.min),
        np.full(m, i64.max),
        mixed,
        (rng.standard_normal(m) * 1e-300).view(np.int64),
        rng.integers(1 << 40, (1 << 40) + 5000, m),
    ]
    for a in cases:
        ref = np.sort(a)
        for q in sorted({1, 2, m // 3 + 1, m // 2 + 1, max(1, m - 1), m} & set(range(1, m + 1))):
            assert _kth_largest(a.copy(), q) == ref[m - q]


def test_adversarial_periodic_input_falls_back_exactly() -> None:
    # Every sampled row (the sample's stride, 16, is a multiple of 4) holds 0.0, a quarter of all
    # rows: the sampled threshold admits only the 65,536 zeros, too few for k = 70,000, so the
    # kernel must notice and recollect exactly.
    n = 65536 * 4
    s = np.full(n, 5.0)
    s[(np.arange(65536) * n) // 65536] = 0.0
    got = bottom_k(s, 70_000, sorted=False)
    ref = np.sort(np.lexsort((np.arange(n), s))[:70_000])
    assert np.array_equal(got, ref)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.just(0.0)), max_size=60),
    st.integers(0, 70),
    st.booleans(),
)
def test_property_against_reference(values: list[float], k: int, largest: bool) -> None:
    s = np.array(values, dtype=np.float64)
    assert top_k(s, k, largest=largest).tolist() == naive.top_k(s, k, None, largest)


def test_edge_cases() -> None:
    assert top_k(np.array([]), 3).tolist() == []
    assert top_k([np.nan, np.nan], 1).tolist() == []
    assert top_k([2.0, 2.0, 2.0], 2, keys=[5, 3, 4]).tolist() == [1, 2]
    assert bottom_k([2.0, 2.0, 2.0], 2, keys=[5, 3, 4]).tolist() == [1, 2]
    assert top_k([-np.inf, np.nan, np.inf, 0.0], 4).tolist() == [2, 3, 0]
    assert top_k([-0.0, 0.0], 1, keys=[2, 1]).tolist() == [1]  # -0.0 ties with 0.0
    assert top_k(np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max]), 1, largest=False).tolist() == [0]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: top_k([1.0], -1), "k"),
        (lambda: top_k([1.0], 1.5), "k"),  # type: ignore[arg-type]
        (lambda: top_k([1.0], True), "k"),
        (lambda: top_k([[1.0]], 1), "scores"),
        (lambda: top_k(["a"], 1), "scores"),
        (lambda: top_k([1.0, 2.0], 1, keys=[1]), "keys"),
        (lambda: top_k([1.0], 1, keys=[1.5]), "keys"),
        (lambda: TopK(-2), "k"),
    ],
)
def test_invalid_input(call, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineInputError) as err:
        call()
    assert err.value.name == name
    assert str(err.value).startswith(f"invalid {name}=")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("largest", [True, False])
def test_streaming_equals_one_shot(seed: int, largest: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    s = _scores(rng, n, np.float64, ties=seed % 2 == 0)
    keys = rng.permutation(10 * n)[:n]
    k = int(rng.integers(0, 300))
    ref = top_k(s, k, keys=keys, largest=largest)
    cuts = np.sort(rng.integers(0, n, 7))
    acc = TopK(k, largest=largest)
    if seed % 2:
        acc._best.MERGE_MIN = 16  # merge pending candidates often, with small inputs too
    for part in np.split(np.arange(n), cuts):
        acc.update(s[part], keys=keys[part])
        assert acc._best.rank.size <= k  # bounded memory: k kept, pending merged once they outnumber them
        assert acc._best._n_pending <= max(k, acc._best.MERGE_MIN) + part.size
    got_keys, got_scores = acc.result()
    assert got_keys.tolist() == keys[ref].tolist()
    assert np.array_equal(got_scores, s[ref], equal_nan=True)


def test_streaming_default_keys_are_global_positions() -> None:
    s = np.random.default_rng(0).normal(size=1000)
    acc = TopK(10)
    for part in np.array_split(s, 9):
        acc.update(part)
    assert acc.n_seen == 1000
    assert acc.result()[0].tolist() == top_k(s, 10).tolist()


def test_streaming_rejects_mixed_kinds() -> None:
    acc = TopK(3)
    acc.update([1.0, 2.0])
    with pytest.raises(EngineInputError, match="scores"):
        acc.update(np.array([1, 2]))


def test_streaming_refused_chunk_sets_no_kind() -> None:
    # a float chunk refused for its keys was never fed: an integer chunk after it is the first
    acc = TopK(1)
    with pytest.raises(EngineInputError, match="keys"):
        acc.update([1.0, 2.0], keys=[1])
    acc.update(np.array([5, 6]))
    assert acc.result()[0].tolist() == [1]


def test_deterministic_and_thread_count_independent() -> None:
    import numba

    rng = np.random.default_rng(3)
    s = rng.integers(0, 1000, 1_200_000).astype(np.float64)  # parallel path
    a = top_k(s, 5000)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = top_k(s, 5000)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(a, b)
