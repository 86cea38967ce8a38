"""A drift trigger's windows hold the rows live in the store: a row a delta inserts and deletes is
left out, and a reference whose rows were all deleted or erased gives way to the next window (the
trigger does not stop comparing), without bringing back a warm-up that had ended."""

from __future__ import annotations

from typing import Any

import numpy as np

from policies import DataDrift, TriggerInput

X = np.concatenate([np.random.default_rng(0).normal(0, 1, 200), np.random.default_rng(1).normal(5, 1, 600)])
TS = np.arange(X.size, dtype=np.int64)


def _fire(t: DataDrift, v: int, a: int, b: int, deleted: Any = (), erased: Any = ()) -> list[str]:
    tin = TriggerInput(version=v, keys=TS[a:b], ts=TS[a:b], features={"x": X[a:b]},
                       deleted=np.asarray(deleted, np.int64), erased=np.asarray(erased, np.int64))
    return [f.reason for f in t.fire(tin)]


def test_a_row_inserted_and_deleted_in_one_delta_is_in_no_window() -> None:
    # keys are never reused: a key a delta both inserts and deletes is not live after it
    t = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _fire(t, 3, 0, 130, deleted=[12, 120, 999])
    st = t.state()
    assert 12 not in st["reference"] and 120 not in st["window"]
    assert st["reference"] == [k for k in range(100) if k != 12] and st["window"] == [*range(100, 120), *range(121, 130)]


def test_a_reference_whose_rows_are_all_erased_gives_way_to_the_next_window() -> None:
    t = DataDrift(columns=["x"], metric="ks", window=100, every=50)
    _fire(t, 1, 0, 100)
    _fire(t, 2, 0, 0, erased=np.arange(100))
    assert t.state()["reference"] is None  # collected again from the rows that follow
    fired = _fire(t, 3, 100, X.size)
    assert t.n_evaluations > 0 and fired and fired[0].startswith("drift:")
    assert t.state()["reference"] is not None


def test_a_renewed_reference_does_not_bring_back_an_ended_warm_up() -> None:
    t = DataDrift(columns=["x"], metric="ks", window=100, every=50,
                  warmup_trigger={"name": "data_amount", "every": 30})
    _fire(t, 1, 0, 100)  # the reference is set: the warm-up (0 evaluations) ends here
    _fire(t, 2, 0, 0, erased=np.arange(100))
    fired = _fire(t, 3, 100, 190)  # collecting the next reference: nothing to compare
    assert fired == []
