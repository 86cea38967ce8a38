"""A score given as one array of two rows, keys then values (``np.vstack([keys, values])``), is
a ``(keys, values)`` pair, as a tuple of the two rows is; other arrays are refused."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import SelectionContext
from policies.score_based import Loss


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://scores-array-pair-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"ts": np.arange(6), "label": np.zeros(6, dtype=np.int64)}))
    return store.as_of(1)


def test_an_array_of_two_rows_is_a_pair(snap) -> None:  # type: ignore[no-untyped-def]
    keys = snap.keys()
    pair = np.vstack([keys, np.arange(6, dtype=np.int64) * 10])
    as_array = Loss(ratio=0.5).select(SelectionContext(snapshot=snap, computed_scores={"loss": pair}))
    as_tuple = Loss(ratio=0.5).select(SelectionContext(snapshot=snap, computed_scores={"loss": (pair[0], pair[1])}))
    assert as_array.keys.tolist() == as_tuple.keys.tolist() == np.sort(keys)[3:].tolist()


@pytest.mark.parametrize("src", [np.arange(3), np.zeros((3, 2)), np.float64(1.0)])
def test_other_arrays_are_still_refused(snap, src) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="computed_scores"):
        SelectionContext(snapshot=snap, computed_scores={"loss": src})


@pytest.mark.parametrize("masked", ["keys", "values"])
def test_masked_entries_of_a_pair_are_refused(snap, masked: str) -> None:  # type: ignore[no-untyped-def]
    """NumPy drops a masked array's mask: the value hidden behind it would be selected on (a key
    the caller masked out picked, or picked by a value the caller masked out)."""
    keys = np.ma.array(snap.keys(), mask=[False] * 5 + [masked == "keys"])
    values = np.ma.array(np.arange(6.0), mask=[False] * 5 + [masked == "values"])
    with pytest.raises(InvalidArgumentError, match="masked"):
        Loss(limit=1).select(SelectionContext(snapshot=snap, computed_scores={"loss": (keys, values)}))
