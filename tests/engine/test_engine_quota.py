"""Balanced quotas: allocation, per-rule selection, streaming."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import BalancedSelector, EngineInputError, allocate_quotas, balanced_select
from engine.quota import group_counts, select_quotas


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=12), st.integers(0, 250))
def test_allocation_matches_round_robin(counts: list[int], budget: int) -> None:
    got = allocate_quotas(np.array(counts, dtype=np.int64), budget)
    assert got.tolist() == naive.allocate_quotas(counts, budget)
    assert int(got.sum()) == min(budget, sum(counts))


def test_allocation_examples() -> None:
    assert allocate_quotas([1, 10, 10], 8).tolist() == [1, 4, 3]
    assert allocate_quotas([5], 3).tolist() == [3]  # one class
    assert allocate_quotas([], 3).tolist() == []
    assert allocate_quotas([2, 2], 0).tolist() == [0, 0]
    assert allocate_quotas([2, 0, 7], 100).tolist() == [2, 0, 7]
    with pytest.raises(EngineInputError, match="counts"):
        allocate_quotas([1, -1], 3)
    with pytest.raises(EngineInputError, match="budget"):
        allocate_quotas([1], -3)


def _inputs(rng: np.random.Generator, n: int, n_groups: int, big_labels: bool):  # type: ignore[no-untyped-def]
    labels = rng.integers(0, n_groups, n)
    if big_labels:  # not dense: goes through np.unique
        labels = labels * 10**12 - 5 * 10**12
    scores = rng.integers(0, 5, n).astype(np.float64)  # many ties
    scores[rng.random(n) < 0.1] = np.nan
    ts = rng.integers(0, 20, n)
    keys = rng.permutation(3 * n)[:n]
    return labels, scores, ts, keys


@pytest.mark.parametrize("rule", ["uniform", "top", "newest"])
@pytest.mark.parametrize("seed", range(6))
def test_matches_reference(rule: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 600))
    labels, scores, ts, keys = _inputs(rng, n, int(rng.integers(1, 9)), big_labels=seed % 3 == 0)
    use_keys = keys if seed % 2 else None
    for budget in (0, 1, n // 5, n // 2, n, n + 10):
        kw = {"scores": scores, "timestamps": ts, "keys": use_keys, "seed": seed}
        got = balanced_select(labels, budget, rule=rule, **kw)  # type: ignore[arg-type]
        assert got.tolist() == naive.balanced_select(labels, budget, rule, **kw)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.floats(allow_nan=True)), max_size=50), st.integers(0, 60))
def test_top_rule_property(rows: list[tuple[int, float]], budget: int) -> None:
    labels = np.array([r[0] for r in rows], dtype=np.int64)
    scores = np.array([r[1] for r in rows], dtype=np.float64)
    got = balanced_select(labels, budget, rule="top", scores=scores)
    assert got.tolist() == naive.balanced_select(labels, budget, "top", scores=scores)


def test_large_input_exact_per_class() -> None:
    rng = np.random.default_rng(5)
    n = 1_100_000  # the parallel path
    labels = rng.choice(4, n, p=[0.7, 0.2, 0.0999, 0.0001])
    got = balanced_select(labels, 40_000, rule="uniform", seed=9)
    counts = np.bincount(labels, minlength=4)
    quotas = allocate_quotas(counts, 40_000)
    assert np.bincount(labels[got], minlength=4).tolist() == quotas.tolist()
    # exactly the per-class uniform samples the hash ranks define
    st = naive.seed_state(9)
    for g in range(4):
        rows = np.flatnonzero(labels == g)
        if rows.size > 3000:
            continue
        best = sorted(sorted(rows.tolist(), key=lambda i: (-(naive.hash_key(st, i) >> 1), i))[: quotas[g]])
        assert sorted(set(got.tolist()) & set(rows.tolist())) == best


def test_one_class_and_newest() -> None:
    ts = np.array([5, 1, 9, 9, 3])
    one = np.zeros(5, dtype=np.int64)
    assert balanced_select(one, 2, rule="newest", timestamps=ts).tolist() == [2, 3]
    assert balanced_select(one, 1, rule="newest", timestamps=ts).tolist() == [2]  # tie: position
    assert balanced_select(one, 1, rule="newest", timestamps=ts, keys=[0, 0, 9, 1, 0]).tolist() == [3]
    assert balanced_select(np.array([], dtype=np.int64), 3).tolist() == []


def test_all_nan_class_gets_no_quota() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([np.nan, np.nan, 1.0, 2.0, 3.0])
    assert balanced_select(labels, 4, rule="top", scores=scores).tolist() == [2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rule": "best"}, "rule"),
        ({"rule": "top"}, "scores"),
        ({"rule": "newest"}, "timestamps"),
        ({"rule": "top", "scores": [1.0]}, "scores"),
        ({"keys": [1]}, "keys"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_invalid_input(kwargs: dict, name: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(EngineInputError) as err:
        balanced_select([0, 1], 1, **kwargs)
    assert err.value.name == name
    with pytest.raises(EngineInputError, match="budget"):
        balanced_select([0, 1], -1)
    with pytest.raises(EngineInputError, match="groups"):
        balanced_select([0.5], 1)


@pytest.mark.parametrize("rule", ["uniform", "top", "newest"])
@pytest.mark.parametrize("seed", range(5))
def test_streaming_equals_one_shot(rule: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1_100_000 if seed == 0 else 3000  # one-shot parallel vs serial chunks
    labels, scores, ts, keys = _inputs(rng, n, int(rng.integers(1, 12)), big_labels=seed == 2)
    use_keys = keys if seed % 2 else None
    budget = int(rng.integers(0, n // 3))
    ref = balanced_select(labels, budget, rule=rule, scores=scores, timestamps=ts,  # type: ignore[arg-type]
                          keys=use_keys, seed=seed)
    sel = BalancedSelector(budget, rule=rule, seed=seed)  # type: ignore[arg-type]
    if seed % 2:
        sel._merge_min = 16  # merge pending candidates often, with small inputs too
    cuts = np.sort(rng.integers(0, n + 1, 8 if seed else 40))
    for part in np.split(np.arange(n), cuts):
        sel.update(labels[part], keys=None if use_keys is None else use_keys[part],
                   scores=scores[part], timestamps=ts[part])
        assert sel._c_rank.size <= budget + sel._labels.size  # bounded memory
        assert sel._n_pending <= max(budget + sel._labels.size, sel._merge_min) + part.size
    expect = ref if use_keys is None else np.sort(use_keys[ref])
    assert sel.result().tolist() == expect.tolist()
    assert sel.n_seen == n


def test_balanced_uniform_is_uniform_within_class() -> None:
    import scipy.stats

    labels = np.repeat([0, 1], [30, 90])
    counts = np.zeros(120)
    for r in range(2000):
        counts[balanced_select(labels, 20, seed=r)] += 1
    assert np.all(counts[:30] == 2000 * 10 / 30 * 1.0) or scipy.stats.chisquare(counts[:30]).pvalue > 1e-3
    assert scipy.stats.chisquare(counts[30:]).pvalue > 1e-3
    assert counts[:30].sum() == counts[30:].sum() == 2000 * 10


@pytest.mark.parametrize("rule", ["uniform", "top", "newest"])
@pytest.mark.parametrize("seed", range(6))
def test_select_quotas_matches_reference(rule: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(0, 500))
    labels, scores, ts, keys = _inputs(rng, n, int(rng.integers(1, 8)), big_labels=seed % 3 == 0)
    use_keys = keys if seed % 2 else None
    # some labels of the data, one that is not in it; rows of the left-out labels are never picked
    present = np.unique(labels)
    chosen = np.union1d(present[rng.random(present.size) < 0.7], [labels.max(initial=0) + 1])
    quotas = rng.integers(0, max(2, n // 4), chosen.size)
    kw = {"scores": scores, "timestamps": ts, "keys": use_keys, "seed": seed}
    got = select_quotas(labels, chosen, quotas, rule=rule, **kw)  # type: ignore[arg-type]
    assert got.tolist() == naive.select_quotas(labels, chosen, quotas, rule, **kw)
    assert not np.isin(labels[got], np.setdiff1d(present, chosen)).any()


@pytest.mark.parametrize("rule", ["uniform", "top", "newest"])
@pytest.mark.parametrize("seed", range(5))
def test_parts_merged_equal_one_shot(rule: str, seed: int) -> None:
    """Counts per part, quotas once, best rows per part, best of their union: balanced_select."""
    rng = np.random.default_rng(200 + seed)
    n = 1_100_000 if seed == 0 else 4000  # the parallel kernel path too
    labels, scores, ts, keys = _inputs(rng, n, int(rng.integers(2, 9)), big_labels=seed == 3)
    labels[rng.random(n) < 0.5] = labels[0]  # one large class
    labels[rng.random(n) < 0.002] = labels.max() + 1  # one class with fewer rows than its share
    budget = int(rng.integers(n // 10, n // 2))
    kw = {"scores": scores, "timestamps": ts, "seed": seed}
    ref = keys[balanced_select(labels, budget, rule=rule, keys=keys, **kw)]  # type: ignore[arg-type]
    parts = np.split(rng.permutation(n), np.sort(rng.integers(0, n + 1, 5)))
    nan_scores = scores if rule == "top" else None
    counted = [group_counts(labels[p], scores=None if nan_scores is None else nan_scores[p]) for p in parts]
    all_labels = np.unique(np.concatenate([c[0] for c in counted]))
    counts = np.zeros(all_labels.size, dtype=np.int64)
    for lab, cnt in counted:
        counts[np.searchsorted(all_labels, lab)] += cnt
    whole = group_counts(labels, scores=nan_scores)
    assert np.array_equal(all_labels, whole[0]) and np.array_equal(counts, whole[1])
    quotas = allocate_quotas(counts, budget)
    assert (quotas == counts).any() and (quotas < counts).any()  # a class short of its share, one above

    def merged(per_part_quotas: np.ndarray) -> np.ndarray:
        kept = [p[select_quotas(labels[p], all_labels, per_part_quotas, rule=rule,  # type: ignore[arg-type]
                                scores=scores[p], timestamps=ts[p], keys=keys[p], seed=seed)] for p in parts]
        c = np.concatenate(kept)
        return np.sort(keys[c[select_quotas(labels[c], all_labels, quotas, rule=rule,  # type: ignore[arg-type]
                                            scores=scores[c], timestamps=ts[c], keys=keys[c], seed=seed)]])

    assert merged(quotas).tolist() == np.sort(ref).tolist()
    # parts that keep only their share of the quota lose rows of the global result
    assert merged(quotas // len(parts)).tolist() != np.sort(ref).tolist()


def test_group_counts_and_select_quotas_validate() -> None:
    assert [a.tolist() for a in group_counts([5, 1, 5, 5])] == [[1, 5], [1, 3]]
    assert [a.tolist() for a in group_counts([0, 0, 1], scores=[np.nan, 1.0, np.nan])] == [[0], [1]]
    assert select_quotas([], [], []).tolist() == []
    for args, name in ((([0, 1], [1, 0], [1, 1]), "labels"), (([0, 1], [0, 1], [1, -1]), "quotas"),
                       (([0, 1], [0, 1], [1]), "quotas")):
        with pytest.raises(EngineInputError) as err:
            select_quotas(*args)
        assert err.value.name == name
    with pytest.raises(EngineInputError) as err:
        group_counts([0, 1], scores=[1.0])
    assert err.value.name == "scores"


@pytest.mark.parametrize("rule", ["uniform", "top", "newest"])
def test_streaming_with_labels_arriving_between_merges(rule: str) -> None:
    # the floors come from kept candidates summarized once per merge; labels that first appear
    # after a merge (and lower the water level of the others) must not shift them
    rng = np.random.default_rng(7)
    chunks = [rng.integers(0, 2 + c, 400) * (3 if c % 2 else 1) for c in range(12)]  # new labels keep coming
    labels = np.concatenate(chunks).astype(np.int64)
    scores = rng.random(labels.size)
    ts = rng.permutation(labels.size).astype(np.int64)
    for budget in (5, 60, 700):
        ref = balanced_select(labels, budget, rule=rule, scores=scores, timestamps=ts, seed=3)  # type: ignore[arg-type]
        sel = BalancedSelector(budget, rule=rule, seed=3)  # type: ignore[arg-type]
        sel._merge_min = 8
        at = 0
        for c in chunks:
            sel.update(labels[at:at + c.size], scores=scores[at:at + c.size], timestamps=ts[at:at + c.size])
            at += c.size
        assert sel.result().tolist() == ref.tolist(), budget
