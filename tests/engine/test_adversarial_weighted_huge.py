"""Weights near the top of the float64 range make Efraimidis-Spirakis keys ``log(u) / w``
subnormal, where they are rounded to an absolute step. Rows whose keys tie the cut there must
still be settled by their keys, one-shot and streaming: the kernel's shortcut that skips rows
below the cut without computing their key is off for a subnormal cut."""

from __future__ import annotations

import naive
import numpy as np
import pytest

from engine import WeightedSampler, weighted_sample
from engine._ranked import _sample_row, _sample_size

# keys whose u is within 5e-10 of 1 for seed 0, so that these weights give one subnormal key
# (found by a search over 4e8 keys); the lower key, B, wins the tie
A, W_A = 369006752, 1.7355859537018933e306
B, W_B = 205058685, 1e306
TIED = [(217180471, 5.234171228786831e307), (258316499, 7.265965130441518e307),
        (291543889, 9.924794149369016e307)]


def _reference(w: np.ndarray, keys: np.ndarray, k: int) -> list[int]:
    with np.errstate(over="ignore", invalid="ignore"):  # the reference's importance weights overflow
        rows = naive.weighted_sample(list(w), k, 0, keys=list(keys))[0]
    return sorted(int(keys[r]) for r in rows)


def test_one_shot_tie_at_a_subnormal_sampled_cut_goes_to_the_smaller_key() -> None:
    # three rows the threshold sample reads and one it does not share one subnormal key; the
    # sampled cut is that key, and the unsampled row must not be skipped before its tiebreak
    n = 65536
    s = _sample_size(n)
    sampled = np.array([_sample_row(j, n, s) for j in range(s)])
    w = np.zeros(n)
    keys = 10**12 + np.arange(n)
    for row, (key, weight) in zip(sampled[[10, 20, 30]], TIED):
        w[row], keys[row] = weight, key
    other = sampled[40] + 1
    assert other not in set(sampled.tolist())
    w[other], keys[other] = W_B, B
    got = keys[weighted_sample(w, 1, seed=0, keys=keys)].tolist()
    assert got == [B] == _reference(w, keys, 1)


def test_streaming_tie_with_a_subnormal_floor_goes_to_the_smaller_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import _lazy

    monkeypatch.setattr(_lazy.LazyBest, "MERGE_MIN", 1)  # merge at once: the next chunk has a floor
    filler = 10**12 + np.arange(8)
    s = WeightedSampler(1, seed=0)
    s.update([W_A], keys=[A])
    s.update(np.ones(filler.size), keys=filler)
    s.update([W_B], keys=[B])
    w = np.concatenate([[W_A], np.ones(filler.size), [W_B]])
    keys = np.concatenate([[A], filler, [B]])
    assert s.result().tolist() == [B] == keys[weighted_sample(w, 1, seed=0, keys=keys)].tolist()
    assert _reference(w, keys, 1) == [B]
