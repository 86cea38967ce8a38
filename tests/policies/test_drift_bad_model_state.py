"""``DataDrift(embeddings=True)``: a model whose embeddings are malformed (or that raises) is
refused, and the trigger is left as it was, its warm-up trigger included: the same deltas then
give the same firings as a trigger that never saw the failing call."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import DataDrift, TriggerInput


class _Model:
    def __init__(self, out: Any = None) -> None:
        self.out = out

    def embed(self, f: dict[str, np.ndarray]) -> np.ndarray:
        x = f["x"]
        return np.stack([-x, x], axis=1) if self.out is None else self.out(x)


def _delta(v: int, x: np.ndarray) -> TriggerInput:
    keys = np.arange(x.size) + 100 * v
    return TriggerInput(version=v, keys=keys, ts=keys, features={"x": x})


def _short(x: np.ndarray) -> np.ndarray:
    return np.ones((x.size - 1, 2))


def _raises(x: np.ndarray) -> np.ndarray:
    raise InvalidArgumentError("model.embed", None, "a model that works")


@pytest.mark.parametrize("bad", [_short, _raises])
@pytest.mark.parametrize("warmup", [None, {"name": "data_amount", "every": 3}])
def test_drift_refuses_bad_embeddings_and_keeps_state(bad, warmup) -> None:  # type: ignore[no-untyped-def]
    xs = [np.zeros(4), np.full(2, 50.0), np.zeros(2), np.zeros(2), np.zeros(3), np.full(2, 9.0)]

    def make() -> DataDrift:
        return DataDrift(columns=["x"], window=4, every=2, min_samples=2, metric="mean_shift",
                         decision="threshold", threshold=1.0, embeddings=True,
                         warmup=0 if warmup is None else 1, warmup_trigger=warmup)

    t, ref = make(), make()
    for tr in (t, ref):
        tr.fire(_delta(1, xs[0]), model=_Model())
    with pytest.raises(InvalidArgumentError) as e:
        t.fire(_delta(2, xs[1]), model=_Model(bad))
    assert e.value.name == "model.embed"
    for v, x in enumerate(xs[2:], start=3):
        got = [(f.version, f.position, f.reason, f.statistic) for f in t.fire(_delta(v, x), model=_Model())]
        want = [(f.version, f.position, f.reason, f.statistic) for f in ref.fire(_delta(v, x), model=_Model())]
        assert got == want
