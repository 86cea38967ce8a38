"""``choose_in_batch`` (batch_then_sample) refuses NaN scores as ``select`` does."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from policies.score_based import Entropy, Loss, Margin, ScoreDownsample

_CLASSES: dict[str, type[ScoreDownsample]] = {"loss": Loss, "margin": Margin, "entropy": Entropy}


@pytest.mark.parametrize("name", ["loss", "margin", "entropy"])
def test_top_in_a_batch_refuses_a_nan_score_naming_its_position(name: str) -> None:
    s = _CLASSES[name](ratio=0.5, mode="batch_then_sample")
    scores = np.array([0.2, np.nan, 0.4, 0.1, np.nan, 0.3])
    # before: the NaN rows were dropped, so the step trained on 2 rows instead of 3
    with pytest.raises(InvalidArgumentError) as err:
        s.choose_in_batch(scores, seed=0)
    assert err.value.name == f"scores[{name!r}][batch position 1]"
    assert "not NaN" in str(err.value) and "2 rows" in str(err.value)


def test_top_in_a_batch_of_only_nan_scores_is_refused_not_empty() -> None:
    s = Loss(ratio=0.5, mode="batch_then_sample")
    with pytest.raises(InvalidArgumentError):
        s.choose_in_batch(np.full(4, np.nan), seed=0)

