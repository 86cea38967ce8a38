"""Each documented ``DataDrift`` option changes what the trigger does.

Every test here compares an option's value with another value (often the default) on a small,
hand-built stream and asserts the exact firing positions, statistics or p-values, so a trigger
that ignored the option (used the default, or a constant, instead) fails.

Most streams are made of blocks ``B + c`` of 20 rows, ``B = [-1, 1, -1, 1, ...]`` (mean 0,
standard deviation exactly 1): with ``window = every = 20`` and no overlap, each evaluation
compares one block with the reference block, and the ``mean_shift`` statistic is exactly the
difference of the two offsets ``|c - c_ref|``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from policy_testkit import ThresholdModel

from policies import DataDrift, TriggerInput

BLOCK = np.tile([-1.0, 1.0], 10)  # 20 rows, mean 0, std 1


def blocks(offsets: list[float]) -> np.ndarray:
    """A stream of ``BLOCK + c`` for each offset ``c`` (the first block is the reference)."""
    return np.concatenate([BLOCK + c for c in offsets])


def step_stream(n: int, at: int, shift: float = 3.0, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 0.1, n)
    x[at:] += shift
    return x


def run(trigger: DataDrift, x: np.ndarray, sizes: list[int] | None = None,
        model: object = None) -> list[tuple[int, float, str]]:
    """Feed ``x`` in deltas of ``sizes``; ``(global end, statistic, reason)`` of each firing."""
    out, k = [], 0
    for v, n in enumerate(sizes or [x.size], start=1):
        d = TriggerInput(version=v, keys=np.arange(k, k + n), ts=np.arange(k, k + n),
                         features={"x": x[k:k + n]})
        out += [(k + f.position, f.statistic, f.reason) for f in trigger.fire(d, model)]
        k += n
    return out


def positions(trigger: DataDrift, x: np.ndarray, sizes: list[int] | None = None) -> list[int]:
    return [p for p, _, _ in run(trigger, x, sizes)]


def p_value(reason: str) -> float:
    """The p-value a firing reports in its reason (``"drift: mmd=..., p=0.0333 (p_value)"``)."""
    m = re.search(r"p=([0-9.eE+-]+)", reason)
    assert m is not None, reason
    return float(m.group(1))


# -- overlap ---------------------------------------------------------------------------------


def test_overlap_keeps_reference_rows_in_the_current_window_so_a_step_fires_later() -> None:
    """Docs: the current window is the last ``window`` samples, "without ``overlap`` only
    samples after the reference". Reference = rows 0-99, step of 30 sd at row 125, every=50:

    - overlap=False: at 150 the window is rows 100-149 (half shifted: ~15 sd > 10): fires at 150;
    - overlap=True: at 150 the window is rows 50-149 (a quarter shifted: ~7.5 sd), so the
      reference's rows dilute the step; at 200 (rows 100-199, 3/4 shifted) it fires.
    """
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "threshold", "threshold": 10.0,
           "window": 100, "every": 50}
    x = step_stream(400, at=125)
    apart = DataDrift(**cfg, overlap=False)
    together = DataDrift(**cfg, overlap=True)
    assert positions(apart, x) == [150]
    assert positions(together, x) == [200]
    # the same in any split of the stream
    assert positions(DataDrift(**cfg, overlap=True), x, [130, 7, 263]) == [200]


def test_overlap_evaluates_right_after_the_reference_when_new_rows_are_too_few() -> None:
    """Without overlap the first window after the reference holds only the rows since it: with
    every=5 < min_samples=10 the evaluation at 25 (5 new rows) is skipped and the step at row 20
    fires at 30; with overlap the window at 25 is rows 5-24 (15 reference rows + 5 shifted ones,
    ~7.5 sd > 5) and it fires at 25."""
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "threshold", "threshold": 5.0,
           "window": 20, "every": 5, "min_samples": 10}
    x = step_stream(60, at=20)
    apart = DataDrift(**cfg, overlap=False)
    together = DataDrift(**cfg, overlap=True)
    assert positions(apart, x) == [30]
    assert positions(together, x) == [25]


# -- quantile --------------------------------------------------------------------------------


def test_quantile_sets_the_level_of_the_past_statistics_to_exceed() -> None:
    """Statistics 5, 1, 4 (offsets of the blocks after the reference): the first evaluation has
    no history; 1 < quantile([5]); then 4 > median([5, 1]) = 3 fires with quantile=0.5, while
    quantile([5, 1], 0.95) = 4.8 > 4 does not."""
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "quantile", "window": 20,
           "every": 20}
    x = blocks([0, 5, 1, 4])
    median = run(DataDrift(**cfg, quantile=0.5), x)
    assert [(p, s) for p, s, _ in median] == [(80, 4.0)]
    assert run(DataDrift(**cfg, quantile=0.95), x) == []
    assert run(DataDrift(**cfg), x) == []  # the default is 0.95


def test_rolling_average_fires_above_the_mean_of_the_past_statistics_plus_threshold() -> None:
    """Statistics 5 then 6: the second evaluation compares 6 with mean([5]) + threshold, so it
    fires with threshold 0.5 (6 > 5.5) and not with threshold 2 (6 < 7)."""
    cfg: dict[str, Any] = {"columns": ["x"], "metric": "mean_shift", "decision": "rolling_average", "window": 20,
           "every": 20}
    x = blocks([0, 5, 6])
    assert [(p, s) for p, s, _ in run(DataDrift(**cfg, threshold=0.5), x)] == [(60, 6.0)]
    assert run(DataDrift(**cfg, threshold=2.0), x) == []


# -- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["quantile", "rolling_average"])
def test_history_limits_the_past_statistics_compared_with(decision: str) -> None:
    """Statistics 10, 1, 1, 1, 2. With history=3 the last evaluation compares 2 with [1, 1, 1]
    (0.95-quantile 1; mean 1 + threshold 0.5 = 1.5) and fires; with history=50 the early 10 is
    still remembered (quantile ~8.65; mean 3.25 + 0.5) and nothing fires."""
    own = {"quantile": 0.95} if decision == "quantile" else {"threshold": 0.5}
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": decision, **own, "window": 20, "every": 20}
    x = blocks([0, 10, 1, 1, 1, 2])
    short = DataDrift(**cfg, history=3)
    assert [(p, s) for p, s, _ in run(short, x)] == [(120, 2.0)]
    assert short.n_evaluations == 5
    assert run(DataDrift(**cfg, history=50), x) == []
    assert run(DataDrift(**cfg), x) == []  # the default history is 50


# -- max_samples ------------------------------------------------------------------------------


def _ks_cap_stream() -> np.ndarray:
    # reference 0..99, current 37..136: the KS statistic of the full windows is exactly 0.37
    return np.concatenate([np.arange(100.0), np.arange(100.0) + 37])


def _ks_statistic(max_samples: int, seed: int = 0) -> float:
    t = DataDrift(columns=["x"], metric="ks", decision="threshold", threshold=0.0, window=100,
                  every=100, max_samples=max_samples, seed=seed)
    fired = run(t, _ks_cap_stream())
    assert [p for p, _, _ in fired] == [200] and t.n_evaluations == 1
    return fired[0][1]


def test_max_samples_subsamples_larger_windows() -> None:
    """Windows of 100 rows: with max_samples >= 100 both are used whole (KS = 0.37); with
    max_samples=20 both are subsampled to 20 rows, so KS is a multiple of 1/20 (two empirical
    CDFs of 20 rows each), which 0.37 is not."""
    assert _ks_statistic(100) == pytest.approx(0.37, abs=1e-12)
    assert _ks_statistic(1000) == pytest.approx(0.37, abs=1e-12)
    capped = _ks_statistic(20)
    assert capped * 20 == pytest.approx(round(capped * 20), abs=1e-9)
    assert capped != pytest.approx(0.37, abs=1e-6)
    assert capped == pytest.approx(0.55, abs=1e-12)  # seed 0
    # a cap of 50 leaves two rows per 1/100 step: a multiple of 1/50
    half = _ks_statistic(50)
    assert half * 50 == pytest.approx(round(half * 50), abs=1e-9)


# -- min_samples ------------------------------------------------------------------------------


def test_min_samples_skips_windows_with_too_few_finite_rows() -> None:
    """Block 1 (offset 5) has 6 missing values: 14 finite rows. min_samples=15 leaves it
    unevaluated (no evaluation, no firing) and the clean shifted block 2 fires at 60;
    min_samples=10 evaluates block 1 and fires at 40."""
    x = blocks([0, 5, 5])
    x[20:26] = np.nan
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "threshold", "threshold": 1.0,
           "window": 20, "every": 20}
    strict = DataDrift(**cfg, min_samples=15)
    assert [(p, s) for p, s, _ in run(strict, x, [40, 20])] == [(60, 5.0)]
    assert strict.n_evaluations == 1  # the window of 14 finite rows was not evaluated
    loose = DataDrift(**cfg, min_samples=10)
    assert [(p, s) for p, s, _ in run(loose, x)] == [(40, 5.0)]
    assert loose.n_evaluations == 2  # block 1, then block 2 against it (no drift)


def test_min_samples_skips_short_windows_after_the_reference() -> None:
    """Without overlap, the windows after the reference (rows 0-39) grow by every=10 rows: with
    min_samples=25 those of 10 and 20 rows are not evaluated and the step at row 40 fires at 70
    (30 rows); with min_samples=10 it fires at 50."""
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "threshold", "threshold": 5.0,
           "window": 40, "every": 10}
    x = step_stream(100, at=40)
    strict = DataDrift(**cfg, min_samples=25)
    assert positions(strict, x, [50, 20, 30]) == [70]
    assert positions(DataDrift(**cfg, min_samples=10), x) == [50]


class CountingModel(ThresholdModel):
    """Embeds ``x`` as itself (like ``ThresholdModel``) and records the rows of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def embed(self, features):  # type: ignore[no-untyped-def]
        out = super().embed(features)
        self.calls.append(len(out))
        return out


