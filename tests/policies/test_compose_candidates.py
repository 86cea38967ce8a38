"""``Compose`` returns only keys ``pre`` selected, with their own weights: a stateful ``post``
(GDumb's memory) leaves out remembered keys that are not candidates this time, and a ``post``
that selects outside the candidates is refused, naming ``post``."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import Compose, Cutoff, GDumb, SelectionContext, SelectionStrategy, Uniform


@pytest.fixture(scope="module")
def store():  # type: ignore[no-untyped-def]
    s = Store.open(f"memory://compose-cand-{uuid.uuid4().hex}", create=True)
    s.append(pa.table({"ts": np.arange(10), "label": np.arange(10) % 2}))
    s.append(pa.table({"ts": np.arange(10, 20), "label": np.arange(10) % 2}))
    return s


def test_gdumb_after_pre_keeps_to_pre_keys(store) -> None:  # type: ignore[no-untyped-def]
    c = Compose(pre=Uniform(ratio=0.5), post=GDumb(memory=6))
    ctx1 = SelectionContext(snapshot=store.as_of(1), seed=1)
    t1 = c.select(ctx1)
    assert set(t1.keys.tolist()) <= set(c.pre.select(ctx1).keys.tolist())
    ctx2 = SelectionContext(snapshot=store.as_of(2), trigger_cutoffs=(Cutoff(1),), trigger_index=1,
                            history=(t1,), seed=2)
    t2 = c.select(ctx2)
    assert set(t2.keys.tolist()) <= set(c.pre.select(ctx2).keys.tolist())


class _Outside(SelectionStrategy):
    def _select(self, ctx: SelectionContext) -> TrainSet:
        return TrainSet.uniform(np.array([0, 19]), version=ctx.version)


def test_post_outside_the_candidates_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    c = Compose(pre=Uniform(ratio=0.5), post=Uniform(ratio=1.0))
    c.post = _Outside()
    ctx = SelectionContext(snapshot=store.as_of(2), seed=3, candidates=np.arange(1, 19))
    with pytest.raises(InvalidArgumentError) as e:
        c.select(ctx)
    assert e.value.name == "post"
