"""Do RHO-LOSS and batch-then-sample downsampling keep their papers' promise on shipped streams?

RHO-LOSS (Mindermann et al., 2022) claims that training on the points of largest reducible
holdout loss reaches a given accuracy with fewer trained samples than uniform selection;
loss-based batch-then-sample downsampling (as in the predecessor platform, after Katharopoulos &
Fleuret, 2018, and Jiang et al., 2019) claims that training on the highest-loss share of each
batch beats training on a uniform share of the same size. Here, on Elec2 and NOAA weather (the
shipped scenarios' model and training settings; a training every 56 days / 3 years, retraining
from scratch on all data so far, downsampled to 30%), each strategy's mean accuracy of the model
in service over 20 event-time slices, next to training on everything and on a uniform 30%, at
equal trained samples.

Run (writes docs/results/selection_claims.md)::

    flock /tmp/modyn-heavy.lock python benchmarks/selection_claims.py --data /work/shared/data \
        --out docs/results/selection_claims.md

A quick run on the first 4,000 rows of Elec2 (``--limit``: the first rows of each stream)::

    python benchmarks/selection_claims.py --data /work/shared/data --datasets elec2 --limit 4000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

EVERY: dict[str, Any] = {"elec2": "56d", "noaa_weather": 1095}
STRATEGIES: dict[str, dict[str, Any]] = {
    "all data (no downsampling)": {"name": "all_data"},
    "uniform 30%": {"name": "uniform", "ratio": 0.3},
    "loss top 30% (sample then batch)": {"name": "loss", "ratio": 0.3},
    "RHO-LOSS top 30% (holdout 10%)": {"name": "rho_loss", "ratio": 0.3, "holdout_ratio": 0.1},
    "RHO-LOSS 30% of each batch (holdout 10%)": {"name": "rho_loss", "ratio": 0.3, "holdout_ratio": 0.1,
                                                 "mode": "batch_then_sample"},
    "loss 30% of each batch (batch then sample)": {"name": "loss", "ratio": 0.3, "mode": "batch_then_sample"},
    "loss importance 30% of each batch": {"name": "loss", "ratio": 0.3, "mode": "batch_then_sample",
                                          "method": "importance"},
}


def run(dataset: str, data_dir: str, limit: int | None = None) -> list[dict[str, Any]]:
    from modyn_store.app.pipeline import load_definition, parse_pipeline, run_pipeline
    from modyn_store.app.report.build import summarize

    base = dict(load_definition(dataset).data["base"])
    if limit:  # only the first rows of the stream (a quick run)
        base["source"] = {**base["source"], "limit": limit}
    trigger = {"name": "time", "every": EVERY[dataset]}
    rows = []
    for label, sel in STRATEGIES.items():
        cfg = parse_pipeline({**base, "name": "claims", "trigger": trigger, "selection": sel,
                              "update": {"name": "retrain"}})
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            res = run_pipeline(cfg, str(Path(tmp) / "s"), data_dir=data_dir)
        s = summarize([res.result])[0]
        rows.append({"dataset": dataset, "strategy": label, "trainings": s.n_triggers,
                     "samples": s.samples_trained, "mean": s.mean_metric, "final": s.final_metric,
                     "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    out = ("| data set | strategy | trainings | samples trained | mean accuracy | final accuracy |\n"
           "|---|---|---|---|---|---|\n")
    for r in rows:
        out += (f"| {r['dataset']} | {r['strategy']} | {r['trainings']} | {r['samples']} | "
                f"{r['mean']:.4f} | {r['final']:.4f} |\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--datasets", nargs="*", default=list(EVERY))
    ap.add_argument("--limit", type=int, default=None, help="only the first LIMIT rows of each stream")
    args = ap.parse_args()
    rows = [r for d in args.datasets for r in run(d, args.data, args.limit)]
    table = markdown(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
