"""Evaluation: metrics against references, slices, the stored model x slice matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet
from training.evaluation import evaluate, f1_macro, roc_auc, time_slices
from training.trainer import TrainConfig, train


def _f1_reference(y: list[int], p: list[int]) -> float:
    classes = sorted(set(y) | set(p))
    out = []
    for c in classes:
        tp = sum(1 for a, b in zip(y, p) if a == c and b == c)
        fp = sum(1 for a, b in zip(y, p) if a != c and b == c)
        fn = sum(1 for a, b in zip(y, p) if a == c and b != c)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        out.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(out) / len(out)


@pytest.mark.parametrize("seed", range(5))
def test_metric_kernels_match_references(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    assert f1_macro(y, p) == pytest.approx(_f1_reference(y.tolist(), p.tolist()))
    s = np.round(rng.random(200), 1)  # ties on purpose
    yb = (rng.random(200) < 0.4).astype(np.int64)
    u = mannwhitneyu(s[yb == 1], s[yb == 0]).statistic
    probs = np.stack([1 - s, s], axis=1)
    assert roc_auc(yb, probs) == pytest.approx(u / (yb.sum() * (200 - yb.sum())))
    assert math.isnan(roc_auc(np.zeros(5, np.int64), np.full((5, 2), 0.5)))


def test_slices_partition_the_stream(store) -> None:
    slices = time_slices(store, n=4)
    ts = np.array(store.as_of(None).to_table(["ts"]).column("ts").to_pylist(), float)
    counts = [int(np.sum((ts >= s.start) & ((ts <= s.end) if s.closed else (ts < s.end)))) for s in slices]
    assert sum(counts) == ts.size and len(slices) == 4
    every = time_slices(store, every=5000.0)
    assert every[0].start == ts.min() and every[-1].end >= ts.max()


def test_every_model_on_every_slice_is_stored(store) -> None:
    cfg = TrainConfig(model="logreg", model_params={"in_features": 8, "n_classes": 3}, epochs=1, batch_size=64)
    keys = store.as_of(None).keys()
    train(store, TrainSet.uniform(keys[:500], version=store.version), cfg, training_id="m0")
    train(store, TrainSet.uniform(keys[500:1000], version=store.version), cfg, training_id="m1")
    slices = time_slices(store, n=3)
    m = evaluate(store, ["m0", "m1"], slices, inputs={"features": "x"})
    assert m.values.shape == (2, 3, 4) and m.models == ("m0", "m1")
    assert np.all(np.isfinite(m.values))
    # reference for one cell: model m1 on slice 2, computed plainly
    cat = Catalog(store)
    from training.models import build_model

    net = build_model("logreg", in_features=8, n_classes=3)
    net.load_state_dict(cat.load_checkpoint("m1"))
    t = store.as_of(None).to_table(["ts", "x", "label"])
    ts = np.array(t.column("ts").to_pylist(), float)
    s = slices[2]
    inside = (ts >= s.start) & (ts <= s.end)
    x = torch.tensor(np.array(t.column("x").to_pylist(), np.float32)[inside])
    y = np.array(t.column("label").to_pylist())[inside]
    with torch.no_grad():
        z = net(x)
    acc = float((z.argmax(1).numpy() == y).mean())
    loss = float(torch.nn.functional.cross_entropy(z, torch.from_numpy(y)))
    assert m.matrix("accuracy")[1, 2] == pytest.approx(acc)
    assert m.matrix("loss")[1, 2] == pytest.approx(loss, rel=1e-5)
    assert m.counts[2] == int(inside.sum())
    stored = cat.evaluations(m.evaluation_id)
    assert stored.num_rows == 2 * 3 * 4
    row = [
        r for r in stored.to_pylist() if (r["model_id"], r["slice"], r["metric"]) == ("m1", s.name, "accuracy")
    ]
    assert row[0]["value"] == pytest.approx(acc)


class _Squeezed(torch.nn.Module):
    """One score per row, shape [rows]: not logits of shape [rows, classes]."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return self.lin(input).squeeze(1)


def test_outputs_that_are_not_logits_are_refused() -> None:
    import pyarrow as pa

    from modyn_store import Store
    from modyn_store.core.errors import InvalidArgumentError

    store = Store.open("memory://eval-not-logits", create=True)
    x = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(10), "label": np.arange(10) % 2,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    version = store.version
    shape = r"invalid models='m'.*logits of shape \[rows, classes\].*gave \[10\]"
    with pytest.raises(InvalidArgumentError, match=shape):
        evaluate(store, {"m": _Squeezed()}, time_slices(store, n=1), inputs={"input": "x"})
    assert store.version == version  # nothing recorded


def _small_store(name: str):
    import pyarrow as pa

    from modyn_store import Store

    store = Store.open(f"memory://{name}", create=True)
    x = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(10), "label": np.arange(10) % 2,
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


@pytest.mark.parametrize("inputs", [["x"], "x", {}, {"input": 5}])
def test_inputs_that_are_not_a_column_mapping_are_refused(inputs) -> None:
    from modyn_store.core.errors import InvalidArgumentError

    store = _small_store("eval-bad-inputs")
    with pytest.raises(InvalidArgumentError, match="invalid inputs="):
        evaluate(store, {"m": torch.nn.Linear(2, 2)}, time_slices(store, n=1), inputs=inputs)


def test_repeated_metrics_are_refused() -> None:
    from modyn_store.core.errors import InvalidArgumentError

    store = _small_store("eval-repeated-metrics")
    version = store.version
    with pytest.raises(InvalidArgumentError, match="distinct names"):
        evaluate(store, {"m": torch.nn.Linear(2, 2)}, time_slices(store, n=1), inputs={"input": "x"},
                 metrics=("loss", "loss"))
    assert store.version == version  # no cell recorded twice


def test_modules_get_their_mode_back() -> None:
    from modyn_store.core.errors import InvalidArgumentError

    store = _small_store("eval-mode-back")
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    frozen = torch.nn.Linear(2, 2).eval()
    evaluate(store, {"net": net, "frozen": frozen}, time_slices(store, n=1), inputs={"input": "x"}, record=False)
    assert net.training and not frozen.training
    # also when a slice is refused (label codes beyond a model's outputs)
    with pytest.raises(InvalidArgumentError, match="label"):
        evaluate(store, {"one": torch.nn.Sequential(torch.nn.Linear(2, 1)).train(), "net": net},
                 time_slices(store, n=1), inputs={"input": "x"}, record=False)
    assert net.training