def test_min_samples_window_too_short_is_not_even_embedded() -> None:
    """A window of fewer rows than min_samples is not evaluated: the model is not asked to embed
    it (nor the reference) before the window has enough rows."""
    cfg = {"columns": ["x"], "metric": "mean_shift", "decision": "threshold", "threshold": 5.0,
           "window": 40, "every": 10, "embeddings": True, "min_samples": 25}
    x = step_stream(70, at=40)
    model = CountingModel()
    t = DataDrift(**cfg)
    assert [p for p, _, _ in run(t, x[:60], [60], model=model)] == []  # windows of 10, 20 rows
    assert model.calls == [] and t.n_evaluations == 0
    t2 = DataDrift(**cfg)
    assert [p for p, _, _ in run(t2, x, [70], model=model)] == [70]
    assert model.calls == [40, 30]  # reference, then the window of 30 rows


# -- n_permutations ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_permutations", [19, 29, 200])
def test_n_permutations_sets_the_p_value_resolution(n_permutations: int) -> None:
    """A step of 30 sd: every permutation's MMD is below the observed one, so the p-value is the
    smallest possible, 1 / (n_permutations + 1): 0.05, 0.0333, 0.00498."""
    t = DataDrift(columns=["x"], metric="mmd", threshold=0.06, window=50, every=50,
                  n_permutations=n_permutations)
    fired = run(t, step_stream(100, at=50))
    assert [p for p, _, _ in fired] == [100]
    assert p_value(fired[0][2]) == pytest.approx(1 / (n_permutations + 1), rel=5e-3)


