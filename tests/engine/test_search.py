"""The NumPy key-set searches the store's queries use (``engine._search``) against ``np.isin``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine._search import hit_positions, isin_sorted_numpy

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
