"""A seeded synthetic click log with drift, shaped like Criteo's: :func:`synthetic_clicks`.

Each row is one ad impression on day ``d`` (``0 .. n_days - 1``) with 13 dense count features
``i1 .. i13`` (int64 >= 0), 26 categorical features ``c1 .. c26`` (hashed int64 ids) and a click
``label``. The click model is logistic::

    logit = bias(d) + w(d) . z + sum_j score_j(c_j)

- ``z`` is the standardized ``log1p`` of the dense counts (standardized with the day's own
  log-mean, which drifts linearly over the days: covariate shift);
- ``bias(d)`` moves linearly from ``logit(base_ctr)`` to ``logit(base_ctr) + drift * ctr_shift``
  (the click rate changes from early to late days);
- ``w(d)`` interpolates between two random weight vectors with weight
  ``min(1, drift * d / (n_days-1))`` (concept drift);
- categorical values are drawn from a heavy-tailed (log-uniform, Zipf-like) popularity law whose
  ranking rotates by ``drift * popularity_shift`` of the vocabulary each day, so the popular ids
  change from day to day; each id has a fixed click score ``score_j`` in ``[-1, 1]``.

Rows are produced day by day, in blocks of at most ``block_rows`` rows, each block drawn from its
own generator seeded by ``(seed, day, block)``: the stream is deterministic for a given
configuration, memory stays bounded by one block, and ``key`` is the global row number.

Example
-------
>>> batches = list(synthetic_clicks(ClickLogConfig(n_rows=10_000, n_days=4, seed=1)))
>>> sum(b.num_rows for b in batches), batches[0].schema.names[:3]
(10000, ['key', 'ts', 'label'])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["ClickLogConfig", "click_schema", "synthetic_clicks"]

N_DENSE = 13
N_SPARSE = 26
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_EPOCH = 1_388_534_400  # 2014-01-01T00:00:00Z, the origin of ts_unit="s"


@dataclass(frozen=True)
class ClickLogConfig:
    """Parameters of :func:`synthetic_clicks`.

    Parameters
    ----------
    n_rows:
        Total rows, 1 .. 10**10 (spread evenly over the days, earlier days take the remainder).
    n_days:
        Number of days.
    cardinality:
        Vocabulary size of each categorical feature.
    base_ctr:
        Click rate of day 0 at average features (before the categorical scores).
    drift:
        Strength of all drifts (0: a stationary stream).
    ctr_shift:
        Change of the logit bias from the first to the last day, at ``drift=1``.
    popularity_shift:
        Share of the vocabulary the popularity ranking rotates by per day, at ``drift=1``.
    ts_unit:
        ``"day"``: ``ts`` is the int64 day index; ``"s"``: ``ts`` is ``timestamp[s]`` from
        2014-01-01, rows evenly spaced within their day.
    block_rows:
        Rows per generated batch (the memory bound).
    seed:
        Seed of everything.
    """

    n_rows: int = 100_000
    n_days: int = 24
    cardinality: int = 100_000
    base_ctr: float = 0.1
    drift: float = 1.0
    ctr_shift: float = 1.0
    popularity_shift: float = 0.05
    ts_unit: Literal["day", "s"] = "day"
    block_rows: int = 65_536
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("n_rows", isinstance(self.n_rows, int) and 1 <= self.n_rows <= 10**10, "an integer in [1, 10**10]"),
            ("n_days", isinstance(self.n_days, int) and self.n_days >= 1, "an integer >= 1"),
            ("cardinality", isinstance(self.cardinality, int) and self.cardinality >= 2, "an integer >= 2"),
            ("base_ctr", 0.0 < self.base_ctr < 1.0, "a probability in (0, 1)"),
            ("drift", self.drift >= 0.0, "a number >= 0"),
            ("popularity_shift", 0.0 <= self.popularity_shift <= 1.0, "a share in [0, 1]"),
            ("ts_unit", self.ts_unit in ("day", "s"), "one of 'day', 's'"),
            ("block_rows", isinstance(self.block_rows, int) and self.block_rows >= 1, "an integer >= 1"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "an integer >= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidArgumentError(name, getattr(self, name), expected)


def click_schema(ts_unit: Literal["day", "s"] = "day") -> pa.Schema:
    """The schema of the synthetic stream (and of the Criteo loader): key, ts, label, i*, c*."""
    ts_type = pa.int64() if ts_unit == "day" else pa.timestamp("s")
    fields = [pa.field("key", pa.int64()), pa.field("ts", ts_type), pa.field("label", pa.int64())]
    fields += [pa.field(f"i{k + 1}", pa.int64()) for k in range(N_DENSE)]
    fields += [pa.field(f"c{k + 1}", pa.int64()) for k in range(N_SPARSE)]
    return pa.schema(fields)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorized splitmix64 finalizer over uint64 arrays (wrapping arithmetic)."""
    z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return z ^ (z >> np.uint64(31))


def _model(cfg: ClickLogConfig) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, 0xC11C])
    return {
        "mu0": rng.uniform(0.5, 3.0, N_DENSE),
        "mu_shift": rng.normal(0.0, 0.7, N_DENSE),
        "sigma": rng.uniform(0.5, 1.2, N_DENSE),
        "w0": rng.normal(0.0, 0.35, N_DENSE),
        "w1": rng.normal(0.0, 0.35, N_DENSE),
        "sparse_weight": rng.uniform(0.1, 0.4, N_SPARSE),
    }


