"""A store's vector index returns live keys below zero: its padding (key -1) is told apart by
its infinite distance, not by the key's sign."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from modyn_store import Store
from modyn_store.core.vectors import VectorIndex


def test_from_store_returns_negative_keys() -> None:
    store = Store.open(f"memory://vi-negative-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"key": [-5, -1, 1, 7], "ts": [0, 1, 2, 3]}))
    emb = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    store.scores.write("embedding", np.array([-5, -1, 1, 7]), emb)
    idx = VectorIndex.from_store(store, "embedding")
    try:
        keys, d2 = idx.search(np.array([[0.0, 0.0]]), k=4)
        assert keys.tolist() == [[-5, -1, 1, 7]]
        assert d2.tolist() == [[0.0, 0.25, 1.0, 50.0]]
        keys, d2 = idx.search(np.array([[0.0, 0.0]]), k=6)  # more than there are: padded
        assert keys.tolist() == [[-5, -1, 1, 7, -1, -1]]
        assert np.isinf(d2[0, 4:]).all()
    finally:
        idx.close()
