"""Hardening of the policies against hostile or extreme configuration.

- a config name never imports a module the user did not install as an entry point;
- huge counts are refused on construction (typed, naming the parameter);
- ``Time`` refuses a start or interval it could never fire with;
- computed scores never bring keys outside the snapshot into a train set;
- importance weights that would overflow are an error naming the score and the row;
- ``DriftAwareRetrain`` checks its trigger name against the registry.
"""

from __future__ import annotations

import math
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import policies
from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from policies import (
    RS2,
    DataDrift,
    DriftAwareRetrain,
    Finetune,
    GDumb,
    Loss,
    Margin,
    Performance,
    PeriodicRetrain,
    Retrain,
    SelectionContext,
    Time,
    TriggerInput,
    from_config,
    get,
)
from policy_testkit import install_entry_points

#: the documented entry-point group of user policies, and the documented largest count
ENTRY_POINT_GROUP = "modyn_store.policies"
MAX_COUNT = 2**62


def test_documented_constants() -> None:
    assert getattr(policies.base, "ENTRY_POINT_GROUP", None) == ENTRY_POINT_GROUP
    assert getattr(policies.base, "MAX_COUNT", None) == MAX_COUNT

# ------------------------------------------------------------------ names from a config: imports

_TRIGGER_SOURCE = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from policies import Trigger, SelectionStrategy


class PlugTrigger(Trigger):
    def __init__(self, every: int = 1) -> None:
        self.every = every

    def _fire(self, delta, model=None):
        return []


class PlugSelection(SelectionStrategy):
    pass


class NotAPolicy:
    pass
