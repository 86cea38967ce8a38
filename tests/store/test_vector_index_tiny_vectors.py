"""The exact vector search on tiny vectors, whose float32 products underflow.

Vectors of magnitude 1e-30 are ordinary float32 numbers, but products of their components
(1e-60) are below float32's range: the candidate step must allow for that absolute error, and the
neighbours must still be those of a float64 brute force over the stored float32 vectors.
"""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.vectors import VectorIndex


def _brute(v: np.ndarray, q: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    d = ((v - q) ** 2).sum(axis=1)
    order = np.lexsort((np.arange(v.shape[0]), d))[:k]
    return order.tolist(), d[order]


@pytest.mark.parametrize("scale", [1e-25, 1e-30, 1e-38, 1e-44])
def test_tiny_vectors_get_their_exact_neighbours(scale: float) -> None:
    rng = np.random.default_rng(0)
    vecs = (rng.normal(size=(50, 3)) * scale).astype(np.float32).astype(np.float64)
    index = VectorIndex.from_arrays(np.arange(50), vecs)
    keys, dist = index.search(vecs[:8], 4)
    for i in range(8):
        want_keys, want_dist = _brute(vecs, vecs[i], 4)
        assert keys[i].tolist() == want_keys
        np.testing.assert_array_equal(dist[i], want_dist)

