"""Pipelines: when to train (triggers) x what to train on (selection) x how to update the model.

A pipeline replays a time-ordered data set into a store (replay mode, :class:`Runner`) or
follows a store another process writes (online mode, :class:`OnlineRunner`); grids of pipelines
run as benchmarks (:func:`run_grid`). Definitions come from Python or YAML files validated by
:func:`parse_pipeline` / :func:`parse_grid`.

Example
-------
>>> from modyn_store.app.pipeline import parse_pipeline
>>> parse_pipeline({"name": "p", "source": {"dataset": "elec2"}, "model": {"name": "logreg"},
...                 "trigger": {"name": "time", "every": "7d"}}).update
{'name': 'finetune', 'base': None, 'scope': None}
"""

from modyn_store.app.pipeline.bench import BenchResult, Grid, load_definition, parse_grid, run_grid, scenario_names
from modyn_store.app.pipeline.config import PipelineConfig, parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.loop import PipelineLoop, TrainingInfo
from modyn_store.app.pipeline.online import OnlineRunner
from modyn_store.app.pipeline.runner import RunEvent, RunResult, Runner, run_pipeline

__all__ = [
    "BenchResult",
    "Grid",
    "OnlineRunner",
    "PipelineConfig",
    "PipelineConfigError",
    "PipelineLoop",
    "RunEvent",
    "RunResult",
    "Runner",
    "TrainingInfo",
    "load_definition",
    "parse_grid",
    "parse_pipeline",
    "run_grid",
    "run_pipeline",
    "scenario_names",
]
