"""ROC-AUC of confident models: the softmax of float32 logits rounds every probability beyond a
logit gap of about 17 to exactly 1.0, so a confidently wrong row tied with the confidently right
ones and ROC-AUC moved towards 0.5. Rows are ranked by the log-odds of their probabilities."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import Store
from training.evaluation import Slice, _metrics, evaluate


def _pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """The share of (positive, negative) pairs ranked right, ties counting one half."""
    return float(np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg]))


def test_confident_binary_rows_keep_their_order() -> None:
    gap = np.array([30.0, 20.0, 25.0, 18.0], np.float32)  # z1 - z0: every p1 rounds to 1.0
    y = np.array([1, 1, 0, 0])
    z = np.stack([np.zeros(4, np.float32), gap], axis=1)
    assert _metrics(["roc_auc"], y, z) == [_pairwise_auc(gap[y == 1], gap[y == 0])] == [0.75]
    # a third class: class 1's probability still ranks rows by the gap; class 0's reversed
    z3 = np.stack([np.zeros(4, np.float32), gap, np.full(4, -5.0, np.float32)], axis=1)
    assert _metrics(["roc_auc"], y, z3) == [pytest.approx(0.75)]


def test_log_odds_keep_ties_and_order() -> None:
    from training.evaluation import log_odds

    z = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [5.0, 6.0, 7.0], [0.0, 40.0, 0.0], [0.0, 50.0, 0.0]])
    lo = log_odds(z)
    p = torch.softmax(torch.tensor(z), dim=1).numpy()
    assert lo[0, 0] == lo[1, 2] == lo[2, 0] and lo[0, 2] == lo[1, 0] == lo[2, 2]  # equal p: equal scores
    assert lo[3, 1] == pytest.approx(40 - np.log(2)) and lo[4, 1] == pytest.approx(50 - np.log(2))
    np.testing.assert_allclose(lo[:3], np.log(p[:3]) - np.log1p(-p[:3]), rtol=1e-12)


class _Logits(torch.nn.Module):
    """Returns its input as the logits."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return input


def test_evaluate_ranks_confident_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    label = rng.integers(0, 2, n)
    gap = (rng.uniform(18, 40, n) * np.where(rng.random(n) < 0.8, 2 * label - 1, 1 - 2 * label)).astype(np.float32)
    x = np.stack([np.zeros(n, np.float32), gap], axis=1)
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(n), "label": label.astype(np.int64),
                           "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
    m = evaluate(store, {"m": _Logits()}, [Slice("all", 0, n - 1, closed=True)], inputs={"input": "x"},
                 metrics=["roc_auc"], record=False)
    assert m.matrix("roc_auc")[0, 0] == pytest.approx(_pairwise_auc(gap[label == 1], gap[label == 0]))


def test_rows_near_one_half_keep_their_order() -> None:
    from training.evaluation import log_odds

    # two classes with logits 1e-30 apart: p1 rounds to 1/2 in float64, but the log-odds are
    # +-1e-30 and rank the right row first; they were both 0 (a tie, ROC-AUC 0.5 instead of 1)
    z = np.array([[0.0, 1e-30], [0.0, -1e-30]], np.float32)
    y = np.array([1, 0])
    assert log_odds(z)[:, 1].tolist() == [np.float32(1e-30), -np.float32(1e-30)]
    assert _metrics(["roc_auc"], y, z) == [1.0]
    # a tie for the largest logit: p0 = 1 / (2 + e^-80) < 1 / (2 + e^-100), both below 1/2
    z3 = np.array([[40.0, 40.0, -40.0], [40.0, 40.0, -60.0], [40.0, -40.0, 40.0], [0.0, 0.0, 0.0]], np.float32)
    lo = log_odds(z3)
    assert lo[0, 0] == pytest.approx(-np.exp(-80.0), rel=1e-12)
    assert lo[1, 0] == pytest.approx(-np.exp(-100.0), rel=1e-12)
    assert lo[0, 0] < lo[1, 0] < 0 and lo[0, 0] == lo[0, 1] == lo[2, 0] == lo[2, 2]  # equal p: equal scores
    assert lo[3].tolist() == [-np.log(2.0)] * 3
    # class 0 ranks row 1 above rows 0 and 2 (tied) and row 3 (p0 = 1/3): row 0 alone positive
    assert _metrics(["roc_auc"], np.array([0, 2, 2, 2]), z3[:, [0, 2, 1]])[0] == pytest.approx(
        np.mean([_pairwise_auc(lo[[0], 0], lo[[1, 2, 3], 0]), _pairwise_auc(lo[[1, 2, 3], 1], lo[[0], 1])]))


def _loop_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The rank-sum AUC with ties averaged by a loop over the sorted scores (the reference)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(s.size, dtype=np.float64)
    i = 0
    while i < s.size:
        j = i
        while j + 1 < s.size and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@pytest.mark.parametrize("seed", range(6))
def test_tie_heavy_auc_equals_the_rank_sum_and_the_pairwise_count(seed: int) -> None:
    from training.auc import _auc_binary

    rng = np.random.default_rng(seed)
    for n, distinct in ((7, 2), (60, 3), (300, 5), (5000, 40), (20000, 20000)):
        scores = rng.integers(0, distinct, n).astype(np.float64)
        scores[rng.random(n) < 0.05] = rng.choice([-np.inf, np.inf])
        positive = rng.random(n) < rng.uniform(0.05, 0.95)
        if not 0 < positive.sum() < n:
            continue
        got = _auc_binary(scores, positive)
        assert got == _loop_auc(scores, positive)  # identical, not only close
        if n <= 300:
            assert got == pytest.approx(_pairwise_auc(scores[positive], scores[~positive]), abs=1e-12)


def test_auc_edge_cases() -> None:
    from training.auc import _auc_binary

    assert _auc_binary(np.array([1.0, 1.0, 1.0]), np.array([True, False, True])) == 0.5  # all tied
    assert _auc_binary(np.array([0.0, 1.0]), np.array([False, True])) == 1.0
    assert _auc_binary(np.array([0.0, 1.0]), np.array([True, False])) == 0.0
    assert math.isnan(_auc_binary(np.array([0.0, 1.0]), np.array([True, True])))  # one class only
    assert math.isnan(_auc_binary(np.array([np.nan, 1.0]), np.array([True, False])))
