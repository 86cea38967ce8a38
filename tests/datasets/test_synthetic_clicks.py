"""The synthetic click log: determinism, time order, drift, bounded batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from modyn_store.app.datasets.synthetic import ClickLogConfig, click_schema, synthetic_clicks
from modyn_store.core.errors import InvalidArgumentError


def _table(**kw: object) -> pa.Table:
    return pa.Table.from_batches(synthetic_clicks(**kw))  # type: ignore[arg-type]


def test_deterministic_and_seed_dependent() -> None:
    a = _table(n_rows=20_000, n_days=5, seed=11)
    b = _table(n_rows=20_000, n_days=5, seed=11)
    c = _table(n_rows=20_000, n_days=5, seed=12)
    assert a.equals(b)
    assert not a.column("label").equals(c.column("label"))
    assert not a.column("c1").equals(c.column("c1"))


def test_schema_order_and_batches() -> None:
    cfg = ClickLogConfig(n_rows=10_007, n_days=3, block_rows=1_000, ts_unit="s", seed=2)
    batches = list(synthetic_clicks(cfg))
    assert all(b.schema == click_schema("s") for b in batches)
    assert max(b.num_rows for b in batches) <= 1_000
    t = pa.Table.from_batches(batches)
    assert t.num_rows == 10_007
    assert np.array_equal(t.column("key").to_numpy(), np.arange(10_007))
    ts = t.column("ts").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(ts) >= 0)
    days = (ts - ts[0]) // 86_400
    assert np.bincount(days).tolist() == [3_336, 3_336, 3_335]
    assert all(t.column(c).null_count == 0 for c in t.column_names)
    dense = np.stack([t.column(f"i{k}").to_numpy() for k in range(1, 14)])
    assert dense.min() >= 0
    assert t.column("c26").to_numpy().min() >= 0
    assert set(np.unique(t.column("label").to_numpy())) <= {0, 1}


def test_day_ranges_reproduce_the_full_stream() -> None:
    cfg = ClickLogConfig(n_rows=9_000, n_days=6, block_rows=700, seed=4)
    full = pa.Table.from_batches(synthetic_clicks(cfg))
    part = pa.Table.from_batches(synthetic_clicks(cfg, days=range(2, 4)))
    days = full.column("ts").to_numpy()
    expected = full.filter(pa.array((days >= 2) & (days < 4)))
    assert part.equals(expected)
    with pytest.raises(InvalidArgumentError, match="days"):
        synthetic_clicks(cfg, days=range(5, 8))


def _rate_z(t: pa.Table, early: range, late: range) -> float:
    day = t.column("ts").to_numpy()
    lab = t.column("label").to_numpy()
    a, b = lab[np.isin(day, early)], lab[np.isin(day, late)]
    p = np.concatenate([a, b]).mean()
    return float((b.mean() - a.mean()) / np.sqrt(p * (1 - p) * (1 / a.size + 1 / b.size)))


def test_click_rate_drifts_between_early_and_late_days() -> None:
    drifting = _table(n_rows=60_000, n_days=10, seed=0)
    stationary = _table(n_rows=60_000, n_days=10, seed=0, drift=0.0)
    assert abs(_rate_z(drifting, range(0, 3), range(7, 10))) > 6.0
    assert abs(_rate_z(stationary, range(0, 3), range(7, 10))) < 4.0


def test_categorical_popularity_shifts() -> None:
    def top_ids(t: pa.Table, day: int) -> set[int]:
        ids = t.column("c3").to_numpy()[t.column("ts").to_numpy() == day]
        values, counts = np.unique(ids, return_counts=True)
        return set(values[np.argsort(-counts)[:20]].tolist())

    drifting = _table(n_rows=40_000, n_days=8, cardinality=1_000, popularity_shift=0.1, seed=1)
    stationary = _table(n_rows=40_000, n_days=8, cardinality=1_000, drift=0.0, seed=1)
    assert len(top_ids(drifting, 0) & top_ids(drifting, 7)) <= 5
    assert len(top_ids(stationary, 0) & top_ids(stationary, 7)) >= 12


def test_large_scale_is_lazy_and_config_is_validated() -> None:
    first = next(iter(synthetic_clicks(n_rows=10**9, n_days=24, block_rows=4_096)))
    assert first.num_rows == 4_096 and first.column("key").to_pylist()[:2] == [0, 1]
    with pytest.raises(InvalidArgumentError, match="n_rows"):
        ClickLogConfig(n_rows=0)
    with pytest.raises(InvalidArgumentError, match="base_ctr"):
        ClickLogConfig(base_ctr=1.5)
    with pytest.raises(InvalidArgumentError, match="n_row"):
        synthetic_clicks(n_row=5)


@pytest.mark.slow
def test_million_rows_stream_in_bounded_batches() -> None:
    cfg = ClickLogConfig(n_rows=1_000_000, n_days=24, seed=9)
    expected_key = 0
    rates = []
    for batch in synthetic_clicks(cfg):
        assert batch.num_rows <= cfg.block_rows
        keys = batch.column("key").to_numpy()
        assert keys[0] == expected_key and np.all(np.diff(keys) == 1)
        expected_key = int(keys[-1]) + 1
        rates.append((int(batch.column("ts")[0].as_py()), batch.column("label").to_numpy().mean()))
    assert expected_key == cfg.n_rows
    first = np.mean([r for d, r in rates if d < 3])
    last = np.mean([r for d, r in rates if d >= 21])
    assert abs(last - first) > 0.02
