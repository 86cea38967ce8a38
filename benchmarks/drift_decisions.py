"""How often each drift decision rule fires on real streams, and what it buys, next to an amount trigger.

For Elec2 and NOAA weather (the shipped scenarios' source, model and training settings; selection
``new_data``, update ``finetune``), one pipeline per trigger: the shipped MMD permutation test
(100 permutations, p < 0.01), a permutation test that can resolve its threshold (1,000
permutations, p < 0.001), KS (analytic p < 0.01), MMD against the 95% quantile of its last 20
statistics, the mean-shift statistic above 0.5 reference standard deviations, a data-amount
trigger at the same cadence as the drift checks, and one training only. For each: evaluations,
firings, the share of evaluations that fired, the firing p-values / statistics, trainings, samples
trained and mean accuracy of the model in service over 20 event-time slices.

Run (writes docs/results/drift_decisions.md)::

    flock /tmp/modyn-heavy.lock python benchmarks/drift_decisions.py --data /work/shared/data \
        --out docs/results/drift_decisions.md

A quick run on the first 4,000 rows of Elec2 (``--limit``: the first rows of each stream)::

    python benchmarks/drift_decisions.py --data /work/shared/data --datasets elec2 --limit 4000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WINDOWS = {"elec2": 1000, "noaa_weather": 730}


def _triggers(window: int) -> dict[str, dict[str, Any]]:
    drift = {"name": "data_drift", "columns": ["features"], "window": window, "every": window}
    return {
        "mmd p<0.01, 100 perms (shipped)": {**drift, "metric": "mmd", "n_permutations": 100, "threshold": 0.01},
        "mmd p<0.001, 1000 perms": {**drift, "metric": "mmd", "n_permutations": 1000, "threshold": 0.001},
        "ks p<0.01": {**drift, "metric": "ks", "threshold": 0.01},
        "mmd > q95 of last 20": {**drift, "metric": "mmd", "decision": "quantile", "quantile": 0.95,
                                 "history": 20, "warmup": 5},
        "mean_shift > 0.5 sd": {**drift, "metric": "mean_shift", "decision": "threshold", "threshold": 0.5},
        f"amount every {window}": {"name": "data_amount", "every": window},
        "train once": {"name": "data_amount", "every": window},
    }


def run(dataset: str, data_dir: str, limit: int | None = None) -> list[dict[str, Any]]:
    from modyn_store.app.pipeline import load_definition, parse_pipeline
    from modyn_store.app.pipeline.runner import Runner
    from modyn_store.app.report.build import summarize
    from modyn_store.core.trainings import Catalog

    base = dict(load_definition(dataset).data["base"])
    if limit:  # only the first rows of the stream (a quick run)
        base["source"] = {**base["source"], "limit": limit}
    rows = []
    for label, trig in _triggers(WINDOWS[dataset]).items():
        cfg = {**base, "name": "drift", "trigger": trig, "selection": {"name": "new_data"},
               "update": {"name": "finetune"}}
        if label == "train once":
            cfg["limits"] = {"max_trainings": 1}
            cfg["selection"] = {"name": "all_data"}
        config = parse_pipeline(cfg)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            runner = Runner(config, str(Path(tmp) / "s"), data_dir=data_dir)
            for _ in runner.run():
                pass
            assert runner.result is not None and runner.loop is not None
            res = runner.result
            cat = Catalog(runner.loop.store)
            stats = [cat.get(t.training_id).trigger.get("statistic") for t in res.trainings]
        summary = summarize([res.result])[0]
        evals = getattr(runner.loop.trigger, "n_evaluations", None)
        fired = len(res.trainings) + len(runner.loop.skipped)
        finite = [float(s) for s in stats if isinstance(s, (int, float)) and np.isfinite(s)]
        rows.append({
            "dataset": dataset, "trigger": label, "evaluations": evals, "firings": fired,
            "share": (fired / evals) if evals else None, "trainings": len(res.trainings),
            "samples": summary.samples_trained, "mean_accuracy": summary.mean_metric,
            "stat_min": min(finite) if finite else None, "stat_median": float(np.median(finite)) if finite else None,
            "seconds": time.perf_counter() - t0,
        })
        print(rows[-1], flush=True)
    return rows


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| data set | trigger | drift checks | firings | fired / checks | trainings | samples trained | "
            "firing statistic (min / median) | mean accuracy |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['dataset']} | {r['trigger']} | {_fmt(r['evaluations'])} | {r['firings']} | "
        f"{_fmt(r['share'], 2)} | {r['trainings']} | {r['samples']} | "
        f"{_fmt(r['stat_min'])} / {_fmt(r['stat_median'])} | {r['mean_accuracy']:.4f} |\n"
        for r in rows)
    return head + body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--datasets", nargs="*", default=list(WINDOWS))
    ap.add_argument("--limit", type=int, default=None, help="only the first LIMIT rows of each stream")
    args = ap.parse_args()
    rows = [r for d in args.datasets for r in run(d, args.data, args.limit)]
    table = markdown(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
