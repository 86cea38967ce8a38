"""Labels are class codes: a float label that is not a whole number (0.5, 1.7, NaN, inf) is
refused by scoring and training, never truncated to a class (1.7 scored as class 1); and a
scoring pass whose scores could not be written (keys deleted since the scored version) is
refused before any forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError, UnknownKeyError
from modyn_store.core.trainset import TrainSet
from training.evaluation import evaluate, time_slices
from training.scoring import score, scores_from_logits
from training.targets import TargetCheck
from training.trainer import TrainConfig, fit


class Counting(torch.nn.Module):
    """A linear model that counts its forward passes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(2, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.lin(x)


def _store(path: Path, labels: list) -> Store:
    x = np.random.default_rng(0).standard_normal((len(labels), 2)).astype(np.float32)
    store = Store.open(str(path), create=True)
    store.append(pa.table({"ts": np.arange(len(labels)), "label": pa.array(labels, pa.float64()),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


@pytest.mark.parametrize(("bad", "shown"), [(1.7, "1.7"), (0.5, "0.5"), (float("nan"), "nan"), (float("inf"), "inf")])
def test_score_refuses_a_float_label_that_is_no_class(tmp_path: Path, bad: float, shown: str) -> None:
    labels = [0.0, 1.0] * 4
    labels[5] = bad
    store = _store(tmp_path / "s", labels)
    before = store.version
    model = Counting()
    with pytest.raises(InvalidArgumentError, match=rf"'label' value {shown} in the row of key 5") as err:
        score(store, model, inputs={"x": "x"}, scores=("loss", "el2n"), batch_size=4)
    assert err.value.name == "label"
    assert model.calls == 1  # the batch of key 5 was refused before its forward pass
    assert store.version == before and store.scores.names() == []


def test_score_takes_float_labels_that_are_whole_numbers(tmp_path: Path) -> None:
    labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    store = _store(tmp_path / "s", labels)
    model = Counting()
    out = score(store, model, inputs={"x": "x"}, scores=("loss",), write=False)
    x = torch.tensor(np.array(store.as_of(None).take(out.keys, ["x"]).column("x").to_pylist(), np.float32))
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(model.lin(x).double(), torch.tensor(labels).long(), reduction="none")
    np.testing.assert_allclose(out.values["loss"], ref.numpy(), rtol=1e-6)


@pytest.mark.parametrize("use_engine", [True, False])
def test_scores_from_logits_refuses_fractional_labels(use_engine: bool) -> None:
    logits = torch.zeros(3, 2, dtype=torch.float64)
    for labels, i in ((torch.tensor([0.0, 1.7, 1.0]), 1), (torch.tensor([0.0, 1.0, float("nan")]), 2)):
        with pytest.raises(InvalidArgumentError, match="whole number") as err:
            scores_from_logits(["loss"], logits, labels, use_engine=use_engine)
        assert err.value.name == f"labels[{i}]"
    whole = scores_from_logits(["loss"], logits, torch.tensor([0.0, 1.0, 1.0]), use_engine=use_engine)
    np.testing.assert_allclose(whole["loss"].numpy(), np.log(2.0))
    # scores that need no labels do not read them
    scores_from_logits(["entropy"], logits, torch.tensor([0.5, 0.5, 0.5]), use_engine=use_engine)


def test_class_codes() -> None:
    from training.scoring import class_codes

    assert class_codes(torch.tensor([0.0, 2.0])).dtype == torch.int64
    assert class_codes(torch.tensor([True, False])).tolist() == [1, 0]
    with pytest.raises(InvalidArgumentError, match="1e\\+20"):
        class_codes(torch.tensor([0.0, 1e20], dtype=torch.float64))  # beyond what float64 holds exactly


@pytest.mark.parametrize("bad", [0.5, 1.7, float("nan")])
def test_fit_refuses_fractional_cross_entropy_targets(bad: float) -> None:
    # a batch not read through train() (which refuses a float label column for cross-entropy)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    before = [p.detach().clone() for p in model.parameters()]
    batch = {"key": torch.arange(4), "weight": torch.ones(4), "x": torch.zeros(4, 2),
             "label": torch.tensor([0.0, 1.0, bad, 1.0])}
    cfg = TrainConfig(inputs={"input": "x"}, label="label", epochs=1, batch_size=4)
    with pytest.raises(InvalidArgumentError, match=r"in rows of keys \[2\]") as err:
        fit(model, [batch], cfg)
    assert err.value.name == "config.label"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_deferred_target_check_counts_fractional_targets() -> None:
    check = TargetCheck("cross_entropy", "y", defer=True)
    out = check(torch.zeros(3, 4), torch.tensor([0.0, 2.5, 3.0]))
    assert out.tolist() == [0.0, 0.0, 3.0]
    with pytest.raises(InvalidArgumentError, match="1 invalid values in epoch 0"):
        check.finish(0)


def test_evaluate_refuses_a_float_label_column_before_any_model_runs(tmp_path: Path) -> None:
    store = _store(tmp_path / "s", [0.0, 1.7, 1.0, 0.5])
    model = Counting()
    with pytest.raises(InvalidArgumentError, match="integer class codes") as err:
        evaluate(store, {"m": model}, time_slices(store, n=1), inputs={"x": "x"})
    assert err.value.name == "label" and model.calls == 0


@pytest.mark.parametrize("given", ["version", "train_set"])
def test_scoring_an_old_version_with_deleted_keys_is_refused_before_any_forward_pass(tmp_path: Path,
                                                                                      given: str) -> None:
    store = _store(tmp_path / "s", [0.0, 1.0] * 4)
    old = store.version
    store.delete(keys=[3, 6])
    before = store.version
    model = Counting()
    what = {"version": old} if given == "version" else {"train_set": TrainSet.uniform(np.arange(8), version=old)}
    with pytest.raises(UnknownKeyError, match=r"2 keys are not live, e.g. \[3, 6\]"):
        score(store, model, inputs={"x": "x"}, scores=("loss",), batch_size=4, **what)
    assert model.calls == 0
    assert store.version == before and store.scores.names() == []
    # without writing, the old version scores; the latest version scores and writes
    assert score(store, model, inputs={"x": "x"}, scores=("loss",), write=False, **what).keys.size == 8
    assert score(store, model, inputs={"x": "x"}, scores=("loss",)).keys.tolist() == [0, 1, 2, 4, 5, 7]
    # an old version (the delete's: the write above made a newer one) whose keys are all live writes
    assert store.version > before
    assert score(store, model, inputs={"x": "x"}, scores=("loss",), version=before).versions["loss"] == store.version


def test_scoring_on_ray_refuses_deleted_keys_before_any_task_runs(tmp_path: Path) -> None:
    # refused before Ray is asked for anything: no cluster is started for this test
    from modyn_store.app.pipeline.ray_exec import score_on_ray

    store = _store(tmp_path / "s", [0.0, 1.0] * 4)
    old = store.version
    store.delete(keys=[2])
    before = store.version
    model = Counting()
    ray: Any
    try:
        import ray
    except ImportError:  # the refusal needs no Ray
        ray = None
    started = ray is not None and ray.is_initialized()
    with pytest.raises(UnknownKeyError, match=r"1 keys are not live, e.g. \[2\]"):
        score_on_ray(store, model, inputs={"x": "x"}, version=old, scores=("loss",))
    assert model.calls == 0 and store.version == before and store.scores.names() == []
    assert ray is None or ray.is_initialized() == started  # no Ray session was started for the pass
