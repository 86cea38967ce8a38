"""The kernels' key set (``engine._bloom.KeySet``, behind ``engine._search.HashedKeys`` for keys
spread too wide for a direct table) against ``np.isin``: its filter only narrows, its hash set
answers, whatever the keys' hashes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine._bloom as bloom
from engine._bloom import _FIB, _MIX, KeySet
from engine._search import HashedKeys

_LO, _HI = np.iinfo(np.int64).min, np.iinfo(np.int64).max
_keys = st.lists(st.one_of(st.integers(_LO, _HI), st.sampled_from([_LO, _LO + 1, -1, 0, 1, _HI - 1, _HI])),
                 max_size=80)


def _hits(s: KeySet, a: np.ndarray) -> list[int]:
    out = np.empty(a.size, np.int64)
    return out[: s.hits(a, out)].tolist()


@settings(max_examples=300, deadline=None)
@given(_keys, _keys, st.integers(7, 12), st.booleans())
def test_hits_are_every_position_of_a_member(members: list[int], probe: list[int], bits: int, search: bool) -> None:
    """Either exact stage: the hash set, or (``search``: a set past ``HASH_SET_MAX`` keys,
    here every set) the binary search of the sorted keys."""
    b = np.unique(np.array(members, dtype=np.int64))
    a = np.array(probe + members, dtype=np.int64)  # members (some repeated) and other keys
    with pytest.MonkeyPatch.context() as mp:
        if search:
            mp.setattr(bloom, "HASH_SET_MAX", -1)
        s = KeySet(b, bits)
    assert (s._slots.size == 0) == search
    assert _hits(s, a) == np.flatnonzero(np.isin(a, b)).tolist()


def _preimages(values: list[int], multiplier: np.uint64) -> np.ndarray:
    """Keys whose product with ``multiplier`` (mod 2^64) is each of ``values``."""
    inverse = pow(int(multiplier), -1, 2**64)
    return np.array([(v * inverse) % 2**64 for v in values], dtype=np.uint64).view(np.int64)


@pytest.mark.parametrize("search", [False, True])
@pytest.mark.parametrize("top", [False, True])
def test_keys_that_all_collide_are_told_apart(top: bool, search: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys built to share one filter word and its two bits (every key passes the filter), and
    keys built to share the hash set's first or last slot (one long probe chain, wrapping past
    the table's end for ``top``): only the exact stage tells members from the rest (the hash
    set, or with ``search`` the binary search of a set too large for one)."""
    if search:
        monkeypatch.setattr(bloom, "HASH_SET_MAX", 10)
    m = np.arange(1, 400)
    values = [2**64 - int(x) if top else int(x) for x in m]
    for multiplier in (_FIB, _MIX):
        every = _preimages(values, multiplier)
        members = np.sort(every[::3])
        s = KeySet(members, 7)
        probe = np.random.default_rng(3).permutation(np.concatenate([every, every[:50]]))
        assert _hits(s, probe) == np.flatnonzero(np.isin(probe, members)).tolist()
        assert 0 < len(_hits(s, probe)) < probe.size


@pytest.mark.parametrize("kernel", [False, True])
def test_a_spread_table_answers_batch_after_batch_either_way(kernel: bool) -> None:
    """The NumPy filter and the kernels, forced, give the same answers on a stream's batches
    of keys spread over the whole int64 range (no direct table can hold their span)."""
    rng = np.random.default_rng(9)
    keys = np.unique(rng.integers(_LO, _HI, 300_000, dtype=np.int64))
    rng.shuffle(keys)
    dead = np.sort(keys[::97])
    table = HashedKeys.for_batch(dead, 1 << 16, slots_per_key=512, kernel=kernel)
    assert table._base is None and (table._set is not None) == kernel
    for size in (1 << 16, 10, 5000, 1 << 16):
        batch = keys[rng.integers(0, keys.size - size) :][:size]
        assert table.hits(batch).tolist() == np.flatnonzero(np.isin(batch, dead)).tolist()


def test_the_kernels_serve_spread_sets_only_where_numba_is_loaded() -> None:
    """A fresh process's stream over spread keys keeps the NumPy filter and does not import
    Numba, whatever the set's size (its import and load cost more than most reads win); once
    Numba is loaded (a pipeline, a policy, a training process) the same sets take the kernels,
    and ``kernel=True`` asks for them anywhere."""
    code = (
        "import sys, numpy as np\n"
        "from engine._search import HashedKeys, PREFILTER_BITS\n"
        "rng = np.random.default_rng(0)\n"
        "small = np.unique(rng.integers(-2**62, 2**62, 1000))\n"
        "big = np.unique(rng.integers(-2**62, 2**62, 1 << 19))\n"
        "print(HashedKeys(small)._set is None, HashedKeys(big)._set is None, 'numba' in sys.modules)\n"
        "print(HashedKeys(small, kernel=True)._set is None, 'numba' in sys.modules)\n"
        "print(HashedKeys(small)._set is None, HashedKeys(big)._set is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False", "False", "True", "False", "False"]


def test_a_stream_takes_the_kernels_for_a_set_too_large_for_numpys_table() -> None:
    """A stream's table (``for_stream``) of over 2^PREFILTER_BITS / 16 spread keys has no NumPy
    table (every key would be searched, 100-200 ns): it takes the kernels even in a process that
    had not loaded Numba; smaller sets keep the NumPy filter there."""
    code = (
        "import sys, numpy as np\n"
        "from engine._search import HashedKeys, PREFILTER_BITS\n"
        "rng = np.random.default_rng(1)\n"
        "n = (1 << PREFILTER_BITS) // 16\n"
        "at = np.unique(rng.integers(-2**62, 2**62, n + 100))[:n]\n"
        "print(HashedKeys.for_stream(at, 1 << 16)._set is None, 'numba' in sys.modules)\n"
        "over = np.unique(rng.integers(-2**62, 2**62, n + 100))\n"
        "t = HashedKeys.for_stream(over, 1 << 16)\n"
        "probe = np.concatenate([over[::5], rng.integers(-2**62, 2**62, 70000)])\n"
        "ok = t.hits(probe).tolist() == np.flatnonzero(np.isin(probe, over)).tolist()\n"
        "print(t._set is None, 'numba' in sys.modules, ok)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False", "True", "True"]


def test_a_large_set_gets_a_filter_of_16_bits_a_key() -> None:
    """A set past the NumPy table's bound keeps at least 16 filter bits a key (the filter grows
    past ``max_bits``), so that few keys not in it reach the hash set."""
    keys = np.unique(np.random.default_rng(4).integers(0, 2**62, 300_000))
    table = HashedKeys(keys, max_bits=16, kernel=True)
    assert table._set.filter_bits >= 22 and (1 << table._set.filter_bits) >= 16 * keys.size
