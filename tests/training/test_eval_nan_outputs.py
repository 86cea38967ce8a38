"""Rows whose logits hold a NaN predict no class: ``argmax`` named the first NaN as the
prediction, so a NaN row of label 0 counted as correct and ROC-AUC ranked NaN scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from training.eval_sample import EvalSample, _wilson, margin, slice_keys
from training.evaluation import Slice, _metrics, evaluate, f1_macro, roc_auc

NAMES = ["accuracy", "f1", "roc_auc", "loss"]


def test_a_nan_row_is_a_miss_and_roc_auc_is_undefined() -> None:
    y = np.array([0, 1, 0, 1])
    z = np.array([[np.nan, np.nan], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    acc, f1, auc, loss = _metrics(NAMES, y, z)
    assert acc == 0.75
    # class 0: tp 1, fp 0, fn 1 -> 2/3; class 1: tp 2, fp 0, fn 0 -> 1 (no class of its own for -1)
    assert f1 == pytest.approx((2 / 3 + 1.0) / 2)
    assert math.isnan(auc) and math.isnan(loss)
    # one NaN logit out of two: still no prediction
    z1 = np.array([[0.0, np.nan], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert _metrics(["accuracy"], y, z1) == [0.75]
    assert f1_macro(np.array([0, 0]), np.array([-1, -1])) == 0.0
    assert math.isnan(roc_auc(np.array([0, 1, 2]), np.array([[np.nan] * 3, [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])))


class _NanOnFirst(torch.nn.Module):
    """Logits of ``x`` itself, NaN on rows whose first feature is negative."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return torch.where(input[:, :1] < 0, torch.full_like(input, float("nan")), input)


def test_evaluate_counts_nan_outputs_as_misses(tmp_path: Path) -> None:
    n = 40
    x = np.zeros((n, 2), np.float32)
    label = np.arange(n) % 2
    x[np.arange(n), label] = 1.0  # a perfect model on every finite row
    x[:10, 0] = -1.0  # rows 0..9: NaN outputs (labels 0 and 1)
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": label.astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    sl = [Slice("all", 0, n - 1, closed=True)]
    m = evaluate(store, {"m": _NanOnFirst()}, sl, inputs={"input": "x"}, record=False)
    assert m.matrix("accuracy")[0, 0] == pytest.approx(30 / 40)
    assert math.isnan(m.matrix("roc_auc")[0, 0])
    assert m.matrix("f1")[0, 0] == pytest.approx(30 / 35)  # per class: tp 15, fn 5 -> 30/35
    # the sampled interval counts the same misses
    part = slice_keys(store.as_of(), sl, EvalSample(size=20, seed=1))[0]
    ks = part.keys
    z = np.where(x[ks, :1] < 0, np.nan, x[ks])
    per = ~np.isnan(z).any(axis=1)  # every finite row is right, every NaN row a miss
    got = margin("accuracy", label[ks], z, part, value=float(per.mean()))
    fpc = 1 - ks.size / n
    normal = 1.959963984540054 * math.sqrt(fpc * per.var(ddof=1) / ks.size)
    assert got == pytest.approx(_wilson(float(per.mean()), normal, ks.size, fpc))  # Wilson, same misses


def test_a_nan_metric_of_a_whole_slice_has_no_interval() -> None:
    """A whole slice evaluated exactly has a margin of 0; a metric that is NaN there (ROC-AUC
    of one class only) has none, not an exact one."""
    import math

    from training.eval_sample import SliceKeys, margin

    part = SliceKeys(np.arange(4), 4)
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    labels = np.zeros(4, np.int64)
    assert margin("accuracy", labels, logits, part, value=0.5) == 0.0
    assert math.isnan(margin("roc_auc", labels, logits, part, value=math.nan))


class _Inf(torch.nn.Module):
    """Logits of ``x`` itself, with ``value`` put in column ``col`` of the first ``rows`` rows."""

    def __init__(self, value: float, rows: int = 3, col: int | slice = 0) -> None:
        super().__init__()
        self.value, self.rows, self.col = value, rows, col

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        out = input.clone()
        out[: self.rows, self.col] = self.value
        return out


def _store_2d(name: str, n: int = 40) -> Store:
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    store = Store.open(f"memory://{name}", create=True)
    store.append(pa.table({"ts": np.arange(n), "label": (x[:, 1] > x[:, 0]).astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    return store


class _Wide(torch.nn.Module):
    """float64 logits, 1e39 (beyond float32's range) on the first row."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        out = input.double()
        out[0, 0] = 1e39
        return out


@pytest.mark.parametrize("module", [_Inf(math.inf), _Inf(-math.inf, col=slice(None)), _Wide()],
                         ids=["+inf", "all -inf", "beyond float32"])
@pytest.mark.parametrize("sample", [None, EvalSample(size=30, seed=1)])
def test_rows_with_an_infinite_largest_logit_are_refused(module: torch.nn.Module, sample: EvalSample | None) -> None:
    # +inf counted for accuracy (argmax) while loss and ROC-AUC came back NaN, silently
    from modyn_store.core.errors import InvalidArgumentError

    store = _store_2d("eval-inf-logits")
    version = store.version
    sl = [Slice("all", 0, 39, closed=True)]
    with pytest.raises(InvalidArgumentError, match=r"invalid models=\"'m' on slice 'all': \d+ rows whose largest "
                                                   r"logit is infinite .*expected finite logits"):
        evaluate(store, {"m": module}, sl, inputs={"input": "x"}, sample=sample)
    assert store.version == version  # nothing recorded


def test_minus_inf_in_some_classes_is_a_probability_of_zero() -> None:
    # -inf for class 0 on rows 0..2: those rows predict class 1 with certainty; the loss is exact
    # (0 where the label is 1, inf where it is 0) instead of NaN
    store = _store_2d("eval-minus-inf")
    sl = [Slice("all", 0, 39, closed=True)]
    m = evaluate(store, {"m": _Inf(-math.inf)}, sl, inputs={"input": "x"}, record=False)
    y = store.as_of().to_table(["label"]).column(0).to_numpy()
    assert not np.isnan(m.values).any()
    assert (m.matrix("loss")[0, 0] == math.inf) == bool((y[:3] == 0).any())


class _Pair(torch.nn.Module):
    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002
        return input, input.sum(1)


def test_outputs_that_are_not_a_tensor_are_refused() -> None:
    # a tuple failed with AttributeError: 'tuple' object has no attribute 'float'
    from modyn_store.core.errors import InvalidArgumentError

    store = _store_2d("eval-tuple-output")
    with pytest.raises(InvalidArgumentError, match=r"invalid models='m'.*a tensor of logits.*'m' gave tuple"):
        evaluate(store, {"m": _Pair()}, [Slice("all", 0, 39, closed=True)], inputs={"input": "x"})


def test_an_infinite_sampled_loss_has_no_interval() -> None:
    store = _store_2d("eval-minus-inf-sampled")
    y = store.as_of().to_table(["label"]).column(0).to_numpy()
    # -inf for each row's own label class on the first rows: a certain, wrong prediction
    col = int(y[0])
    m = evaluate(store, {"m": _Inf(-math.inf, rows=40, col=col)}, [Slice("all", 0, 39, closed=True)],
                 inputs={"input": "x"}, record=False, sample=EvalSample(size=30, seed=1))
    assert m.matrix("loss")[0, 0] == math.inf
    assert math.isnan(m.margin("loss")[0, 0])
    assert not np.isnan(m.matrix("accuracy")).any()
