"""The scenario part of ``modyn-store demo``: a small grid on the bundled Elec2 stream.

Four pipelines on the same weekly-versioned store: train once and never again, fine-tune on
the new data every eight weeks, retrain on all data every eight weeks, and fine-tune when MMD
drift is detected. It prints the results table and writes the report (PNGs, Markdown, HTML).

Example
-------
>>> from modyn_store.app.pipeline.demo_grid import demo_grid
>>> [p.name for p in demo_grid(quick=True).pipelines]
['no-retrain', 'finetune-new', 'retrain-all']
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modyn_store.app._fmt import Progress, format_table
from modyn_store.app.pipeline.bench import BenchResult, Grid, parse_grid, run_grid
from modyn_store.app.pipeline.runner import RunEvent

__all__ = ["demo_grid", "results_legend", "results_table", "run_scenario_demo"]

EVERY = "56d"


def demo_grid(*, quick: bool = False) -> Grid:
    """The demo's grid (``quick``: three pipelines, fewer slices)."""
    base: dict[str, Any] = {
        "source": {"dataset": "elec2", "chunk": "14d"},
        "model": {"name": "mlp", "params": {"hidden": [32]}},
        "training": {"epochs": 2, "batch_size": 128, "optimizer": "adam", "lr": 0.003, "threads": 1},
        "evaluation": {"slices": 10 if quick else 16},
    }
    time_trigger = {"name": "time", "every": EVERY}
    pipelines = [
        {"name": "no-retrain", "trigger": time_trigger, "selection": {"name": "all_data"},
         "update": {"name": "retrain"}, "limits": {"max_trainings": 1}},
        {"name": "finetune-new", "trigger": time_trigger, "selection": {"name": "new_data"},
         "update": {"name": "finetune"}},
        {"name": "retrain-all", "trigger": time_trigger, "selection": {"name": "all_data"},
         "update": {"name": "retrain"}},
    ]
    if not quick:
        pipelines.append({"name": "drift-finetune",
                          "trigger": {"name": "data_drift", "columns": ["features"], "metric": "mmd", "window": 1000,
                                      "every": 1000, "n_permutations": 100, "threshold": 0.01},
                          "selection": {"name": "new_data"}, "update": {"name": "finetune"}})
    return parse_grid({"title": "Elec2 demo: never retrain vs fine-tune vs retrain vs drift-triggered",
                       "description": "Bundled Elec2, one store version per two weeks; models every 8 weeks "
                                      "(or on MMD drift); accuracy on equal event-time slices.",
                       "base": base, "pipelines": pipelines})


def results_table(result: BenchResult) -> str:
    """The results table of a grid run (triggers, samples, seconds, mean and final metric)."""
    from modyn_store.app.report.build import summarize

    rows = []
    for s, run in zip(summarize([r.result for r in result.runs]), result.runs):
        rows.append({
            "pipeline": s.name, "trigger": s.trigger, "selection": s.selection, "update": s.update,
            "trainings": s.n_triggers, "samples trained": s.samples_trained,
            "train s": round(s.train_seconds, 2), f"mean {run.result.metric}": s.mean_metric,
            f"final {run.result.metric}": s.final_metric, "pareto": "*" if s.pareto else "",
        })
    return format_table(rows)


def results_legend(result: BenchResult) -> str:
    """What each column of :func:`results_table` measures, in the units it prints."""
    metric = result.runs[0].result.metric if result.runs else "accuracy"
    better = "higher" if not result.runs or result.runs[0].result.higher_is_better else "lower"
    slices = result.grid.pipelines[0].evaluation.slices if result.grid.pipelines else 0
    return "\n".join([
        "   trainings: models trained; samples trained: rows trained on, summed over epochs and trainings;",
        "   train s: seconds in the optimization loops (wall seconds of everything: report.md);",
        f"   mean {metric}: of the model in service on each of the {slices} equal event-time slices after the",
        f"   first training, averaged; final {metric}: on the last slice; pareto *: no other pipeline beats it",
        f"   on both cost (samples trained + scoring forward passes, lower) and mean {metric} ({better}).",
    ])


def run_scenario_demo(store_dir: Path, out_dir: Path, *, quick: bool) -> BenchResult:
    """Run the demo grid on a store under ``store_dir``; write the report into ``out_dir``."""
    grid = demo_grid(quick=quick)
    print(f"\n== 5. pipelines on Elec2: {len(grid.pipelines)} pipelines, report in {out_dir}")
    bars: dict[str, Progress] = {}
    t0 = time.perf_counter()

    def on_event(name: str, ev: RunEvent) -> None:
        bar = bars.get(name)
        if bar is None:
            bar = bars[name] = Progress(ev.total, f"{name:>15}")
        if ev.kind == "ingest":
            bar.update(1, ev.message)
        elif ev.kind == "done":
            bar.close()

    result = run_grid(grid, out_dir, store_dir=store_dir, on_event=on_event,
                      command=f"modyn-store demo{' --quick' if quick else ''}")
    print(results_table(result))
    print(results_legend(result))
    print(f"\n   pipelines run in {time.perf_counter() - t0:.1f} s (warm-up included); "
          f"report: {Path(out_dir) / 'report.md'}")
    print(f"   plots: {Path(out_dir) / 'metric_over_time.png'}, {Path(out_dir) / 'cost_vs_metric.png'}, "
          f"heatmap_*.png")
    return result
