"""Per-batch gradient-norm downsampling against autograd (Katharopoulos & Fleuret, 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from policies import GradNorm
from training.downsampling import BatchThenSample


class _Recording:
    """A GradNorm selector that keeps the scores it was given."""

    def __init__(self) -> None:
        self.inner = GradNorm(ratio=0.25, mode="batch_then_sample")
        self.needs_hidden, self.needs_labels, self.score = True, True, "gradnorm"
        self.scores: np.ndarray | None = None

    def score_batch(self, *a: Any, **kw: Any) -> np.ndarray:
        self.scores = self.inner.score_batch(*a, **kw)
        return self.scores

    def choose_in_batch(self, scores: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.choose_in_batch(scores, seed=seed)


def test_gradnorm_scores_are_the_last_layer_gradient_norms() -> None:
    for seed in range(3):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
        x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
        sel = _Recording()
        pos, w = BatchThenSample(sel, seed=seed).choose(model, {"input": x}, {"label": y}, "label",
                                                        epoch=0, step=0)
        want = []
        last = model[2]
        for i in range(16):  # the gradient of sample i's loss w.r.t. the last layer, by autograd
            model.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
            g = torch.cat([last.weight.grad.flatten(), last.bias.grad.flatten()])
            want.append(float(g.norm()))
        assert sel.scores is not None
        np.testing.assert_allclose(sel.scores, want, rtol=1e-10)
        assert sorted(pos.tolist()) == sorted(np.argsort(-np.array(want))[:4].tolist())
        assert w.tolist() == [1.0] * 4
