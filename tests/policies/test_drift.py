"""``DataDrift``: hand-computed positions on step streams; real drift on Elec2 vs a shuffled copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from policy_testkit import ThresholdModel

from policies import DataAmount, DataDrift, TriggerInput

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ELEC2_COLUMNS = ["nswdemand", "vicdemand", "transfer"]


def step_stream(n: int = 1000, at: int = 600, shift: float = 3.0, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, 0.1, n)
    x[at:] += shift
    return x


def run(trigger: DataDrift, x: np.ndarray, sizes: list[int], ts: np.ndarray | None = None,
        model: object = None) -> list[int]:
    """Feed ``x`` in deltas of ``sizes``; return the global end of each firing."""
    out, k = [], 0
    ts = np.arange(x.size) if ts is None else ts
    for v, n in enumerate(sizes, start=1):
        d = TriggerInput(version=v, keys=np.arange(k, k + n), ts=ts[k:k + n],
                         features={"x": x[k:k + n]})
        out += [k + f.position for f in trigger.fire(d, model)]
        k += n
    return out


def test_non_overlapping_count_windows() -> None:
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=5.0,
                  window=100, every=100)
    # reference = rows 0-99; evaluations at 200, 300, 400 (current = rows 300-399, shifted)
    assert run(t, step_stream(at=300), [250, 250, 500]) == [400]
    assert t.n_evaluations == 9


def test_missing_values_are_left_out() -> None:
    x = step_stream(at=300)
    x[::7] = np.nan
    t = DataDrift(columns=["x"], metric="ks", window=100, every=100)
    clean = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=5.0,
                      window=100, every=100)
    assert 400 in run(t, x, [1000])
    assert run(clean, x, [1000]) == [400]
    assert t.n_evaluations == clean.n_evaluations == 9


def test_an_overlapping_window_half_past_a_step_fires() -> None:
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=10.0,
                  window=100, every=50, overlap=True)
    # evaluations at 150, 200, ...; at 350 the window 250-349 is half shifted: 1.5 / 0.1 = 15 sd
    assert run(t, step_stream(at=300), [333, 333, 334]) == [350]


def test_event_time_windows() -> None:
    x = step_stream(at=300)
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=5.0,
                  window_time=200, every=100)
    # ts = 2 * index: 200 units of event time = 100 rows, so the same firing as by count
    assert run(t, x, [400, 600], ts=2 * np.arange(x.size)) == [400]


def test_warmup_trigger_then_drift() -> None:
    t = DataDrift(columns=["x"], metric="mean_shift", decision="threshold", threshold=5.0,
                  window=100, every=100, warmup=3, warmup_trigger=DataAmount(every=150))
    # warm-up ends with the 3rd evaluation at 400: the amount trigger's 150 and 300 count,
    # 450 does not; the step at 600 is detected at 700
    fired = run(t, step_stream(at=600), [120, 480, 400])
    assert fired == [150, 300, 700]


def periodic_stream(at: int, shift: float, n: int = 1000, period: int = 50) -> np.ndarray:
    """Every window of ``period`` rows is the same block, so the distance is exactly 0 ..."""
    x = np.tile(np.random.default_rng(1).normal(0, 1, period), n // period)
    x[at:] += shift  # ... until the shift
    return x


@pytest.mark.parametrize("decision", ["quantile", "rolling_average"])
def test_dynamic_decisions_fire_on_the_step_only(decision: str) -> None:
    # each decision with the option it reads: the quantile, or the margin over the mean
    own = {"quantile": 0.95} if decision == "quantile" else {"threshold": 0.1}
    t = DataDrift(columns=["x"], metric="wasserstein", decision=decision, **own, window=50, every=50, warmup=3)
    # evaluations at 100, 150, ...: distance 0 until the window 800-849 is shifted
    assert run(t, periodic_stream(at=800, shift=0.5), [1000]) == [850]
    t = DataDrift(columns=["x"], metric="wasserstein", decision=decision, **own, window=50, every=50, warmup=19)
    assert run(t, periodic_stream(at=800, shift=0.5), [1000]) == []  # 19 evaluations: warm-up


def test_embeddings_use_the_current_model() -> None:
    x = step_stream(at=300)
    t = DataDrift(columns=["x"], metric="ks", window=100, every=100, embeddings=True)
    assert t.requires == {"model"}
    assert run(t, x, [1000], model=None) == []  # no model: nothing to compare
    on_embeddings = run(t.clone(), x, [1000], model=ThresholdModel())
    raw = DataDrift(columns=["x"], metric="ks", window=100, every=100)
    assert on_embeddings == run(raw, x, [1000])  # the stub embeds x as itself
    assert 400 in on_embeddings


def _elec2(n: int) -> np.ndarray:
    path = DATA / "elec2.parquet"
    if not path.exists():
        pytest.skip(f"Elec2 not found at {path}")
    t = pq.read_table(path, columns=ELEC2_COLUMNS).slice(0, n)
    return np.column_stack([t.column(c).to_numpy() for c in ELEC2_COLUMNS])


def _feed_matrix(trigger: DataDrift, m: np.ndarray, chunk: int = 1000) -> int:
    fired = 0
    for v, start in enumerate(range(0, m.shape[0], chunk), start=1):
        part = m[start:start + chunk]
        d = TriggerInput(version=v, keys=np.arange(start, start + part.shape[0]),
                         ts=np.arange(start, start + part.shape[0]),
                         features={c: part[:, j] for j, c in enumerate(ELEC2_COLUMNS)})
        fired += len(trigger.fire(d))
    return fired


@pytest.mark.parametrize(("metric", "rows", "window", "seeds", "perms"), [
    ("ks", 12000, 400, 20, None),  # (KS has no permutations)
    ("mmd", 6000, 120, 2, 50),
    pytest.param("mmd", 12000, 150, 30, 200, marks=pytest.mark.slow),
])
def test_elec2_drifts_and_shuffled_copy_stays_at_alpha(metric: str, rows: int, window: int,
                                                       seeds: int, perms: int | None) -> None:
    """Elec2's demand and transfer drift over months; a shuffled copy is exchangeable, so every
    evaluation's p-value is valid and the firing rate must stay at ``alpha`` (3 sigma)."""
    m = _elec2(rows)
    alpha = 0.05
    cfg = {"columns": ELEC2_COLUMNS, "metric": metric, "threshold": alpha, "window": window,
           "every": window, **({"n_permutations": perms} if perms is not None else {})}
    real = DataDrift(**cfg)
    real_rate = _feed_matrix(real, m) / real.n_evaluations
    fired = evals = 0
    for seed in range(seeds):
        t = DataDrift(**{**cfg, "seed": seed})
        fired += _feed_matrix(t, np.random.default_rng(seed).permutation(m))
        evals += t.n_evaluations
    null_rate = fired / evals
    bound = alpha + 3 * np.sqrt(alpha * (1 - alpha) / evals)
    assert null_rate <= bound, (null_rate, bound, evals)
    assert real_rate >= 5 * alpha, real_rate  # the real stream fires far above the alarm level


