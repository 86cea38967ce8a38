"""Embedding-space strategies against brute-force references of their documented rules.

``LikeMisclassified``: the ``seeds`` misclassified rows of highest loss and the ``k`` nearest
other rows of each (ties to the smaller key, exact duplicates included); with ``limit`` seeds
first, then neighbours by distance.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from policies import LikeMisclassified, SelectionContext
from policies.like_misclassified import MISCLASSIFIED_RTOL


def _ctx(keys: np.ndarray, emb: np.ndarray, loss: np.ndarray, lc: np.ndarray) -> SelectionContext:
    from modyn_store import Store

    store = Store.open(f"memory://neighbours-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"key": keys, "ts": np.arange(keys.size)}))
    return SelectionContext(snapshot=store.as_of(None), computed_scores={
        "embedding": (keys, emb), "loss": (keys, loss), "least_confidence": (keys, lc)})


def _reference(keys: np.ndarray, emb: np.ndarray, loss: np.ndarray, lc: np.ndarray, seeds: int,
               k: int, limit: int | None) -> list[int]:
    e = emb.astype(np.float64)
    wrong = [i for i in range(keys.size) if np.exp(-loss[i]) < (1 - lc[i]) * (1 - MISCLASSIFIED_RTOL)]
    chosen_seeds = sorted(wrong, key=lambda i: (-loss[i], keys[i]))[:seeds]
    best: dict[int, float] = {}
    for s in chosen_seeds:
        d = ((e - e[s]) ** 2).sum(axis=1)
        others = sorted((j for j in range(keys.size) if j != s), key=lambda j: (d[j], keys[j]))
        for j in others[:k]:
            if j not in chosen_seeds:
                best[j] = min(best.get(j, np.inf), float(d[j]))
    neighbours = sorted(best, key=lambda j: (best[j], keys[j]))
    out = [int(keys[i]) for i in chosen_seeds] + [int(keys[j]) for j in neighbours]
    return sorted(out if limit is None else out[:limit])


def test_like_misclassified_takes_k_neighbours_of_a_seed_behind_duplicates() -> None:
    # three identical embeddings: the seed (key 3) is the last of them, so its own key is not
    # among the 2 nearest (ties go to the smaller keys 1 and 2); k=1 still means one neighbour
    keys = np.array([1, 2, 3], dtype=np.int64)
    emb = np.zeros((3, 1), dtype=np.float32)
    loss = np.array([0.1, 0.1, 2.0])  # only key 3 misclassified: exp(-2) < 1 - 0
    lc = np.zeros(3)
    got = LikeMisclassified(seeds=1, k=1).select(_ctx(keys, emb, loss, lc)).keys.tolist()
    assert got == [1, 3]


@pytest.mark.parametrize("seed", range(40))
def test_like_misclassified_matches_a_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    keys = np.sort(rng.choice(50, n, replace=False)).astype(np.int64)
    emb = rng.integers(0, 3, (n, 2)).astype(np.float32)  # many exact duplicates and ties
    loss = rng.choice([0.1, 0.5, 1.0, 2.0], n)
    lc = rng.choice([0.0, 0.3, 0.6], n)
    seeds, k = int(rng.integers(1, 5)), int(rng.integers(0, 4))
    limit = None if rng.integers(0, 2) else int(rng.integers(1, n + 1))
    got = LikeMisclassified(seeds=seeds, k=k, limit=limit).select(_ctx(keys, emb, loss, lc))
    assert got.keys.tolist() == _reference(keys, emb, loss, lc, seeds, k, limit)


def _float32_scores(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``loss`` and ``least_confidence`` computed in float32, as a torch scoring pass does."""
    z = z.astype(np.float32)
    logp = z - z.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(y.size), y]
    lc = np.float32(1) - np.exp(logp).max(axis=1)
    return loss.astype(np.float64), lc.astype(np.float64)


def test_like_misclassified_seeds_are_the_wrong_rows_of_float32_scores() -> None:
    rng = np.random.default_rng(5)
    n = 400
    z = rng.normal(0, 1, (n, 10))
    y = z.argmax(axis=1)
    wrong = np.array([7, 123, 301])
    y[wrong] = (y[wrong] + 1) % 10
    loss, lc = _float32_scores(z, y)
    keys = np.arange(n, dtype=np.int64)
    # with a 1e-9 tolerance about half of the right rows were seeds, ahead of the wrong ones
    got = LikeMisclassified(seeds=n, k=0).select(_ctx(keys, rng.normal(size=(n, 2)), loss, lc))
    assert got.keys.tolist() == wrong.tolist()
