"""A model whose logits or embeddings are malformed is refused with a typed error naming
``model.logits`` / ``model.embed``, and the trigger is left as it was: the same deltas then give
the same firings as a trigger that never saw the failing call."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies import DataDrift, Performance, TriggerInput


class _Model:
    def __init__(self, out: Any = None) -> None:
        self.out = out

    def _rows(self, f: dict[str, np.ndarray]) -> np.ndarray:
        x = f["x"]
        return np.stack([-x, x], axis=1) if self.out is None else self.out(x)

    def embed(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return self._rows(f)

    def logits(self, f: dict[str, np.ndarray]) -> np.ndarray:
        return self._rows(f)


BAD = [
    lambda x: x[:, None, None] * np.ones((1, 2, 2)),  # 3-D
    lambda x: np.ones((x.size - 1, 2)),  # one row short
    lambda x: np.ones((x.size, 0)),  # no classes
    lambda x: np.array([["a", "b"]] * x.size),  # not numbers
    lambda x: None,
]


def _delta(v: int, x: np.ndarray) -> TriggerInput:
    keys = np.arange(x.size) + 100 * v
    return TriggerInput(version=v, keys=keys, ts=keys, labels=np.ones(x.size, dtype=np.int64),
                        features={"x": x})


@pytest.mark.parametrize("bad", BAD)
def test_performance_refuses_bad_logits_and_keeps_state(bad) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=7) for _ in range(4)]
    t, ref = (Performance(columns=["x"], every=4, decision="rolling_average", threshold=0.1)
              for _ in range(2))
    _same_after_refusal(t, ref, xs, bad, "model.logits", again=1)


def _same_after_refusal(t: Any, ref: Any, xs: list[np.ndarray], bad: Any, name: str, *, again: int) -> None:
    """``t`` and ``ref`` see the first delta; ``t`` refuses the second (its model's output is
    ``bad``, naming ``name``); from delta ``again`` on both fire alike."""
    for tr in (t, ref):
        tr.fire(_delta(1, xs[0]), model=_Model())
    with pytest.raises(InvalidArgumentError) as e:
        t.fire(_delta(2, xs[1]), model=_Model(bad))
    assert e.value.name == name
    for v, x in enumerate(xs[again:], start=again + 1):
        got = [(f.version, f.position, f.reason, f.statistic) for f in t.fire(_delta(v, x), model=_Model())]
        assert got == [(f.version, f.position, f.reason, f.statistic) for f in ref.fire(_delta(v, x), model=_Model())]


@pytest.mark.parametrize("bad", BAD)
def test_drift_refuses_bad_embeddings(bad) -> None:  # type: ignore[no-untyped-def]
    t = DataDrift(columns=["x"], window=4, every=4, min_samples=2, metric="mean_shift",
                  decision="threshold", threshold=0.5, embeddings=True)
    with pytest.raises(InvalidArgumentError) as e:
        t.fire(_delta(1, np.arange(8.0)), model=_Model(bad))
    assert e.value.name == "model.embed"


# -- DataDrift(embeddings=True): the window, counters and warm-up trigger after a refusal ------
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

    _same_after_refusal(make(), make(), xs, bad, "model.embed", again=2)
