"""What a time trigger pays for a delta that passes many boundaries, float against integer times.

One delta of ``rows`` sorted event times, uniform over ``[0, span)``, fed to ``Time(every, start=0)``
(a fresh trigger per run, best of ``repeat``): as float64 times (each boundary is the float the
firing reports, ``start + k * every`` taken in decimals, and an event time fires it when at or
after it: :mod:`policies.time`), and the same times as int64 milliseconds with ``every`` in
milliseconds (whole steps, exact integer arithmetic): the floor a float delta could reach.

Run (see docs/PERFORMANCE.md, "Pipelines"); an earlier tree through ``PYTHONPATH`` gives its
figures with the same script::

    python benchmarks/time_boundaries.py --rows 2000000 --every 0.1 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from policies.base import TriggerInput  # noqa: E402
from policies.time import Time  # noqa: E402


def _best(ts: np.ndarray, every: float | int, repeat: int) -> tuple[float, int]:
    """Best seconds of ``repeat`` fresh triggers fed ``ts`` in one delta, and their firings."""
    keys = np.arange(ts.size)
    times, fired = [], 0
    for _ in range(repeat):
        trigger = Time(every=every, start=0)
        delta = TriggerInput(version=1, keys=keys, ts=ts)
        t = time.perf_counter()
        fired = len(trigger.fire(delta))
        times.append(time.perf_counter() - t)
    return min(times), fired


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--every", type=float, default=0.1, help="the interval, in event-time units")
    p.add_argument("--span", type=float, default=1000.0, help="event times lie in [0, span)")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    ts = np.sort(np.random.default_rng(0).uniform(0.0, a.span, a.rows))
    f_s, f_n = _best(ts, a.every, a.repeat)
    i_s, i_n = _best((ts * 1000).astype(np.int64), int(round(a.every * 1000)), a.repeat)
    print(f"{a.rows} rows, every {a.every:g} over [0, {a.span:g}), best of {a.repeat}")
    print(f"float64 times: {f_s * 1e3:9.1f} ms  {f_n} firings")
    print(f"int64 ms times: {i_s * 1e3:8.1f} ms  {i_n} firings")
    print(f"float / int: {f_s / i_s:.2f}")


if __name__ == "__main__":
    main()