'''


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A throwaway module on ``sys.path`` whose import writes a marker file."""
    name = f"zz_plug_{uuid.uuid4().hex}"
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(_TRIGGER_SOURCE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


def _refused_without_import(kind: str, name: str, module: str, marker: Path) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as err:
        get(kind, name)
    assert err.value.name == "name"
    assert module not in sys.modules and not marker.exists(), "the module was imported"
    return err.value


def test_dotted_name_of_an_unregistered_module_is_refused_without_importing_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, marker = _module(tmp_path, monkeypatch)
    for name in (f"{module}.PlugTrigger", f"{module}:PlugTrigger", f"{module}.NotAPolicy"):
        err = _refused_without_import("trigger", name, module, marker)
        assert "data_amount" in err.expected  # the valid choices are listed
        assert "not imported" in err.expected
    with pytest.raises(InvalidArgumentError) as cfg_err:
        from_config("trigger", {"name": f"{module}.PlugTrigger", "every": 2})
    assert cfg_err.value.name == "name"
    assert module not in sys.modules and not marker.exists()


def test_stdlib_module_with_import_side_effects_is_not_imported() -> None:
    if "this" in sys.modules:  # pragma: no cover - someone imported it already
        pytest.skip("module 'this' already imported")
    with pytest.raises(InvalidArgumentError) as err:
        from_config("selection", {"name": "this.Nope"})
    assert err.value.name == "name" and "uniform" in err.value.expected
    assert "this" not in sys.modules


def test_policies_package_paths_still_resolve() -> None:
    assert get("trigger", "policies.data_amount.DataAmount") is policies.DataAmount
    with pytest.raises(InvalidArgumentError):
        get("trigger", "policies.uniform.Uniform")  # a selection strategy, not a trigger
    with pytest.raises(InvalidArgumentError):
        get("trigger", "policies.base.Trigger.Inner")  # not a module: refused, no crash


def test_installed_entry_point_resolves_and_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, marker = _module(tmp_path, monkeypatch)
    install_entry_points(tmp_path, {"zz_plug_trigger": f"{module}:PlugTrigger",
                                     "zz_plug_bad": f"{module}:NotAPolicy"})
    cls = get("trigger", "zz_plug_trigger")
    assert marker.exists()  # the user installed it: loading it is allowed
    assert cls.__name__ == "PlugTrigger"
    t = from_config("trigger", {"name": "zz_plug_trigger", "every": 3})
    assert t.to_config() == {"name": "zz_plug_trigger", "every": 3}
    assert from_config("trigger", t.to_config()) == t
    # the entry point's module is registered, so its dotted paths resolve too
    assert get("trigger", f"{module}.PlugTrigger") is cls
    with pytest.raises(InvalidArgumentError) as err:
        get("trigger", "zz_plug_bad")
    assert err.value.name == "name"
    with pytest.raises(InvalidArgumentError) as err:
        get("trigger", "nope_not_there")
    assert "zz_plug_trigger" in err.value.expected  # installed entry points are listed


def test_other_module_next_to_an_entry_point_is_not_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registered, _ = _module(tmp_path, monkeypatch)
    other, other_marker = _module(tmp_path, monkeypatch)
    install_entry_points(tmp_path, {"zz_plug_trigger2": f"{registered}:PlugTrigger"})
    _refused_without_import("trigger", f"{other}.PlugTrigger", other, other_marker)


@pytest.mark.parametrize(("cls", "field"), [
    (Finetune, "scope"), (Retrain, "scope"),
    (PeriodicRetrain, "retrain_scope"), (PeriodicRetrain, "finetune_scope"),
])
def test_update_scopes_follow_the_same_rule(cls, field: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    module, marker = _module(tmp_path, monkeypatch)
    with pytest.raises(InvalidArgumentError) as err:
        cls(**{field: f"{module}.PlugSelection"})
    assert err.value.name == field and "all_data" in err.value.expected
    assert module not in sys.modules and not marker.exists()
    with pytest.raises(InvalidArgumentError) as err:
        cls(**{field: "all_dta"})  # a typo fails now, not at the first training
    assert err.value.name == field
    assert getattr(cls(**{field: "all_data"}), field) == "all_data"
    assert getattr(cls(**{field: None}), field) is None


def test_update_scope_may_name_an_installed_selection(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = _module(tmp_path, monkeypatch)
    install_entry_points(tmp_path, {"zz_plug_sel": f"{module}:PlugSelection"})
    assert Finetune(scope="zz_plug_sel").scope == "zz_plug_sel"


# ---------------------------------------------------------------------------------- huge counts


@pytest.mark.parametrize(("make", "field"), [
    (lambda v: DataDrift(columns=["x"], history=v), "history"),
    (lambda v: Performance(columns=["x"], history=v), "history"),
    (lambda v: GDumb(memory=v), "memory"),
    (lambda v: RS2(epochs=v), "epochs"),
])
def test_huge_counts_are_refused_naming_the_parameter(make, field: str) -> None:  # type: ignore[no-untyped-def]
    for value in (10**30, 2**63, MAX_COUNT + 1):
        with pytest.raises(InvalidArgumentError) as err:
            make(value)
        assert err.value.name == field
    with pytest.raises(InvalidArgumentError, match=r"\[1, 100000\]"):
        RS2(epochs=100_001)


def test_largest_counts_are_accepted_and_work() -> None:
    # (history is read by the rolling-average decision)
    assert DataDrift(columns=["x"], metric="ks", decision="rolling_average", history=MAX_COUNT).history == MAX_COUNT
    assert Performance(columns=["x"], decision="rolling_average", history=MAX_COUNT).history == MAX_COUNT
    store = Store.open(f"memory://gdumb-{uuid.uuid4().hex}", create=True)
    snap = store.as_of(store.append(pa.table({"ts": [0, 1, 2], "label": [0, 1, 1]})).version)
    # a memory far larger than the data allocates nothing for it and keeps every sample
    ts = GDumb(memory=MAX_COUNT).select(SelectionContext(snapshot=snap))
    assert ts.keys.tolist() == snap.keys().tolist()


# ------------------------------------------------------------------------------------ Time


@pytest.mark.parametrize("start", [math.nan, math.inf, -math.inf])
def test_time_refuses_a_non_finite_start(start: float) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        Time(every=10, start=start)
    assert err.value.name == "start"


@pytest.mark.parametrize("every", ["0.1ns", "0.4ns", "99999999999999999999999d", "9" * 400 + "d",
                                   "300000w"])
def test_time_refuses_an_interval_it_cannot_count_in_nanoseconds(every: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        Time(every=every)
    assert err.value.name == "every"


def test_time_refuses_an_iso_start_outside_datetime64_ns() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        Time(every="1d", start="9999-01-01")
    assert err.value.name == "start"


def _dt_delta() -> TriggerInput:
    """Five samples one day apart (datetime event times)."""
    ts = np.datetime64("2020-01-01", "ns") + np.arange(5) * np.timedelta64(1, "D")
    return TriggerInput(version=1, keys=np.arange(5), ts=ts)


def test_time_still_fires_on_the_smallest_interval() -> None:
    d = _dt_delta()
    assert [f.position for f in Time(every="1ns").fire(d)] == [1, 2, 3, 4]
    assert [f.position for f in Time(every="1.5d").fire(_dt_delta())] == [2, 3]
    numeric = TriggerInput(version=1, keys=np.arange(5), ts=np.array([1, 9, 12, 25, 40]))
    assert [(f.version, f.position) for f in Time(every=10, start=0).fire(numeric)] == [
        (1, 2), (1, 3), (1, 4)]


def test_time_refuses_event_time_too_many_intervals_away() -> None:
    numeric = TriggerInput(version=1, keys=np.arange(3), ts=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(InvalidArgumentError) as err:
        Time(every=1e-300).fire(numeric)
    assert err.value.name == "every"
    with pytest.raises(InvalidArgumentError) as err:
        Time(every=1.0, start=-1e300).fire(numeric)
    assert err.value.name == "start"
    with pytest.raises(InvalidArgumentError) as err:
        Time(every="1d", start=10**30).fire(_dt_delta())
    assert err.value.name == "start"


# ------------------------------------------------------------------------ computed scores


class _CountingSnapshot:
    """A snapshot proxy counting ``contains`` calls."""

    def __init__(self, snap) -> None:  # type: ignore[no-untyped-def]
        self._snap = snap
        self.calls = 0

    def contains(self, keys):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self._snap.contains(keys)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._snap, name)


@pytest.fixture
def erased_snapshot():  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://computed-{uuid.uuid4().hex}", create=True)
    store.append(pa.table({"ts": list(range(6))}))
    store.delete(keys=[5])
    store.erase([3], reason="test")
    return store.as_of(store.version)


# keys 3 (erased), 5 (deleted), 6 and 7 (never inserted) score highest
SCORES = (np.arange(8), np.array([1, 2, 3, 9, 4, 8, 7, 7.0]))


@pytest.mark.parametrize("method", ["top", "importance"])
def test_computed_scores_outside_the_snapshot_are_never_selected(erased_snapshot, method: str) -> None:  # type: ignore[no-untyped-def]
    live = erased_snapshot.keys().tolist()
    assert live == [0, 1, 2, 4]
    ctx = SelectionContext(snapshot=erased_snapshot, computed_scores={"loss": SCORES})
    ts = Loss(ratio=1.0, limit=1, method=method).select(ctx)
    assert ts.keys.size == 1 and set(ts.keys.tolist()) <= set(live)
    if method == "top":
        assert ts.keys.tolist() == [4]  # the best live score
    assert Loss(ratio=1.0, method=method).select(ctx).keys.tolist() == live


def test_computed_scores_pair_costs_one_membership_call(erased_snapshot) -> None:  # type: ignore[no-untyped-def]
    snap = _CountingSnapshot(erased_snapshot)
    ctx = SelectionContext(snapshot=snap, computed_scores={"loss": SCORES}, batch_size=2)
    ts = Loss(ratio=1.0, limit=2).select(ctx)  # two passes over the batches of scores
    assert ts.keys.tolist() == [2, 4]
    assert snap.calls == 1


# ---------------------------------------------------------------------- importance overflow


def _snap_of(keys: list[int]):  # type: ignore[no-untyped-def]
    store = Store.open(f"memory://importance-{uuid.uuid4().hex}", create=True)
    return store.as_of(store.append(pa.table({"key": keys, "ts": list(range(len(keys)))})).version)


def test_importance_weights_stay_finite_for_huge_scores() -> None:
    snap = _snap_of([1, 2, 3])
    ctx = SelectionContext(snapshot=snap, computed_scores={
        "loss": (np.array([1, 2, 3]), np.array([1e308, 1e308, 1.0]))})
    ts = Loss(ratio=1.0, limit=2, method="importance").select(ctx)
    assert np.isfinite(ts.weights).all() and ts.weights.tolist() == pytest.approx([2 / 3, 2 / 3])


def test_importance_overflow_states_the_bound_it_applies() -> None:
    # sum(weights) = 1e308 (finite): a weight is refused below sum / (n * float64 max) = 0.0556;
    # the message must give that bound with n, not a "largest weight" that is the sum's scale
    snap = _snap_of(list(range(10)))
    ctx = SelectionContext(snapshot=snap, computed_scores={
        "loss": (np.arange(10), np.array([1e308] + [1e-300] * 9))})
    with pytest.raises(InvalidArgumentError) as err:
        Loss(ratio=0.5, method="importance").select(ctx)
    bound = 1e308 / (10 * sys.float_info.max)
    assert f"at least {bound:.3g}" in err.value.expected and "n = 10 rows" in err.value.expected
    assert "largest weight 1," not in err.value.expected


def test_importance_overflow_names_the_score_and_the_row() -> None:
    snap = _snap_of([5, 9])
    ctx = SelectionContext(snapshot=snap, computed_scores={
        "loss": (np.array([5, 9]), np.array([1e-320, 1.0]))})
    with pytest.raises(InvalidArgumentError) as err:
        Loss(ratio=1.0, method="importance").select(ctx)
    assert err.value.name == "scores['loss'][5]" and "key 5" in err.value.expected
    with pytest.raises(InvalidArgumentError) as err:
        Loss(ratio=1.0, method="importance").choose_in_batch(np.array([0.0, 1e-320, 1.0]), seed=0)
    assert err.value.name == "scores['loss'][1]"
    # margin samples by 1 - score, never that small: finite weights
    _, w = Margin(ratio=1.0, method="importance").choose_in_batch(np.array([1.0 - 2**-53, 0.0]),
                                                                  seed=0)
    assert np.isfinite(w).all()


# ----------------------------------------------------------------------- drift-aware retrain


@pytest.mark.parametrize("trigger", ["data_drfit", "", "policies.data_drift.DataDrift", 3])
def test_drift_aware_retrain_refuses_an_unregistered_trigger(trigger: object) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        DriftAwareRetrain(bound=0.1, trigger=trigger)  # type: ignore[arg-type]
    assert err.value.name == "trigger" and "data_drift" in err.value.expected


def test_drift_aware_retrain_accepts_registered_triggers() -> None:
    assert DriftAwareRetrain(trigger="performance").trigger == "performance"
    assert from_config("update", {"name": "drift_aware_retrain", "trigger": "data_drift"}).trigger \
        == "data_drift"
