"""A warm-up trigger's firing at the very row where the drift trigger's warm-up ends counts the
same whether or not a delta ends there."""

from __future__ import annotations

import numpy as np
import pytest

from policies import DataDrift, Time, TriggerInput


def _drift() -> DataDrift:
    # the reference is full after 4 rows and warmup=0: the warm-up ends at cutoff 4
    return DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=100.0,
                     window=4, every=2, min_samples=2, warmup_trigger=Time(every=10, start=0))


def _fire(cuts: list[int]) -> list[tuple[int, int, str]]:
    ts = np.array([0, 1, 2, 3, 10, 11, 25, 26])
    x = np.arange(8, dtype=np.float64)
    t = _drift()
    out, prev = [], 0
    for v, c in enumerate([*cuts, ts.size], start=1):
        d = TriggerInput(version=v, keys=np.arange(prev, c), ts=ts[prev:c], features={"x": x[prev:c]})
        out += [(f.version, f.position, f.reason.split(":")[0]) for f in t.fire(d)]
        prev = c
    return out


@pytest.mark.parametrize("cuts", [[4], [4, 4], [2, 4], [4, 5]])
def test_warmup_firing_at_the_warmup_end_does_not_depend_on_the_split(cuts: list[int]) -> None:
    one = _fire([])
    # Time fires at ts 10 (row 4): cutoff 4, where the warm-up ended; ts 25 comes after it
    assert one == [(1, 4, "warm-up")]
    # before: with a delta ending after row 4, Time's firing came at position 0 of the next
    # delta and was dropped
    by_version = _fire(cuts)
    assert len(by_version) == 1 and by_version[0][2] == "warm-up"
    starts = [0, *cuts]
    v, pos, _ = by_version[0]
    assert starts[v - 1] + pos == 4
