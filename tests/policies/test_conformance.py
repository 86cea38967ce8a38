"""One conformance test over every registered policy, built from its own ``_test_params``.

Every policy: config round trip (plain JSON), repr, clone, pickle, constructor arguments kept as
public attributes. Triggers: deterministic firings in stream order with valid cutoffs.
Selection strategies (on a real store with deletes, an erasure and scores): deterministic under
a seed, a subset of the live keys, never a deleted or erased key, the size limit met when there
is enough data, positive finite weights. Update policies: deterministic, valid decisions.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from policy_testkit import ThresholdModel

from policies import REGISTRY, SelectionContext, TriggerInput, UpdateContext, from_config
from policies.base import Firing, Trigger

CASES = [
    pytest.param(kind, name, i, params, id=f"{kind}-{name}-{i}")
    for kind in sorted(REGISTRY)
    for name, cls in sorted(REGISTRY[kind].items())
    for i, params in enumerate(cls._test_params())
]


def test_every_kind_has_policies() -> None:
    assert {k: len(v) > 0 for k, v in REGISTRY.items()} == {
        "selection": True, "trigger": True, "update": True}


@pytest.mark.parametrize(("kind", "name", "i", "params"), CASES)
def test_config_repr_clone_pickle(kind: str, name: str, i: int, params: dict) -> None:
    cls = REGISTRY[kind][name]
    p = cls(**params)
    cfg = p.to_config()
    assert cfg["name"] == name
    assert json.loads(json.dumps(cfg)) == cfg  # plain data only
    again = from_config(kind, cfg)
    assert type(again) is cls and again.to_config() == cfg and again == p
    assert repr(again) == repr(p) and repr(p).startswith(f"{cls.__name__}(")
    c = p.clone()
    assert c is not p and c == p
    assert pickle.loads(pickle.dumps(p)) == p
    for arg in cls._param_names():
        assert hasattr(p, arg), f"{name}: constructor argument {arg!r} is not an attribute"
    rebuilt = cls(**{arg: _fresh(getattr(p, arg)) for arg in cls._param_names()})
    assert rebuilt == p  # the public attributes are the constructor arguments
    back = pickle.loads(pickle.dumps(p))
    for part in back._parts() if isinstance(back, Trigger) else []:  # a copy's parts are its own
        assert part._part_of is not None and part._part_of() is back
    for arg, value in params.items():
        if not isinstance(value, (dict, list)):
            assert getattr(p, arg) == value, arg


def _fresh(value: object) -> object:
    """``value`` with every trigger instance in it cloned (a trigger is part of one trigger
    only: the rebuilt policy cannot take the original's parts)."""
    if isinstance(value, Trigger):
        return value.clone()
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def _stream(seed: int, sizes: tuple[int, ...] = (7, 0, 23, 15, 31)) -> list[TriggerInput]:
    """Versions of rows whose feature ``x`` shifts (mean 0 -> 3) and whose concept flips at
    version 4: the label is ``x > 0`` (what ThresholdModel predicts) before and ``x < 3`` after,
    so data, drift, deletion, time and performance triggers all have something to fire on."""
    rng = np.random.default_rng(seed)
    out, k = [], 0
    for v, n in enumerate(sizes, start=1):
        keys = np.arange(k, k + n)
        x = rng.normal(0 if v < 4 else 3, 1, n)
        labels = (x > 0) if v < 4 else (x < 3)
        deleted = np.array([k - 1]) if k and v % 2 == 0 else np.empty(0, np.int64)
        out.append(TriggerInput(version=v, keys=keys, ts=np.sort(rng.uniform(k, k + n, n)),
                                labels=labels.astype(np.int64), features={"x": x},
                                deleted=deleted))
        k += n
    return out


def _run_trigger(t, deltas) -> list[Firing]:  # type: ignore[no-untyped-def]
    from modyn_store.core.trainset import TrainSet

    t.on_training(TrainSet.uniform(np.arange(0, 10), version=1))
    out = []
    for d in deltas:
        fs = t.fire(d, model=ThresholdModel())
        ends = [int(np.searchsorted(d.versions, f.version)) + f.position for f in fs]
        assert ends == sorted(ends) and all(0 <= e <= len(d) for e in ends)
        assert all(f.trigger == t.name for f in fs)
        out += fs
    return out


@pytest.mark.parametrize(("kind", "name", "i", "params"),
                         [c for c in CASES if c.values[0] == "trigger"])
def test_trigger_conformance(kind: str, name: str, i: int, params: dict) -> None:
    p = REGISTRY[kind][name](**params)
    a = _run_trigger(p.clone(), _stream(1))
    b = _run_trigger(p.clone(), _stream(1))
    assert [(f.version, f.position, f.reason, f.statistic) for f in a] == \
        [(f.version, f.position, f.reason, f.statistic) for f in b]
    assert all(f.seen <= 76 for f in a)
    # a trigger that never fires would pass everything above
    assert a, f"{name} with {params} never fired on the conformance stream"
    assert _run_trigger(p.clone(), _stream(1, sizes=(0, 0, 0))) == [], "fired without any data"


def _limit(strategy) -> int | None:  # type: ignore[no-untyped-def]
    for attr in ("limit", "memory"):
        if getattr(strategy, attr, None) is not None:
            return int(getattr(strategy, attr))
    post = getattr(strategy, "post", None)
    return None if post is None else _limit(post)


@pytest.mark.parametrize(("kind", "name", "i", "params"),
                         [c for c in CASES if c.values[0] == "selection"])
def test_selection_conformance(kind: str, name: str, i: int, params: dict, real_store) -> None:
    store = real_store
    snap = store.as_of(None)
    live = snap.keys()
    log = store.log()
    gone = np.array([k for k in range(int(log[-1].max_key) + 1) if k not in set(live.tolist())])
    assert gone.size == 5
    data_versions = [r.version for r in log if r.op == "append"]
    from modyn_store.core.trainset import TrainSet

    past = TrainSet.uniform(live[:50], version=data_versions[1])
    ctx = SelectionContext(snapshot=snap, scores=store.scores, trigger_index=2,
                           trigger_cutoffs=tuple(data_versions[:2]), history=(past,), seed=11,
                           excluded=live[-5:])
    p = REGISTRY[kind][name](**params)
    a = p.clone().select(ctx)
    b = p.clone().select(ctx)
    assert a == b and a.digest() == b.digest()
    assert a.version == snap.version
    assert np.isin(a.keys, live).all()
    assert not np.isin(a.keys, gone).any()
    assert not np.isin(a.keys, ctx.excluded).any()
    assert np.all(np.isfinite(a.weights)) and np.all(a.weights > 0)
    limit = _limit(p)
    if a.per_epoch is not None:
        sizes = {len(a.for_epoch(e)) for e in range(len(a.per_epoch))}
        want = limit if limit is not None else int(round(p.ratio * (live.size - 5)))
        assert sizes == {want}
    elif limit is not None:
        assert a.size == limit
    elif getattr(p, "ratio", None) is not None:
        assert a.size == int(round(p.ratio * (live.size - 5)))
    other = p.clone().select(ctx.replace(seed=12))
    assert np.isin(other.keys, live).all()


@pytest.mark.parametrize(("kind", "name", "i", "params"),
                         [c for c in CASES if c.values[0] == "update"])
def test_update_conformance(kind: str, name: str, i: int, params: dict) -> None:
    p = REGISTRY[kind][name](**params)
    f = Firing(version=3, position=1, reason="x", statistic=0.5, trigger="data_drift")
    for ti, model, erased, spent in [(0, None, [], 0.0), (1, "m0", [], 5.0), (2, "m1", [3], 30.0),
                                     (3, "m2", [], 100.0)]:
        ctx = UpdateContext(trigger_index=ti, firing=f, current_model=model,
                            erased_trained_keys=np.array(erased, dtype=np.int64),
                            training_seconds=spent, last_retrain_seconds=10.0 if ti else None)
        d1, d2 = p.clone().decide(ctx), p.clone().decide(ctx)
        assert d1 == d2
        assert d1.mode in ("finetune", "retrain") and d1.reason
        if d1.mode == "finetune":
            assert d1.base == model
        else:
            assert d1.base == getattr(p, "base", None)