@pytest.mark.parametrize("cfg", [
    {"metric": "ks", "window": 40, "every": 30},
    {"metric": "mean_shift", "decision": "rolling_average", "threshold": 0.5, "window": 50,
     "every": 20, "overlap": True, "warmup": 2, "warmup_trigger": {"name": "data_amount",
                                                                 "every": 33}},
    {"metric": "wasserstein", "decision": "threshold", "threshold": 0.5, "window_time": 60,
     "every": 25},
])
def test_firings_do_not_depend_on_how_the_stream_is_split(cfg: dict) -> None:
    x = step_stream(n=600, at=350, shift=1.0, seed=3)
    ts = np.arange(600) * 2
    whole = run(DataDrift(columns=["x"], **cfg), x, [600], ts=ts)
    rng = np.random.default_rng(0)
    for _ in range(5):
        cuts = np.sort(rng.choice(np.arange(1, 600), size=8, replace=False))
        sizes = np.diff(np.concatenate([[0], cuts, [600]])).tolist()
        assert run(DataDrift(columns=["x"], **cfg), x, sizes, ts=ts) == whole
    assert whole  # the step is detected


def test_a_permutation_count_that_cannot_resolve_the_threshold_is_refused() -> None:
    from modyn_store.core.errors import InvalidArgumentError
    from policies import DataDrift

    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], metric="mmd", threshold=0.01, n_permutations=99)  # min p = 0.01
    assert err.value.name == "n_permutations" and ">= 100" in err.value.expected
    with pytest.raises(InvalidArgumentError, match="n_permutations"):
        DataDrift(columns=["x"], metric="mmd", threshold=0.05, n_permutations=10)
    assert DataDrift(columns=["x"], metric="mmd", threshold=0.01, n_permutations=100).n_permutations == 100
    # statistic thresholds do not depend on permutations (analytic p-values do not read them at
    # all: a count other than the default with metric="ks" is refused, see test_ignored_options_refused.py)
    DataDrift(columns=["x"], metric="mmd", decision="quantile", n_permutations=1)


def test_a_permutation_count_beyond_the_count_bound_is_refused_on_construction() -> None:
    from modyn_store.core.errors import InvalidArgumentError
    from policies import DataDrift

    with pytest.raises(InvalidArgumentError) as err:
        DataDrift(columns=["x"], metric="mmd", n_permutations=2**70)
    assert err.value.name == "n_permutations" and "2**62" in err.value.expected


@pytest.mark.parametrize(("stats", "threshold", "fires"), [([0.7, 0.8], 0.1, False), ([0.7, 0.80001], 0.1, True),
                                                          ([0.2, 0.3, 0.55], 0.3, False), ([0.4, 1.0], 0.6, False)])
def test_drift_rolling_average_exactly_at_the_mean_plus_threshold_does_not_fire(
        monkeypatch: pytest.MonkeyPatch, stats: list[float], threshold: float, fires: bool) -> None:
    # 0.8 is the mean 0.7 plus 0.1 in decimals, not above it (float64 gives 0.7999999999999999)
    import policies.data_drift as data_drift

    given = iter(stats)
    monkeypatch.setattr(data_drift, "two_sample", lambda *a, **kw: (next(given), None))
    t = DataDrift(columns=["x"], metric="mean_shift", decision="rolling_average", threshold=threshold,
                  window=10, every=10, overlap=True)
    ends = run(t, np.arange(10.0 * (len(stats) + 1)), [10 * (len(stats) + 1)])
    assert ends == ([10 * (len(stats) + 1)] if fires else [])
