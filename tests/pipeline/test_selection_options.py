"""The selection table and the score table of ``docs/policies.md`` name exactly the registered
strategies, their constructor parameters and the score registry's entries (that every option
changes what a pipeline trains on: ``test_selection_options_pipeline.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

import policies
from engine import score_registry
from selection_docs import _documented_selection, _names, _table


def test_documented_strategies_are_the_registered_ones() -> None:
    documented = _documented_selection()
    assert set(documented) == set(policies.REGISTRY["selection"])


@pytest.mark.parametrize("name", sorted(policies.REGISTRY["selection"]))
def test_documented_parameters_are_the_constructor_parameters(name: str) -> None:
    cls = policies.get("selection", name)
    assert _documented_selection()[name] == set(cls._param_names())


def test_score_table_is_the_registry() -> None:
    rows = {(_names(r[0]) or ["?"])[0]: r for r in _table("| score | definition | shape |")}
    assert set(rows) == set(score_registry.SCORES)
    for name, (_, definition, shape, by, read_by) in rows.items():
        spec = score_registry.SCORES[name]
        assert shape == spec.shape and by == spec.computed_by, name
        assert set(_names(read_by)) == set(spec.read_by), name
        assert definition.replace("\\|", "|") == spec.definition, name


def test_registry_readers_are_the_strategies_that_read_the_score() -> None:
    readers: dict[str, set[str]] = {}
    for name, cls in policies.REGISTRY["selection"].items():
        if name == "compose":  # reads what its parts read
            continue
        for p in cls._test_params():
            for req in cls(**p).requires:
                if req.startswith("score:"):
                    readers.setdefault(req[6:], set()).add(name)
    for score, spec in score_registry.SCORES.items():
        if score == "rho_loss":  # derived inside RhoLoss from loss and irreducible_loss
            continue
        assert readers.get(score, set()) == set(spec.read_by), score


def test_engine_error_reaches_users_as_a_store_error() -> None:
    import pyarrow as pa

    from modyn_store import Store
    from modyn_store.core.errors import InvalidArgumentError, ModynStoreError

    store = Store.open("memory://engine-error-to-store-error", create=True)
    snap = store.as_of(store.append(pa.table({"key": [1, 2, 3], "ts": [0, 1, 2]})).version)
    ctx = policies.SelectionContext(snapshot=snap, computed_scores={
        "loss": (np.array([1, 2, 3]), np.array([0.5, np.inf, 1.0]))})
    with pytest.raises(InvalidArgumentError) as err:
        policies.Loss(ratio=0.5, method="importance").select(ctx)
    assert isinstance(err.value, ModynStoreError) and "loss" in err.value.name
    with pytest.raises(ModynStoreError):
        policies.Loss(method="importance").choose_in_batch(np.array([1.0, np.inf]), seed=0)
    with pytest.raises(ModynStoreError):  # a kernel's own check, translated at the boundary
        policies.Loss().score_batch(np.zeros((2, 2)), np.array([0, 5]))
