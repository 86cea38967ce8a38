"""Registry, dotted-path escape hatch and parameter validation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from policy_testkit import EveryOtherVersion, delta, install_entry_points

import policies
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError
from policies import REGISTRY, DataAmount, from_config, get


def test_every_exported_policy_is_registered_and_vice_versa() -> None:
    exported = {id(getattr(policies, n)) for n in policies.__all__}
    registered = {id(c) for kind in REGISTRY.values() for c in kind.values()}
    assert registered <= exported
    assert policies.__all__ == sorted(policies.__all__, key=lambda n: (not n.isupper(), n))


def test_get_by_name_and_unknown_name() -> None:
    assert get("trigger", "data_amount") is DataAmount
    with pytest.raises(InvalidArgumentError) as err:
        get("trigger", "data_amout")
    assert "data_amount" in str(err.value) and err.value.name == "name"
    with pytest.raises(InvalidArgumentError, match="kind"):
        get("triggers", "data_amount")


def test_an_installed_user_class_round_trips(tmp_path, monkeypatch) -> None:
    """A user's policy is named by the entry point its package installs; before it is installed
    its module is not importable by name from a config."""
    with pytest.raises(InvalidArgumentError, match="name"):
        from_config("trigger", {"name": "policy_testkit.EveryOtherVersion", "offset": 1})
    monkeypatch.syspath_prepend(str(tmp_path))
    install_entry_points(tmp_path, {"every_other": "policy_testkit:EveryOtherVersion"})
    t = from_config("trigger", {"name": "every_other", "offset": 1})
    assert isinstance(t, EveryOtherVersion)
    assert t.to_config() == {"name": "every_other", "offset": 1}
    fs = [f for v in range(1, 5) for f in t.fire(delta(v, np.arange(v * 2, v * 2 + 2)))]
    assert [(f.version, f.position) for f in fs] == [(1, 2), (3, 2)]
    assert from_config("trigger", t.to_config()).to_config() == t.to_config()


@pytest.mark.parametrize("path", [
    "policy_testkit.NotAPolicy",          # not a Trigger subclass
    "policies.uniform.Uniform",           # a selection strategy, not a trigger
    "no_such_package_xyz.Trigger",        # not installed
    "policies.no_such_module.Thing",      # no such module
    "os.system",                          # not a class
    "policies.base.Trigger; import os",   # not a dotted path
])
def test_dotted_path_is_validated(path: str) -> None:
    before = set(sys.modules)
    with pytest.raises(InvalidArgumentError) as err:
        get("trigger", path)
    assert err.value.name == "name"
    assert "no_such_package_xyz" not in set(sys.modules) - before


def test_unknown_parameter_names_the_field() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        from_config("trigger", {"name": "data_amount", "every": 3, "evry": 4})
    assert err.value.name == "data_amount.evry"
    with pytest.raises(InvalidArgumentError, match="'name'"):
        from_config("trigger", {"every": 3})


@pytest.mark.parametrize(("kind", "cfg", "field", "expected"), [
    ("trigger", {"name": "data_amount", "every": 0}, "every", "[1, inf]"),
    ("trigger", {"name": "data_amount", "every": 2.5}, "every", "integer"),
    ("trigger", {"name": "data_amount", "every": True}, "every", "integer"),
    ("trigger", {"name": "time", "every": "-1d"}, "every", "duration"),
    ("trigger", {"name": "time", "every": "1d", "start": "yesterday"}, "start", "ISO"),
    ("trigger", {"name": "deletion", "share": 1.5}, "share", "(0.0, 1.0]"),
    ("trigger", {"name": "data_drift", "columns": ["x"], "metric": "kl"}, "metric", "'mmd'"),
    ("trigger", {"name": "data_drift", "columns": ["x"], "metric": "wasserstein"}, "decision",
     "p-value"),
    ("trigger", {"name": "data_drift", "columns": []}, "columns", "at least one"),
    ("trigger", {"name": "data_drift", "columns": ["x"], "threshold": 0.0}, "threshold",
     "(0.0, 1.0]"),
    ("trigger", {"name": "performance", "columns": ["x"], "decision": "auto"}, "decision",
     "'threshold'"),
    ("trigger", {"name": "at_least", "n": 3, "triggers": [{"name": "data_amount"}]}, "n",
     "[1, 1]"),
    ("trigger", {"name": "any", "triggers": []}, "triggers", "at least one"),
    ("selection", {"name": "uniform", "ratio": 0}, "ratio", "(0.0, 1.0]"),
    ("selection", {"name": "uniform", "ratio": 0.5, "limit": 0}, "limit", "[1, inf]"),
    ("selection", {"name": "new_data", "sample": "oldest"}, "sample", "'newest'"),
    ("selection", {"name": "loss", "method": "best"}, "method", "'top'"),
    ("selection", {"name": "rs2", "epochs": 0}, "epochs", "[1, inf]"),
    ("selection", {"name": "gdumb", "memory": -5}, "memory", "[1, inf]"),
    ("selection", {"name": "freshness", "unused_ratio": 2}, "unused_ratio", "[0.0, 1.0]"),
    ("selection", {"name": "rho_loss", "holdout_ratio": 1.0}, "holdout_ratio", "(0.0, 1.0)"),
    ("update", {"name": "periodic_retrain", "every": 0}, "every", "[1, inf]"),
    ("update", {"name": "cost_budget", "budget": -1}, "budget", "(0.0, inf]"),
    ("update", {"name": "retrain", "base": ""}, "base", "non-empty"),
])
def test_validation_names_field_and_range(kind: str, cfg: dict, field: str,
                                          expected: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        from_config(kind, cfg)
    assert isinstance(err.value, ModynStoreError) and isinstance(err.value, ValueError)
    assert err.value.name == field
    assert expected in str(err.value), str(err.value)
