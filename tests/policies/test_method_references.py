"""Selection strategies against slow, plainly written references of their published methods.

Deterministic parts are compared exactly; random parts by their distribution (chi-square over
many seeds, with a threshold no fixed seed set comes near) or by invariants that hold for every
seed (RS2's coverage, GDumb's class counts, RHO-LOSS's disjoint holdout).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import chisquare

from engine import score_registry as reg
from engine.kcenter import kcenter_greedy
from modyn_store import Store
from policies import (RS2, ClassBalanced, GDumb, KCenterGreedy, Loss, SelectionContext,
                      Uniform)
from policies._pick import derive_seed
from policies.rho_loss import RhoLoss
from policies.score_based import Entropy, GradNorm, LeastConfidence, Margin

P_MIN = 1e-4  # chi-square p-values below this fail (fixed seeds: the outcome is reproducible)


def _snapshot(name: str, labels: Sequence[int] | None = None, n: int | None = None) -> Any:
    store = Store.open(f"memory://method-ref-{name}", create=True)
    cols: dict[str, Any] = {"ts": list(range(n if labels is None else len(labels)))}
    if labels is not None:
        cols["label"] = list(labels)
    return store.as_of(store.append(pa.table(cols)).version)


def _plans(ts: Any) -> list[np.ndarray]:
    keys = np.asarray(ts.keys)
    return [keys[np.asarray(p)] for p in ts.per_epoch]


# ------------------------------------------------------------------------------------------ RS2


@pytest.mark.parametrize("n,ratio,limit,epochs", [(10, 0.3, None, 12), (7, 0.5, None, 11),
                                                  (12, 0.25, None, 9), (9, 1.0, None, 4),
                                                  (20, 0.5, 7, 10)])
def test_rs2_without_replacement_counts_never_differ_by_more_than_one(
        n: int, ratio: float, limit: int | None, epochs: int) -> None:
    """RS2 without replacement (Okanovic et al., 2023): epochs walk through passes over the
    data, each sample once per pass, so after every epoch the draw counts are within one."""
    snap = _snapshot(f"rs2-{n}-{ratio}-{limit}", n=n)
    m = min(int(round(ratio * n)), limit or n)
    for seed in range(8):
        plans = _plans(RS2(ratio=ratio, limit=limit, epochs=epochs).select(
            SelectionContext(snapshot=snap, seed=seed)))
        assert len(plans) == epochs
        counts = np.zeros(n, dtype=np.int64)
        for e, p in enumerate(plans):
            assert p.size == m and np.unique(p).size == m  # its own size, no sample twice
            np.add.at(counts, p, 1)
            drawn = (e + 1) * m
            # the counts a pass-by-pass walk gives: drawn // n for all, one more for the rest
            assert counts.min() == drawn // n and counts.max() == -(-drawn // n), (seed, e, counts)


def test_rs2_epoch_subsets_are_uniform() -> None:
    """Each epoch's subset is uniform: across seeds every sample is equally often in epoch 0
    and in the epoch that straddles two passes."""
    n, ratio, epochs = 8, 0.375, 3  # m = 3: epoch 2 takes 2 samples of pass 1, 1 of pass 2
    snap = _snapshot("rs2-uniform", n=n)
    first = np.zeros(n)
    straddle = np.zeros(n)
    for seed in range(600):
        plans = _plans(RS2(ratio=ratio, epochs=epochs).select(SelectionContext(snapshot=snap, seed=seed)))
        np.add.at(first, plans[0], 1)
        np.add.at(straddle, plans[2], 1)
    assert chisquare(first).pvalue > P_MIN
    assert chisquare(straddle).pvalue > P_MIN


def test_rs2_with_replacement_draws_each_epoch_independently() -> None:
    n, m, epochs = 6, 3, 2
    snap = _snapshot("rs2-repl", n=n)
    overlap = []
    for seed in range(400):
        plans = _plans(RS2(ratio=m / n, epochs=epochs, replacement=True).select(
            SelectionContext(snapshot=snap, seed=seed)))
        assert all(p.size == m and np.unique(p).size == m for p in plans)
        overlap.append(np.intersect1d(plans[0], plans[1]).size)
    # two independent uniform 3-subsets of 6 share k samples with hypergeometric probability
    expected = [math.comb(m, k) * math.comb(n - m, m - k) / math.comb(n, m) for k in range(m + 1)]
    observed = np.bincount(overlap, minlength=m + 1)
    assert chisquare(observed, np.array(expected) * len(overlap)).pvalue > P_MIN


# ---------------------------------------------------------------------------------------- GDumb


def _gdumb_class_counts(labels: Sequence[int], memory: int) -> dict[int, int]:
    """GDumb's sampler (Prabhu et al., 2020, Alg. 1) written plainly. Which sample of the largest
    class is evicted is random, but the class counts are not: compare those exactly."""
    counts: dict[int, int] = {}
    seen: set[int] = set()
    for y in labels:
        seen.add(y)
        if sum(counts.values()) < memory:
            counts[y] = counts.get(y, 0) + 1
            continue
        if counts.get(y, 0) < memory / len(seen):  # k_c = k / |classes seen so far|
            top = max(counts.values())
            largest = min(c for c, v in counts.items() if v == top)
            counts[largest] -= 1
            if counts[largest] == 0:
                del counts[largest]
            counts[y] = counts.get(y, 0) + 1
    return counts


def test_gdumb_class_counts_match_the_paper() -> None:
    rng = np.random.default_rng(5)
    for trial in range(30):
        n = int(rng.integers(5, 40))
        labels = rng.integers(0, int(rng.integers(2, 6)), n)
        if trial % 2:
            labels = np.sort(labels)  # class-incremental stream
        memory = int(rng.integers(1, 12))
        snap = _snapshot(f"gdumb-{trial}", labels=labels.tolist())
        for seed in range(3):
            ts = GDumb(memory=memory).select(SelectionContext(snapshot=snap, seed=seed, batch_size=7))
            got = np.bincount(labels[np.asarray(ts.keys)], minlength=labels.max() + 1)
            want = _gdumb_class_counts(labels.tolist(), memory)
            assert {c: int(v) for c, v in enumerate(got) if v} == want, (trial, seed)


def test_gdumb_memory_carries_over_triggers_as_one_stream() -> None:
    """Across triggers the memory goes on as if the new samples continued one stream."""
    rng = np.random.default_rng(11)
    for trial in range(8):
        parts = [rng.integers(0, 4, int(rng.integers(3, 15))) for _ in range(3)]
        store = Store.open(f"memory://method-ref-gdumb-triggers-{trial}", create=True)
        versions, start = [], 0
        for part in parts:
            versions.append(store.append(pa.table({"ts": list(range(start, start + part.size)),
                                                   "label": part.tolist()})).version)
            start += part.size
        labels = np.concatenate(parts)
        memory = int(rng.integers(2, 9))
        strat = GDumb(memory=memory)
        for i, v in enumerate(versions):
            ts = strat.select(SelectionContext(snapshot=store.as_of(v), seed=trial, trigger_index=i,
                                               trigger_cutoffs=tuple(versions[:i])))
            seen = labels[: sum(p.size for p in parts[: i + 1])]
            got = np.bincount(labels[np.asarray(ts.keys)], minlength=4)
            assert {c: int(x) for c, x in enumerate(got) if x} == _gdumb_class_counts(seen.tolist(), memory)


def test_gdumb_evicts_a_uniform_element_of_the_largest_class() -> None:
    labels = [0, 0, 0, 0, 1]  # memory 4 full of class 0; the 1 replaces one of keys 0..3
    snap = _snapshot("gdumb-evict", labels=labels)
    evicted = np.zeros(4)
    for seed in range(400):
        ts = GDumb(memory=4).select(SelectionContext(snapshot=snap, seed=seed))
        keys = set(np.asarray(ts.keys).tolist())
        assert 4 in keys and len(keys) == 4
        (gone,) = {0, 1, 2, 3} - keys
        evicted[gone] += 1
    assert chisquare(evicted).pvalue > P_MIN


# ----------------------------------------------------------------------------------- RHO-LOSS


def test_rho_loss_holdout_is_disjoint_and_the_rest_ranked_by_reducible_loss() -> None:
    n = 40
    snap = _snapshot("rho", labels=[i % 3 for i in range(n)])
    keys = np.arange(n, dtype=np.int64)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        loss, irr = rng.random(n) * 3, rng.random(n) * 2
        strat = RhoLoss(ratio=0.25, holdout_ratio=0.2)
        ctx = SelectionContext(snapshot=snap, seed=seed,
                               computed_scores={"loss": (keys, loss), "irreducible_loss": (keys, irr)})
        hold = set(np.asarray(strat.holdout(ctx).keys).tolist())
        assert len(hold) == round(0.2 * n)
        chosen = set(np.asarray(strat.select(ctx).keys).tolist())
        assert not chosen & hold
        rest = [k for k in range(n) if k not in hold]
        want = sorted(rest, key=lambda k: -(loss[k] - irr[k]))[: round(0.25 * len(rest))]
        assert chosen == set(want)
        # per batch (the paper's setting): every non-holdout row is served, none of the holdout
        per_batch = RhoLoss(ratio=0.25, holdout_ratio=0.2, mode="batch_then_sample")
        assert np.asarray(per_batch.select(ctx).keys).tolist() == rest


def test_rho_loss_per_batch_top_selection() -> None:
    rng = np.random.default_rng(1)
    z, y, irr = rng.normal(size=(16, 4)), rng.integers(0, 4, 16), rng.random(16)
    strat = RhoLoss(ratio=0.25, mode="batch_then_sample")
    s = strat.score_batch(z, y, irreducible_loss=irr)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(s, -np.log(p[np.arange(16), y]) - irr, rtol=1e-12, atol=1e-12)
    pos, w = strat.choose_in_batch(s, seed=0)
    assert pos.tolist() == sorted(np.argsort(-s)[:4].tolist()) and w.tolist() == [1.0] * 4


# ------------------------------------------------------------------------------ scores by hand


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_score_definitions() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n, c, d = 12, 5, 3
        z, y, h = rng.normal(size=(n, c)) * 2, rng.integers(0, c, n), rng.normal(size=(n, d))
        p = _softmax(z)
        onehot = np.eye(c)[y]
        srt = np.sort(p, 1)
        want = {
            "loss": -np.log(p[np.arange(n), y]),
            "least_confidence": 1 - p.max(1),
            "margin": srt[:, -1] - srt[:, -2],
            "entropy": -(p * np.log(p)).sum(1),
            "el2n": np.linalg.norm(p - onehot, axis=1),
        }
        # the loss gradient w.r.t. the last linear layer (logits = W h + b) is the outer product
        # of dL/dlogits = p - onehot with [h, 1]; Katharopoulos & Fleuret's bound is |p - onehot|
        grads = [np.outer(p[i] - onehot[i], np.append(h[i], 1.0)) for i in range(n)]
        want["gradnorm"] = np.array([np.linalg.norm(g) for g in grads])
        for name, v in want.items():
            got = reg.compute(name, logits=z, labels=y, hidden=h)
            np.testing.assert_allclose(got, v, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cls,score,largest", [(Loss, "loss", True), (Margin, "margin", False),
                                               (Entropy, "entropy", True),
                                               (LeastConfidence, "least_confidence", True),
                                               (GradNorm, "gradnorm", True)])
def test_top_selection_keeps_the_most_informative(cls: Any, score: str, largest: bool) -> None:
    n = 30
    snap = _snapshot(f"top-{score}", n=n)
    keys = np.arange(n, dtype=np.int64)
    for seed in range(4):
        v = np.random.default_rng(seed).random(n)
        ts = cls(ratio=0.2).select(SelectionContext(snapshot=snap, computed_scores={score: (keys, v)}))
        order = np.argsort(-v if largest else v)
        assert np.asarray(ts.keys).tolist() == sorted(order[:6].tolist())


def test_importance_sampling_probabilities_and_weights() -> None:
    """Katharopoulos & Fleuret (2018): draw with probability w_i / W, weight 1 / (N p_i)."""
    n = 6
    snap = _snapshot("importance", n=n)
    keys = np.arange(n, dtype=np.int64)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    hits = np.zeros(n)
    for seed in range(700):
        ts = GradNorm(ratio=1 / n, method="importance").select(
            SelectionContext(snapshot=snap, seed=seed, computed_scores={"gradnorm": (keys, g)}))
        (k,) = np.asarray(ts.keys).tolist()
        hits[k] += 1
        assert np.asarray(ts.weights).tolist() == pytest.approx([g.sum() / (n * g[k])], rel=1e-12)
    assert chisquare(hits, g / g.sum() * hits.sum()).pvalue > P_MIN
    # per batch: the same law
    strat = GradNorm(ratio=1 / n, method="importance", mode="batch_then_sample")
    hits[:] = 0
    for seed in range(700):
        pos, w = strat.choose_in_batch(g, seed=seed)
        hits[int(pos[0])] += 1
        assert w.tolist() == pytest.approx([g.sum() / (n * g[int(pos[0])])], rel=1e-12)
    assert chisquare(hits, g / g.sum() * hits.sum()).pvalue > P_MIN


# ----------------------------------------------------------------------------------- k-center


def _kcenter_ref(emb: np.ndarray, k: int, first: int) -> list[int]:
    """Sener & Savarese's greedy: add the point farthest from its nearest chosen centre."""
    centres = [first]
    while len(centres) < k:
        best, best_d = -1, -1.0
        for i in range(len(emb)):
            if i in centres:
                continue
            d = min(math.dist(emb[i], emb[c]) for c in centres)
            if d > best_d:  # ties: the smallest index
                best, best_d = i, d
        centres.append(best)
    return centres


