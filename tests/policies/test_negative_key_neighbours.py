"""The embedding strategies find neighbours of negative keys: the vector index pads its results
with key -1 at distance inf, and a real neighbour of negative key is not padding. Shifting every
key by a constant (order kept) shifts the selection by the same constant."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from policies import Coverage, LikeMisclassified, NearDuplicates, SelectionContext


def _ctx(keys: np.ndarray, emb: np.ndarray, loss: np.ndarray, lc: np.ndarray) -> SelectionContext:
    store = Store.open(f"memory://negative-keys-{uuid.uuid4().hex}", create=True)
    snap = store.as_of(store.append(pa.table({"key": keys, "ts": np.arange(keys.size)})).version)
    return SelectionContext(snapshot=snap, computed_scores={
        "embedding": (keys, emb), "loss": (keys, loss), "least_confidence": (keys, lc)})


def test_documented_answers_with_negative_keys() -> None:
    keys = np.array([-5, 1, 7, 8, 9, 10])
    emb = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [0.3, 0.0], [9.0, 9.0], [9.1, 9.0]])
    loss = np.array([0.1, 0.1, 0.1, 0.1, 3.0, 0.1])
    lc = np.array([0.1, 0.1, 0.1, 0.1, 0.9, 0.1])
    ctx = _ctx(keys, emb, loss, lc)
    # key 1 duplicates key -5 (smaller key): dropped
    assert NearDuplicates(radius=0.1, k=2).select(ctx).keys.tolist() == [-5, 7, 8, 9, 10]
    # the seed (key 9) and its 5 nearest neighbours: every row, key -5 included
    assert LikeMisclassified(seeds=1, k=5).select(ctx).keys.tolist() == [-5, 1, 7, 8, 9, 10]


@pytest.mark.parametrize("seed", range(20))
def test_selection_shifts_with_the_keys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 12))
    keys = np.sort(rng.choice(np.arange(-20, 20), n, replace=False))
    emb = rng.integers(0, 4, (n, 2)).astype(float)
    loss, lc = rng.random(n) * 3, rng.random(n)
    for s in (NearDuplicates(radius=1.0, k=3), Coverage(limit=max(1, n // 3), k=2),
              LikeMisclassified(seeds=2, k=2)):
        low = s.select(_ctx(keys, emb, loss, lc)).keys
        high = s.select(_ctx(keys + 100, emb, loss, lc)).keys - 100
        assert low.tolist() == high.tolist(), s
