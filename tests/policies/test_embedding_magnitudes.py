"""Embedding-space strategies on float64 embeddings of extreme magnitude (a scoring pass's).

The vector index is float32: embeddings below about 1e-45 would become zeros (every distance 0)
and ones beyond 3.4e38 inf. The strategies scale float64 embeddings by a power of two first, so
their answers are those of a float64 brute force, and equal to the answers at an ordinary scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from policies import SelectionContext
from policies.coverage import Coverage
from policies.like_misclassified import LikeMisclassified
from policies.near_duplicates import NearDuplicates

N = 60
SCALES = [1e-50, 2.0 ** -300, 1e50, 1e300]


def _context(name: str, emb: np.ndarray, **scores: Any) -> SelectionContext:
    store = Store.open(f"memory://embedding-magnitudes-{name}", create=True)
    snap = store.as_of(store.append(pa.table({"key": np.arange(N), "ts": np.arange(N)})).version)
    computed = {"embedding": (np.arange(N), emb), **{k: (np.arange(N), v) for k, v in scores.items()}}
    return SelectionContext(snapshot=snap, computed_scores=computed)


def _embeddings() -> np.ndarray:
    """20 points on a grid (1 apart or more), each with two copies 0.01 to 0.02 away."""
    rng = np.random.default_rng(5)
    centres = rng.permutation(np.stack(np.meshgrid(np.arange(5), np.arange(4)), -1).reshape(-1, 2))
    copies = centres[np.arange(N) % 20] + rng.uniform(0.01, 0.02, size=(N, 2)) * (np.arange(N) >= 20)[:, None]
    return copies.astype(np.float64)


def _brute_near_duplicates(emb: np.ndarray, radius: float) -> list[int]:
    diff = emb[:, None] - emb[None]
    dist = np.hypot(diff[..., 0], diff[..., 1])  # float64, no overflow of squares at 1e300
    return [i for i in range(N) if not (dist[i, :i] <= radius).any()]


@pytest.mark.parametrize("scale", SCALES)
def test_near_duplicates_of_extreme_float64_embeddings_match_brute_force(scale: float) -> None:
    emb = _embeddings() * scale
    want = _brute_near_duplicates(emb, 0.1 * scale)
    assert want == list(range(20))  # the grid points survive, their copies go
    got = NearDuplicates(radius=0.1 * scale, k=4).select(_context(f"nd-{scale}", emb)).keys.tolist()
    assert got == want


@pytest.mark.parametrize("scale", [1.0, 1e-50, 1e50])
def test_near_duplicates_radius_beyond_float64_squares(scale: float) -> None:
    emb = _embeddings() * scale
    got = NearDuplicates(radius=1e200 * scale, k=N).select(_context(f"big-radius-{scale}", emb)).keys.tolist()
    assert got == [0]  # every sample within the radius of key 0


@pytest.mark.parametrize("scale", SCALES)
def test_coverage_and_like_misclassified_do_not_depend_on_the_scale(scale: float) -> None:
    rng = np.random.default_rng(9)
    emb = rng.normal(size=(N, 3))
    loss = rng.uniform(0.0, 3.0, N)
    conf = rng.uniform(0.0, 1.0, N)
    def pick(e: np.ndarray, tag: str) -> tuple[list[int], list[int]]:
        ctx = _context(f"{tag}-{scale}", e, loss=loss, least_confidence=conf)
        return (Coverage(limit=8, k=3).select(ctx).keys.tolist(),
                LikeMisclassified(seeds=4, k=3).select(ctx).keys.tolist())
    assert pick(emb * scale, "scaled") == pick(emb, "plain")
