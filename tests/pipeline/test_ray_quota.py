"""Class and interval quotas on a local Ray cluster (``ray.init(num_cpus=2)``): the two-phase plan
(counts, then per-group candidates under the global quotas) gives the single-process train set
bit for bit, on a store of several fragments with deletes and an erasure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.pipeline.ray_exec import select_on_ray, supports
from policies import ClassBalanced, GDumb, TriggerBalanced
from policies._records import Cutoff
from policies.base import SelectionContext

ray = pytest.importorskip("ray")

from tests.pipeline.ray_marks import RAY_MARKS, ray_session  # noqa: E402,F401 (the module's Ray session)

pytestmark = RAY_MARKS

_N = 400  # rows per append; five appends, five fragments
_RARE = 2  # a class of 8 rows, all in the fourth append: fewer than its share of any budget here


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Five fragments; classes 0 and 1 large, 3 mid-sized, 2 rare and in one fragment; a string
    label column ``tag`` (non-integer labels); deletes and an erasure."""
    rng = np.random.default_rng(11)
    st = Store.open(str(tmp_path_factory.mktemp("ray-quota") / "store"), create=True)
    for i in range(5):
        label = rng.choice([0, 1, 3], _N, p=[0.6, 0.35, 0.05]).astype(np.int64)
        if i == 3:
            label[rng.choice(_N, 8, replace=False)] = _RARE
        tag = np.where(label == 0, "zero", np.where(label == 1, "one", np.where(label == 3, "three", "two")))
        ts = np.repeat(np.arange(i * _N, (i + 1) * _N, 4), 4)  # equal event times: cutoffs split on key
        st.append(pa.table({"ts": ts, "label": label, "tag": tag.tolist()}))
        if i == 2:
            st.delete(keys=np.arange(0, 1200, 9))
    st.erase(np.arange(3, 2000, 41), reason="test")
    return st


def _labels(store: Store, keys: np.ndarray, col: str = "label") -> np.ndarray:
    t = store.as_of().to_table(["key", col])
    k = t.column("key").to_numpy()
    order = np.argsort(k)
    return np.asarray(t.column(col).to_numpy(zero_copy_only=False))[order][np.searchsorted(k[order], keys)]


def _same(strategy: Any, ctx: SelectionContext) -> np.ndarray:
    single = strategy.select(ctx)
    on_ray = select_on_ray(strategy, ctx)
    assert np.array_equal(on_ray.keys, single.keys), (strategy, ctx.seed)
    assert np.array_equal(on_ray.weights, single.weights)
    assert on_ray.version == single.version
    return single.keys


@pytest.mark.parametrize(
    ("strategy", "label_column"),
    [
        (ClassBalanced(limit=120), "label"),
        (ClassBalanced(ratio=0.1), "label"),
        (ClassBalanced(ratio=0.5, limit=301), "label"),
        (ClassBalanced(limit=10_000), "label"),  # every eligible row
        (ClassBalanced(limit=97), "tag"),  # string labels: groups are positions in the sorted labels
        (ClassBalanced(ratio=0.2), "tag"),
    ],
    ids=["limit", "ratio", "ratio-limit", "all", "str-limit", "str-ratio"],
)
def test_class_balanced_on_ray_equals_single_process(store: Store, strategy: ClassBalanced,
                                                     label_column: str) -> None:
    assert supports(strategy)
    snap = store.as_of()
    results = []
    for seed in (0, 7):
        ctx = SelectionContext(snapshot=snap, seed=seed, label_column=label_column)
        keys = _same(strategy, ctx)
        labels = _labels(store, keys, label_column)
        rare = "two" if label_column == "tag" else _RARE
        # the rare class is below its share: all of its live rows are in, the rest is shared out
        live_rare = int((snap.to_table([label_column]).column(label_column).to_numpy(zero_copy_only=False) == rare).sum())
        assert 0 < live_rare < 8 + 1 and int((labels == rare).sum()) == live_rare
        results.append(keys)
    if strategy.limit != 10_000:
        assert not np.array_equal(results[0], results[1]), "the seed matters"


