"""Cost of identical pipelines by position in a grid: deterministic units and wall seconds.

Runs a grid of N identical pipelines (Elec2, 20,000 rows, monthly versions, loss-based
selection with scoring, an MLP) ``--repeats`` times and prints, per position, the samples
trained, forward passes, rows scanned (equal at every position) and the wall seconds of the
pipeline (the best of the repeats, so load noise shrinks while a position effect would stay).

    python benchmarks/grid_positions.py --pipelines 4 --repeats 2
"""

from __future__ import annotations

import argparse
import tempfile

from modyn_store.app.pipeline import parse_grid, run_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    base = {"source": {"dataset": "elec2", "limit": 20000, "chunk": "28d"}, "model": {"name": "mlp", "params": {"hidden": [64, 64]}},
            "trigger": {"name": "time", "every": "28d"}, "selection": {"name": "loss", "ratio": 0.5},
            "update": {"name": "finetune"}, "training": {"epochs": 3, "batch_size": 64, "lr": 0.01},
            "evaluation": {"slices": 4}}
    grid = parse_grid({"title": "positions", "base": base, "pipelines": [{"name": f"p{i}"} for i in range(args.pipelines)]})
    walls: list[list[float]] = []
    costs = None
    for _ in range(args.repeats):
        d = tempfile.mkdtemp()
        res = run_grid(grid, d + "/report", store_dir=d + "/stores")
        walls.append([sum(t.wall_seconds for t in r.trainings) for r in res.runs])
        costs = [(sum(t.samples for t in r.trainings), sum(t.forward_passes for t in r.trainings),
                  sum(t.rows_scanned for t in r.trainings)) for r in res.runs]
    assert costs is not None
    best = [min(w) for w in zip(*walls)]
    print("| position | samples trained | forward passes | rows scanned | wall s (best of runs) | all runs |")
    print("|---:|---:|---:|---:|---:|---|")
    for i, (c, b) in enumerate(zip(costs, best)):
        print(f"| {i} | {c[0]} | {c[1]} | {c[2]} | {b:.2f} | {', '.join(f'{w[i]:.2f}' for w in walls)} |")
    print(f"max/min wall: {max(best) / min(best):.2f}")


if __name__ == "__main__":
    main()