def test_kcenter_greedy_matches_the_farthest_point_rule() -> None:
    n = 25
    snap = _snapshot("kcenter", n=n)
    keys = np.arange(n, dtype=np.int64)
    for seed in range(6):
        emb = np.random.default_rng(seed).normal(size=(n, 3))
        ts = KCenterGreedy(limit=7).select(SelectionContext(
            snapshot=snap, seed=seed, computed_scores={"embedding": (keys, emb)}))
        first = int(kcenter_greedy(emb, 1, seed=derive_seed(seed, 12))[0])
        assert np.asarray(ts.keys).tolist() == sorted(_kcenter_ref(emb, 7, first))


def test_kcenter_first_centre_is_uniform() -> None:
    n = 8
    emb = np.arange(n, dtype=np.float64)[:, None]
    firsts = np.bincount([int(kcenter_greedy(emb, 1, seed=derive_seed(s, 12))[0])
                          for s in range(800)], minlength=n)
    assert chisquare(firsts).pvalue > P_MIN


# ----------------------------------------------------------------------- class balanced, uniform


def _water_fill(counts: dict[int, int], budget: int) -> dict[int, int]:
    """Equal per-class quotas; a class with fewer samples gives the rest away; units that do not
    divide evenly go to the smallest labels."""
    quota = {c: 0 for c in counts}
    left = min(budget, sum(counts.values()))
    while left:
        open_ = sorted(c for c in counts if quota[c] < counts[c])
        share = max(1, left // len(open_))
        for c in open_:
            give = min(share, counts[c] - quota[c], left)
            quota[c] += give
            left -= give
            if not left:
                break
    return quota


def test_class_balanced_quotas_and_uniform_members() -> None:
    rng = np.random.default_rng(3)
    for trial in range(12):
        labels = rng.integers(0, int(rng.integers(2, 6)), int(rng.integers(6, 40)))
        snap = _snapshot(f"cb-{trial}", labels=labels.tolist())
        counts = {int(c): int(v) for c, v in zip(*np.unique(labels, return_counts=True))}
        for kw in ({"limit": int(rng.integers(1, 30))}, {"ratio": float(rng.uniform(0.05, 1))}):
            ts = ClassBalanced(**kw).select(SelectionContext(snapshot=snap, seed=trial))
            budget = kw.get("limit") or int(round(kw["ratio"] * labels.size))
            got = np.bincount(labels[np.asarray(ts.keys)], minlength=labels.max() + 1)
            want = _water_fill(counts, budget)
            assert {c: int(got[c]) for c in counts} == want, (trial, kw)
    # members of a class are a uniform sample of it
    labels = [0] * 6 + [1] * 2
    snap = _snapshot("cb-uniform", labels=labels)
    hits = np.zeros(6)
    for seed in range(500):
        ks = np.asarray(ClassBalanced(limit=4).select(SelectionContext(snapshot=snap, seed=seed)).keys)
        assert (ks >= 6).sum() == 2
        np.add.at(hits, ks[ks < 6], 1)
    assert chisquare(hits).pvalue > P_MIN


def test_uniform_size_and_inclusion() -> None:
    n = 9
    snap = _snapshot("uniform", n=n)
    hits = np.zeros(n)
    pairs = {p: 0 for p in itertools.combinations(range(n), 2)}
    for seed in range(700):
        ks = np.asarray(Uniform(ratio=0.25).select(SelectionContext(snapshot=snap, seed=seed)).keys)
        assert ks.size == round(0.25 * n)
        np.add.at(hits, ks, 1)
        pairs[tuple(ks.tolist())] += 1  # type: ignore[index]
    assert chisquare(hits).pvalue > P_MIN
    assert chisquare(list(pairs.values())).pvalue > P_MIN  # every 2-subset equally likely


def test_importance_weights_count_every_row_not_only_positive_ones() -> None:
    """1 / (N p_i) with N every scored row: rows of score 0 (never drawn) still count in N, so
    the weighted loss estimates the mean over all rows (Katharopoulos & Fleuret, 2018)."""
    n = 8
    snap = _snapshot("importance-zeros", n=n)
    keys = np.arange(n, dtype=np.int64)
    loss = np.array([0.0, 2.0, 0.0, 1.0, 3.0, 0.0, 2.0, 0.0])
    for seed in range(5):
        ts = Loss(ratio=0.25, method="importance").select(
            SelectionContext(snapshot=snap, seed=seed, computed_scores={"loss": (keys, loss)}))
        ks = np.asarray(ts.keys)
        assert ks.size == 2 and (loss[ks] > 0).all()
        np.testing.assert_allclose(ts.weights, loss.sum() / (n * loss[ks]), rtol=1e-12)
        pos, w = Loss(ratio=0.25, method="importance", mode="batch_then_sample").choose_in_batch(
            loss, seed=seed)
        np.testing.assert_allclose(w, loss.sum() / (n * loss[pos]), rtol=1e-12)
