"""A config naming a bare base class (``policies.base.Trigger``, ...) is refused when built,
naming ``name``, instead of failing with NotImplementedError when first used; a class that
implements the public method itself is still accepted."""

from __future__ import annotations

import numpy as np
import pytest

import policies
import policies._lookup
from modyn_store.core.errors import InvalidArgumentError
from policies import Firing, Trigger, TriggerInput


@pytest.mark.parametrize(("kind", "name"), [
    ("trigger", "policies.base.Trigger"),
    ("selection", "policies.base.SelectionStrategy"),
    ("update", "policies.base.UpdatePolicy"),
    ("trigger", "policies.base:Trigger"),
])
def test_bare_bases_are_refused(kind: str, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        policies.from_config(kind, {"name": name})
    assert e.value.name == "name" and "abstract" in str(e.value)


class PublicFire(Trigger):
    """Implements ``fire`` itself."""

    def fire(self, delta, model=None):  # type: ignore[no-untyped-def, override]
        return [Firing(version=delta.version, position=0, reason="always", trigger="x", seen=0)]


def test_public_method_implementation_is_accepted() -> None:
    t = PublicFire()
    assert policies._lookup._is_abstract("trigger", PublicFire) is False
    assert len(t.fire(TriggerInput(version=1, keys=np.arange(2), ts=np.arange(2)))) == 1
    assert policies.get("trigger", "policies.data_amount.DataAmount").__name__ == "DataAmount"