def _rows_per_day(cfg: ClickLogConfig) -> list[int]:
    q, r = divmod(cfg.n_rows, cfg.n_days)
    return [q + (1 if d < r else 0) for d in range(cfg.n_days)]


def _block(cfg: ClickLogConfig, model: dict[str, np.ndarray], day: int, start: int, n: int, n_day: int, key0: int) -> pa.RecordBatch:
    rng = np.random.default_rng([cfg.seed, day, start])
    frac = day / max(1, cfg.n_days - 1)
    strength = min(1.0, cfg.drift * frac)
    mu = (model["mu0"] + cfg.drift * frac * model["mu_shift"])[:, None]
    sigma = model["sigma"][:, None]
    # column-major blocks: one contiguous row per feature
    z = rng.standard_normal((N_DENSE, n))
    dense = np.floor(np.expm1(np.clip(mu + sigma * z, 0.0, 20.0))).astype(np.int64)
    w = (1.0 - strength) * model["w0"] + strength * model["w1"]
    logit = math.log(cfg.base_ctr / (1 - cfg.base_ctr)) + cfg.drift * cfg.ctr_shift * frac + w @ z
    v = cfg.cardinality
    u = rng.random((N_SPARSE, n))
    rank = np.minimum(np.exp(u * math.log(v + 1.0)) - 1.0, v - 1).astype(np.uint64)
    shift = np.uint64(int(round(cfg.drift * cfg.popularity_shift * v * day)) % v)
    value = (rank + shift) % np.uint64(v)
    offset = np.arange(N_SPARSE, dtype=np.uint64)[:, None] * np.uint64(v) + np.uint64(cfg.seed) * np.uint64(0x100000001B3)
    hashed = _splitmix64(value + offset)
    score = (hashed & np.uint64((1 << 53) - 1)).astype(np.float64) * (2.0 / 2.0**53) - 1.0
    logit += model["sparse_weight"] @ score
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    ids = (hashed >> np.uint64(1)).astype(np.int64)  # non-negative hashed ids, fixed per value
    key = np.arange(key0, key0 + n, dtype=np.int64)
    if cfg.ts_unit == "day":
        ts: pa.Array = pa.array(np.full(n, day, dtype=np.int64))
    else:
        within = (np.arange(start, start + n, dtype=np.int64) * 86_400) // max(1, n_day)
        ts = pa.array(_EPOCH + day * 86_400 + within, type=pa.int64()).cast(pa.timestamp("s"))
    arrays = [pa.array(key), ts, pa.array(label)]
    arrays += [pa.array(dense[k]) for k in range(N_DENSE)]
    arrays += [pa.array(ids[k]) for k in range(N_SPARSE)]
    return pa.RecordBatch.from_arrays(arrays, schema=click_schema(cfg.ts_unit))


def synthetic_clicks(
    config: ClickLogConfig | None = None, *, days: range | None = None, **overrides: object
) -> Iterator[pa.RecordBatch]:
    """Stream the synthetic click log as record batches in time order (see the module docstring).

    Parameters
    ----------
    config:
        The configuration (defaults: :class:`ClickLogConfig`).
    days:
        Generate only these days (a ``range`` within ``0 .. n_days - 1``), with the same rows
        and keys as in the full stream: days are independent, so separate processes can
        generate disjoint day ranges of a very large stream in parallel.
    **overrides:
        Fields of :class:`ClickLogConfig` to override, e.g. ``n_rows=10**6``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.Table.from_batches(synthetic_clicks(n_rows=2_000, n_days=2, seed=3))
    >>> t.num_rows, t.column("ts").to_pylist()[0], t.column("ts").to_pylist()[-1]
    (2000, 0, 1)
    """
    base = config if config is not None else ClickLogConfig()
    if overrides:
        fields = set(ClickLogConfig.__dataclass_fields__)
        for name, value in overrides.items():
            if name not in fields:
                raise InvalidArgumentError(name, value, f"a field of ClickLogConfig: one of {', '.join(sorted(fields))}")
        base = ClickLogConfig(**{**{f: getattr(base, f) for f in fields}, **overrides})  # type: ignore[arg-type]
    if days is None:
        days = range(base.n_days)
    if not isinstance(days, range) or days.step != 1 or (len(days) and not (0 <= days.start and days.stop <= base.n_days)):
        raise InvalidArgumentError("days", days, f"a range with step 1 within range(0, {base.n_days})")
    return _stream(base, days)


def _stream(cfg: ClickLogConfig, days: range) -> Iterator[pa.RecordBatch]:
    model = _model(cfg)
    per_day = _rows_per_day(cfg)
    key0 = sum(per_day[: days.start]) if len(days) else 0
    for day in days:
        n_day = per_day[day]
        for start in range(0, n_day, cfg.block_rows):
            n = min(cfg.block_rows, n_day - start)
            yield _block(cfg, model, day, start, n, n_day, key0)
            key0 += n
