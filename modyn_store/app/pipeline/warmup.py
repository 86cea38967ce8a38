"""Pay one-time start-up (JIT compilation, library set-up, first reads) before anything is timed.

The first pipeline of a process used to carry the cost of compiling Numba kernels, initialising
torch and opening Lance for the first time (2.7 s against 0.085 s for the same training), so
wall seconds depended on the run order. :func:`warm_up` runs a pipeline's whole path once on a
small sample of its stream, in a throw-away store: delta reads, its trigger (combined with a
data-amount trigger so that it surely fires), selection with scoring, training (retrain and
fine-tune), and evaluation. Nothing is recorded in the user's store. What it warms is process-wide,
so each distinct configuration is warmed once per process.

Example
-------
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> from modyn_store.app.pipeline.source import load_source, model_params
>>> from modyn_store.app.pipeline.warmup import warm_up
>>> cfg = parse_pipeline({"name": "doc", "source": {"dataset": "elec2", "limit": 500},
...     "model": {"name": "logreg"}, "trigger": {"name": "time", "every": "7d"}})
>>> t = load_source(cfg.source)
>>> warm_up(cfg, t, model_params(cfg, t))
True
>>> warm_up(cfg, t, model_params(cfg, t))  # already warm in this process
False
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.config import EvaluationConfig, LimitsConfig, PipelineConfig

__all__ = ["WARM_ROWS", "warm_up"]

WARM_ROWS = 2048
_WARM: set[str] = set()


def _key(config: PipelineConfig) -> str:
    d = config.to_dict()
    return json.dumps({k: d.get(k) for k in ("model", "trigger", "selection", "update", "training")}, sort_keys=True,
                      default=str)


def _fit_windows(trigger: dict[str, Any], rows: int) -> dict[str, Any]:
    """``trigger`` with the row windows of its drift tests (and of those it combines) cut to
    ``rows``, so that the sample runs each test (and compiles its kernels) at least once. An event-time
    window (``window_time``) becomes a row window: the sample may span less time than it."""
    out = dict(trigger)
    if out.get("name") == "data_drift":
        floor = int(out.get("min_samples", 10))
        if out.pop("window_time", None) is not None:  # a row window instead (its `window` is None)
            out["window"] = max(rows, floor)
        for k, default in (("window", 500), ("every", 500), ("warmup", 0)):
            if int(out.get(k, default)) > rows:
                out[k] = max(rows, floor) if k == "window" else rows
    if isinstance(out.get("triggers"), (list, tuple)):
        out["triggers"] = [_fit_windows(dict(t), rows) if isinstance(t, Mapping) else t for t in out["triggers"]]
    if isinstance(out.get("warmup_trigger"), Mapping):
        out["warmup_trigger"] = _fit_windows(dict(out["warmup_trigger"]), rows)
    return out


def warm_up(config: PipelineConfig, sample: pa.Table, params: Mapping[str, Any], *, force: bool = False) -> bool:
    """Run ``config`` once on the first :data:`WARM_ROWS` rows of ``sample`` in a temporary store.

    Returns ``False`` (and does nothing) when this process already warmed the same model,
    policies and training settings, unless ``force``.
    """
    from modyn_store.app.pipeline.loop import PipelineLoop
    from modyn_store.app.pipeline.source import prepare_store
    from modyn_store.app.pipeline.evaluate import evaluate_pipeline, threads
    from modyn_store.core.store import Store

    key = _key(config)
    if key in _WARM and not force:
        return False
    rows = sample.slice(0, WARM_ROWS)
    if "key" in rows.column_names:  # fresh keys: the sample may come from any part of a stream
        rows = rows.set_column(rows.column_names.index("key"), "key", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    if rows.num_rows < 4:
        return False
    every = max(1, rows.num_rows // 3)
    scaled = _fit_windows(dict(config.trigger), max(2, rows.num_rows // 4))
    trigger = {"name": "at_least", "n": 1, "triggers": [scaled, {"name": "data_amount", "every": every}]}
    # a `base` names a training of the user's store, which the temporary store does not hold
    update = {k: v for k, v in config.update.items() if k != "base"}
    cfg = replace(config, name="warm-up", trigger=trigger, deletions=None, update=update,
                  limits=LimitsConfig(max_trainings=2, min_train_rows=1),
                  evaluation=replace(config.evaluation, slices=2) if isinstance(config.evaluation, EvaluationConfig)
                  else config.evaluation)
    folder = tempfile.mkdtemp(prefix="modyn-store-warm-up-")
    try:
        store = Store.open(folder, create=True)
        prepare_store(store, rows)  # the source's label map, as in the real run
        loop = PipelineLoop(cfg, store, model_params=params)
        bounds = np.linspace(0, rows.num_rows, 5).astype(int)
        with threads(cfg.training.threads):
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                start = store.version
                store.append(rows.slice(int(lo), int(hi - lo)), message="warm-up")
                for _ in loop.process(start, store.version):
                    pass
            evaluate_pipeline(store, cfg, loop.trainings, record=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _WARM.add(key)
    return True