def test_class_balanced_on_ray_honours_excluded_and_candidates(store: Store) -> None:
    snap = store.as_of()
    keys = snap.keys()
    excluded = keys[keys >= 1750]  # a pipeline's rows past the firing position
    got = _same(ClassBalanced(limit=150), SelectionContext(snapshot=snap, seed=2, excluded=excluded))
    assert got.size == 150 and not np.isin(got, excluded).any()
    cand = keys[keys % 3 != 0]
    got = _same(ClassBalanced(ratio=0.3), SelectionContext(snapshot=snap, seed=3, candidates=cand))
    assert np.isin(got, cand).all()
    assert _same(ClassBalanced(limit=5), SelectionContext(snapshot=snap, candidates=np.array([10**9]))).size == 0


@pytest.mark.parametrize("strategy", [TriggerBalanced(limit=90), TriggerBalanced(ratio=0.15),
                                      TriggerBalanced(ratio=0.9, limit=500)], ids=["limit", "ratio", "both"])
def test_trigger_balanced_on_ray_equals_single_process(store: Store, strategy: TriggerBalanced) -> None:
    assert supports(strategy)
    snap = store.as_of()
    keys = snap.keys()
    # versions: appends 1, 2, 3, the delete 4, appends 5, 6, the erasure 7. A cutoff inside
    # version 2 (its rows split on (ts, key)) leaves a short interval: keys N .. N+21
    inside = Cutoff(2, ts=_N + 20, key=_N + 22)
    short = keys[(keys >= _N) & (keys < _N + 22)]
    cases = [(0, (1, inside), keys[:0]), (5, (1, inside, 5), keys[keys >= 1900]), (8, (3,), keys[:0])]
    for seed, cuts, excluded in cases:
        ctx = SelectionContext(snapshot=snap, seed=seed, trigger_cutoffs=cuts, excluded=excluded)
        got = _same(strategy, ctx)
        assert not np.isin(got, excluded).any()
        if 1 in cuts:  # the short interval is below its share: all of its rows are in
            assert 0 < short.size <= 22 and np.isin(short, got).all()


@pytest.mark.parametrize("selection", [{"name": "class_balanced", "ratio": 0.3},
                                       {"name": "trigger_balanced", "limit": 400}], ids=lambda s: s["name"])
def test_pipeline_with_ray_selects_what_it_selects_without(tmp_path: Path, selection: dict[str, Any]) -> None:
    """Pipelines' contexts: time triggers fire inside versions (cutoffs with (ts, key), rows past
    the firing excluded), several trainings."""
    from modyn_store.app.pipeline import parse_pipeline
    from modyn_store.app.pipeline.runner import Runner
    from modyn_store.core.trainings import Catalog
    from tests.pipeline.pipeline_helpers import tiny

    over = {"selection": selection, "limits": {"max_trainings": 3}, "trigger": {"name": "time", "every": "9d"}}
    sets = []
    for name, extra in (("plain", {}), ("onray", {"ray": {"address": "local", "workers": 2}})):
        runner = Runner(parse_pipeline(tiny(name, **over, **extra)), tmp_path / name)
        list(runner.run())
        cat = Catalog(runner.store)
        sets.append([cat.train_set(t.training_id) for t in runner.result.trainings])
        for t in runner.result.trainings:
            assert (cat.get(t.training_id).policy_params.get("ray") is not None) == bool(extra)
    assert len(sets[0]) == len(sets[1]) == 3
    for a, b in zip(*sets):
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights)


def test_gdumb_has_no_distributed_plan_and_runs_in_the_driver(store: Store) -> None:
    assert not supports(GDumb(memory=50))
    ctx = SelectionContext(snapshot=store.as_of(), seed=4)
    assert np.array_equal(select_on_ray(GDumb(memory=50), ctx).keys, GDumb(memory=50).select(ctx).keys)
