"""training.score and training.evaluate read the version, label column, layer, metrics and
forward arguments they are given, and record only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from modyn_store.core.trainset import TrainSet
from training.entries import LoaderOptions
from training.evaluation import Slice, evaluate, time_slices
from training.models import build_model
from training.scoring import score


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two versions of 300 rows; ``other`` is a second label column (the label shifted by one class)."""
    s = Store.open(str(tmp_path / "s"), create=True)
    rng = np.random.default_rng(0)
    for v in range(2):
        keys = np.arange(v * 300, (v + 1) * 300)
        x = rng.standard_normal((300, 4)).astype(np.float32)
        label = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
        s.append(pa.table({"key": keys, "ts": keys.astype(np.float64), "label": label, "other": (label + 1) % 3,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)}))
    return s


def _mlp() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model("mlp", in_features=4, n_classes=3, hidden=[6])


def _x(store: Store, keys: np.ndarray) -> torch.Tensor:
    t = store.as_of(None).take(keys, ["x"])
    return torch.tensor(np.array(t.column("x").to_pylist(), np.float32))


def _labels(store: Store, keys: np.ndarray, col: str) -> np.ndarray:
    return np.array(store.as_of(None).take(keys, [col]).column(col).to_pylist())


def test_score_label_names_the_label_column(store: Store) -> None:
    model = _mlp()
    a = score(store, model, inputs={"features": "x"}, scores=("loss",), write=False)
    b = score(store, model, inputs={"features": "x"}, scores=("loss",), label="other", write=False)
    with torch.no_grad():
        z = model(features=_x(store, b.keys))
    want = torch.nn.functional.cross_entropy(z, torch.from_numpy(_labels(store, b.keys, "other")), reduction="none")
    np.testing.assert_allclose(b.values["loss"], want.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.values["loss"], b.values["loss"])


def test_score_version_scores_that_snapshot(store: Store) -> None:
    out = score(store, _mlp(), inputs={"features": "x"}, scores=("entropy",), version=1, write=False)
    assert out.keys.tolist() == list(range(300))


def test_score_embedding_layer_picks_the_layer(store: Store) -> None:
    model = _mlp()
    first = next(n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
    keys = np.arange(50)
    ts = TrainSet.uniform(keys, version=store.version)
    out = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("embedding",), embedding_layer=first,
                write=False)
    # the input of the first linear layer is the feature vector itself
    np.testing.assert_allclose(np.asarray(out.values["embedding"], np.float64), _x(store, out.keys).double().numpy(),
                               rtol=1e-6)
    last = score(store, model, inputs={"features": "x"}, train_set=ts, scores=("embedding",), write=False)
    assert np.asarray(last.values["embedding"]).shape[1] == 6  # the default: the last linear layer's input


def test_score_scores_selects_what_is_computed_and_written(store: Store) -> None:
    out = score(store, _mlp(), inputs={"features": "x"}, scores=("margin",), training_id="t9")
    assert set(out.values) == {"margin"} and set(out.versions) == {"margin"}
    assert store.scores.as_of(None, "margin").num_rows == 600


def test_score_prepare_builds_the_forward_arguments(store: Store) -> None:
    model = _mlp()
    plain = score(store, model, inputs={"features": "x"}, scores=("entropy",), write=False)
    zero = score(store, model, inputs={"features": "x"}, scores=("entropy",), write=False,
                 prepare=lambda b: {"features": torch.zeros_like(b["x"])})
    assert np.unique(np.round(zero.values["entropy"], 6)).size == 1  # every row the same input
    assert np.unique(np.round(plain.values["entropy"], 6)).size > 1


def _whole(store: Store) -> list[Slice]:
    return [Slice("all", 0.0, 599.0, closed=True)]


def test_evaluate_label_version_and_metrics(store: Store) -> None:
    model = _mlp()
    m = evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("accuracy",), record=False)
    o = evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("accuracy",),
                 label="other", record=False)
    v1 = evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("accuracy", "loss"),
                  version=1, record=False)
    assert m.metrics == ("accuracy",) and v1.metrics == ("accuracy", "loss")
    with torch.no_grad():
        pred = model(features=_x(store, np.arange(600))).argmax(1).numpy()
    assert m.matrix("accuracy")[0, 0] == pytest.approx(float(np.mean(pred == _labels(store, np.arange(600), "label"))))
    assert o.matrix("accuracy")[0, 0] == pytest.approx(float(np.mean(pred == _labels(store, np.arange(600), "other"))))
    assert v1.counts == (300,) and m.counts == (600,)
    assert v1.matrix("accuracy")[0, 0] == pytest.approx(float(np.mean(pred[:300] == _labels(store, np.arange(300), "label"))))


def test_evaluate_records_only_when_asked(store: Store) -> None:
    before = store.version
    evaluate(store, {"m": _mlp()}, time_slices(store, n=2), inputs={"features": "x"}, record=False)
    assert store.version == before and store.read_table("evaluations") is None
    out = evaluate(store, {"m": _mlp()}, time_slices(store, n=2), inputs={"features": "x"})
    assert store.version == before + 1 and out.evaluation_id is not None
    assert store.read_table("evaluations") is not None


def test_evaluate_prepare_builds_the_forward_arguments(store: Store) -> None:
    model = _mlp()
    plain = evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("loss",), record=False)
    zero = evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("loss",), record=False,
                    prepare=lambda b: {"features": torch.zeros_like(b["x"])})
    assert plain.matrix("loss")[0, 0] != pytest.approx(zero.matrix("loss")[0, 0])


def test_time_slices_version_spans_that_snapshot(store: Store) -> None:
    # version 1 holds ts 0..299, the latest 0..599: the windows cover the snapshot asked for
    for version, last in ((1, 299.0), (None, 599.0), (2, 599.0)):
        slices = time_slices(store, n=3, version=version)
        assert (slices[0].start, slices[-1].end) == (0.0, last), version


class _Sizes(torch.nn.Module):
    """A model that records how many rows each forward pass holds."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _mlp()
        self.rows: list[int] = []

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.rows.append(int(features.shape[0]))
        return self.net(features=features)  # type: ignore[no-any-return]


def test_score_batch_size_sets_the_rows_of_each_forward_pass(store: Store) -> None:
    model = _Sizes()
    score(store, model, inputs={"features": "x"}, scores=("entropy",), version=1, batch_size=64, write=False)
    assert model.rows == [64, 64, 64, 64, 44]


def test_evaluate_batch_size_sets_the_rows_of_each_forward_pass(store: Store) -> None:
    model = _Sizes()
    evaluate(store, {"m": model}, _whole(store), inputs={"features": "x"}, metrics=("accuracy",), batch_size=250,
             record=False)
    assert model.rows == [250, 250, 100]


def test_score_loader_options_reach_the_read(store: Store, planned: list[tuple[Any, Any]]) -> None:
    seen = planned
    score(store, _mlp(), inputs={"features": "x"}, scores=("entropy",), write=False,
          loader_options=LoaderOptions(strategy="scan", threads=2))
    assert seen == [("scan", 2)]


def test_evaluate_loader_options_reach_the_read(store: Store, planned: list[tuple[Any, Any]]) -> None:
    seen = planned
    evaluate(store, {"m": _mlp()}, time_slices(store, n=2), inputs={"features": "x"}, metrics=("accuracy",),
             record=False, loader_options=LoaderOptions(strategy="take", threads=3))
    assert seen == [("take", 3), ("take", 3)]
