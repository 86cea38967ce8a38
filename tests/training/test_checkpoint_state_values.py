"""``Catalog.save_checkpoint`` refuses, before writing, what ``torch.load(weights_only=True)`` refuses.

Documented in ``Catalog.save_checkpoint`` and ``modyn_store.core._checkpoints.check_state``: a
value the safe loader would refuse later is an ``InvalidArgumentError`` naming the entry at save
time, and nothing is written.
"""

from __future__ import annotations

import collections
import enum
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainings import Catalog


class _Mine:
    pass


class _Sub(torch.Tensor):
    pass


class _Colour(enum.Enum):
    RED = 1


BAD: dict[str, tuple[Any, str]] = {
    "lambda": (lambda: 1, r"state_dict\['x'\]"),
    "object": (_Mine(), r"state_dict\['x'\]=.*_Mine"),
    "numpy": (np.zeros(2), r"state_dict\['x'\]=.*ndarray"),
    "nested": ({"opt": [1, _Mine()]}, r"state_dict\['x'\]\['opt'\]\[1\]"),
    "subclass": (torch.zeros(2).as_subclass(_Sub), r"state_dict\['x'\]=.*_Sub"),
    "enum": (_Colour.RED, r"state_dict\['x'\]=.*_Colour"),
    "defaultdict": (collections.defaultdict(int), r"state_dict\['x'\]=.*defaultdict"),
    "key": ({_Colour.RED: 1}, r"state_dict\['x'\] key"),
    "type": (int, r"state_dict\['x'\]=.*type"),
}

GOOD: dict[str, Any] = {
    "param": torch.nn.Parameter(torch.ones(2)), "int": 3, "float": 0.5, "none": None, "str": "adam",
    "bytes": b"\x00", "nested": {"steps": [1, 2, (3, 4)], 5: {"lr": 0.1}}, "size": torch.Size([2, 3]),
    "dtype": torch.bfloat16, "device": torch.device("cpu"), "set": {1, 2}, "odict": collections.OrderedDict(a=1),
    "sparse": torch.eye(2).to_sparse(), "layout": torch.strided,
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(str(tmp_path / "s"), create=True)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_value_the_safe_loader_refuses_is_refused_at_save_naming_the_entry(store: Store, case: str) -> None:
    value, named = BAD[case]
    before = store.version
    with pytest.raises(InvalidArgumentError, match=named):
        Catalog(store).save_checkpoint("t1", {"w": torch.zeros(2), "x": value})
    assert store.version == before
    assert not store.fs.exists(store.path("models"))  # nothing written, not even the folder


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_refused_values_are_those_torch_load_weights_only_refuses(case: str) -> None:
    buf = io.BytesIO()
    try:
        torch.save({"x": BAD[case][0]}, buf)
    except Exception:  # not even picklable (a lambda)
        return
    buf.seek(0)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(buf, weights_only=True)


def test_accepted_values_load_back_with_weights_only(store: Store) -> None:
    cat = Catalog(store)
    state = {"w": torch.arange(4.0), **GOOD}
    back = cat.load_checkpoint(cat.save_checkpoint("ok", state))
    assert set(back) == set(state)
    assert back["nested"] == GOOD["nested"] and back["size"] == GOOD["size"] and back["dtype"] == torch.bfloat16
    shared: list[Any] = [1]
    shared.append(shared)  # a cycle is pickled by reference: accepted, and the check ends
    cat.save_checkpoint("cyc", {"w": torch.zeros(1), "c": shared})


def test_a_model_with_unloadable_extra_state_is_refused_before_its_checkpoint(store: Store) -> None:
    from training.recording import save_and_record

    class Net(torch.nn.Linear):
        def get_extra_state(self) -> Any:
            return _Mine()

        def set_extra_state(self, state: Any) -> None:
            pass

    with pytest.raises(InvalidArgumentError, match=r"state_dict\['_extra_state'\]"):
        save_and_record(Catalog(store), "t9", Net(2, 2), None, None)  # type: ignore[arg-type]
    assert not store.fs.exists(store.path("models"))
