"""The NumPy key-set searches the store's queries use (``engine._search``) against ``np.isin``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine._search import hit_positions, intersect_keys, isin_sorted_numpy, setdiff_keys, sorted_unique, union_keys

_ints = st.lists(st.integers(-20, 20), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_ints, _ints)
def test_hit_positions_are_every_position_of_a_member(a: list[int], b: list[int]) -> None:
    sa = np.sort(np.array(a, dtype=np.int64))
    sb = np.unique(np.array(b, dtype=np.int64))
    got = hit_positions(sa, sb)
    assert got.tolist() == np.flatnonzero(np.isin(sa, sb)).tolist()


@settings(max_examples=300, deadline=None)
@given(_ints, _ints)
def test_isin_sorted_numpy_matches_isin(a: list[int], b: list[int]) -> None:
    aa = np.array(a, dtype=np.int64)
    sb = np.unique(np.array(b, dtype=np.int64))
    assert isin_sorted_numpy(aa, sb).tolist() == np.isin(aa, sb).tolist()
    assert isin_sorted_numpy(np.sort(aa), sb).tolist() == np.isin(np.sort(aa), sb).tolist()


_EDGES = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0, 2**53, 2**53 + 1]


@settings(max_examples=300, deadline=None)
@given(_ints, _ints, st.booleans())
def test_key_set_operations_match_numpys(a: list[int], b: list[int], edges: bool) -> None:
    """Distinct values, unions, intersections and differences of int64 keys are NumPy's,
    in value and type, keys in any order and with repeats, at the ends of int64 too."""
    aa = np.array(a + (_EDGES if edges else []), dtype=np.int64)
    bb = np.array(b + (_EDGES[::2] if edges else []), dtype=np.int64)
    for got, want in ((sorted_unique(aa), np.unique(aa)), (union_keys(aa, bb), np.union1d(aa, bb)),
                      (intersect_keys(aa, bb), np.intersect1d(aa, bb)), (setdiff_keys(aa, bb), np.setdiff1d(aa, bb))):
        assert got.dtype == np.int64 and got.tolist() == want.tolist()


def test_key_set_operations_of_many_keys_in_any_order() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-(2**62), 2**62, 300_000)
    a = np.concatenate([a, a[:1000], np.arange(70_000)])  # repeats, and a run
    b = np.concatenate([a[::7], rng.integers(-(2**62), 2**62, 1000)])
    rng.shuffle(a)
    assert sorted_unique(a).tolist() == np.unique(a).tolist()
    assert union_keys(a, b).tolist() == np.union1d(a, b).tolist()
    assert intersect_keys(a, b).tolist() == np.intersect1d(a, b).tolist()
    assert setdiff_keys(a, b).tolist() == np.setdiff1d(a, b).tolist()


def _unsorted_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = np.unique(rng.integers(-(2**62), 2**62, 300))
    a = np.concatenate([rng.integers(-(2**62), 2**62, 9000), b[::3], b[::3], [np.iinfo(np.int64).min, np.iinfo(np.int64).max]])
    rng.shuffle(a)
    return a.astype(np.int64), b.astype(np.int64)


def test_unsorted_keys_take_the_hash_prefilter_and_still_answer_exactly() -> None:
    """A long unsorted batch against few sorted keys goes through a hashed filter (the NumPy
    byte table, or the kernels' where this process loaded Numba); about 1.6% of the keys not in
    ``b`` pass the byte table, so a filter that skipped the search would say True for over a
    hundred of them, and one that lost a slot would miss members (repeats included)."""
    import engine._search as search

    for seed in range(5):
        a, b = _unsorted_case(seed)
        assert a.size >= search.PREFILTER_MIN and b.size <= 4 * a.size
        want = np.isin(a, b)
        assert isin_sorted_numpy(a, b).tolist() == want.tolist()
        assert 200 <= int(want.sum()) < a.size  # members (each twice) and non-members both there


def test_hash_prefilter_is_exact_when_every_key_collides() -> None:
    """Keys built to share the table's slot 0 (``m`` times the inverse of the hash's multiplier
    modulo 2^64, for small ``m``, hashes to ``m``): every key passes the filter, and the search
    alone must tell members from the rest."""
    import engine._search as search

    inverse = pow(int(search._FIB), -1, 2**64)
    every = np.array([(m * inverse) % 2**64 for m in range(1, 121)], dtype=np.uint64).view(np.int64)
    b = np.sort(every[::7])
    a = np.tile(every[np.random.default_rng(1).permutation(every.size)], 50)  # 6,000 keys
    slots = (a.view(np.uint64) * search._FIB) >> np.uint64(56)
    assert a.size >= search.PREFILTER_MIN and not slots.any()
    got = isin_sorted_numpy(a, b)  # (a is unsorted and long enough: the hashed path)
    assert got.tolist() == np.isin(a, b).tolist()
    assert 0 < int(got.sum()) < a.size
    # the NumPy filter itself, whether or not this process has loaded the kernels
    table = search.HashedKeys.for_batch(b, a.size, kernel=False)
    assert table._set is None and table._base is None and table._bytes is not None
    assert table.hits(a).tolist() == np.flatnonzero(got).tolist()


@pytest.mark.parametrize("rows, spread, every, way, kind", [
    (400_000, 1, 97, "direct", "bytes"), (2_000_000, 1, 97, "direct", "bits"),
    (400_000, 1_000_003, 97, "hashed", "bytes"), (400_000, 1_000_003, 3, "hashed", "bits")])
def test_a_stream_table_answers_batch_after_batch_on_kept_and_fresh_buffers(
        rows: int, spread: int, every: int, way: str, kind: str) -> None:
    """One table serves every batch of a stream; its passes run in the thread's kept scratch
    buffers up to ``KEPT`` keys and in fresh arrays above. Each batch's answer must be its own
    (nothing left over from the batch before, whatever their sizes): direct tables (dense keys:
    the set spans at most 2^24 values) and hashed ones (keys spread wide), each with a byte a
    slot (at most 2^BYTE_TABLE_BITS slots) and a bit a slot (more)."""
    from engine._scratch import KEPT
    from engine._search import HashedKeys

    rng = np.random.default_rng(5)
    keys = rng.permutation(rows).astype(np.int64) * spread
    dead = np.sort(keys[keys // spread % every == 0])
    table = HashedKeys.for_batch(dead, 1 << 16, slots_per_key=512, kernel=False)  # (kernels: test_key_set.py)
    # the table of the expected kind, not the plain search
    assert (table._base is not None) == (way == "direct")
    assert (table._bytes if kind == "bytes" else table._table) is not None
    for size in (1 << 16, KEPT + 1000, 10, 1 << 16, 5000, KEPT):
        batch = keys[rng.integers(0, keys.size - size) :][:size]
        assert table.hits(batch).tolist() == np.flatnonzero(np.isin(batch, dead)).tolist()


@pytest.mark.parametrize("span", [1_000, 3_000_000])  # a byte a slot; a bit a slot
def test_a_direct_table_is_exact_outside_its_span_at_the_ends_of_int64(span: int) -> None:
    """A direct table's slot is ``key - (first - 1)`` in unsigned arithmetic: keys below, above,
    next to the set's span and at both ends of int64 must land on unmarked slots, never wrap
    into the span (its answers are not checked by a search)."""
    from engine._search import HashedKeys

    lo64, hi64 = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    for first in (lo64, -5, 0, hi64 - span):
        dead = first + np.arange(0, span, 7, dtype=np.int64)
        dead = np.unique(np.append(dead, first + span - 1))
        table = HashedKeys(dead)
        assert table._base is not None and (table._bytes is not None) == (span < 1 << 20)
        near = [first - 2, first - 1, first, first + 1, first + span - 2, first + span - 1, first + span,
                first + span + 1, lo64, lo64 + 1, hi64, hi64 - 1, 0, -1, 1]
        probe = np.array([k for k in near if lo64 <= k <= hi64], dtype=np.int64)
        probe = np.concatenate([probe[::-1], np.random.default_rng(2).permutation(dead)[:5000], probe])
        assert table.hits(probe).tolist() == np.flatnonzero(np.isin(probe, dead)).tolist(), first


def test_a_direct_table_may_take_twice_the_slots_of_a_hashed_one() -> None:
    """A stream's table holds at most 2^23 hashed slots; a direct one answers without a search
    and may span twice that (10^7 dense keys: 1.25 MB as bits), no more."""
    from engine._search import PREFILTER_BITS, HashedKeys

    for span, direct in ((1 << (PREFILTER_BITS + 1), True), ((1 << (PREFILTER_BITS + 1)) + 1, False)):
        dead = np.array([0, 5, span - 3], dtype=np.int64)  # + 2 unmarked end slots: `span` slots
        table = HashedKeys(dead)
        assert (table._base is not None) == direct, span
        probe = np.array([-1, 0, 1, 5, span - 4, span - 3, span - 2, 1 << 40], dtype=np.int64)
        assert table.hits(probe).tolist() == [1, 3, 5]