def test_n_permutations_29_resolves_a_threshold_of_0_04() -> None:
    """With threshold 0.04, 29 permutations give p = 1/30 < 0.04 at best; 24 permutations are
    refused (p >= 1/25 = 0.04 always); the reported p-value is that of 29 permutations."""
    from modyn_store.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="n_permutations"):
        DataDrift(columns=["x"], metric="mmd", threshold=0.04, n_permutations=24)
    t = DataDrift(columns=["x"], metric="mmd", threshold=0.04, window=50, every=50,
                  n_permutations=29)
    fired = run(t, step_stream(100, at=50))
    assert [p for p, _, _ in fired] == [100]
    assert p_value(fired[0][2]) == pytest.approx(1 / 30, rel=5e-3)


# -- seed -------------------------------------------------------------------------------------


def _null_mmd_p(seed: int) -> float:
    x = np.random.default_rng(5).normal(0, 1, 100)  # no drift: an intermediate p-value
    t = DataDrift(columns=["x"], metric="mmd", threshold=1.0, window=50, every=50,
                  n_permutations=50, seed=seed)
    fired = run(t, x)
    assert [p for p, _, _ in fired] == [100]
    return p_value(fired[0][2])


def test_seed_drives_the_permutations() -> None:
    """The permutation p-value of the same windows repeats exactly with the same seed and
    differs with another seed (seed 0: 0.725, seed 1: 0.686)."""
    assert _null_mmd_p(0) == _null_mmd_p(0) == pytest.approx(0.725, abs=5e-4)
    assert _null_mmd_p(1) == _null_mmd_p(1) == pytest.approx(0.686, abs=5e-4)


def test_seed_drives_the_subsample() -> None:
    """Windows of 100 rows capped at 20: the subsample, hence the KS statistic, repeats with the
    same seed and differs with another (seed 0: 0.55, seed 1: 0.5)."""
    assert _ks_statistic(20, seed=0) == _ks_statistic(20, seed=0) == pytest.approx(0.55, abs=1e-12)
    assert _ks_statistic(20, seed=1) == _ks_statistic(20, seed=1) == pytest.approx(0.5, abs=1e-12)
    # without subsampling the seed does not matter for KS
    assert _ks_statistic(100, seed=0) == _ks_statistic(100, seed=1)
