"""Read pipelines back from a store's catalog: their trainings and evaluation matrices.

Every training a pipeline records carries ``metrics["pipeline"]`` and ``metrics["trigger_index"]``;
every evaluation of a run is stored in the catalog's ``evaluations`` table. From these,
:func:`pipeline_results` rebuilds the report rows of every pipeline in a store, so ``modyn-store
report STORE`` needs nothing but the store.

Example
-------
>>> from modyn_store import Store
>>> from modyn_store.app.pipeline.history import pipeline_trainings
>>> pipeline_trainings(Store.open("memory://history-doc", create=True))
{}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.app.pipeline.config import describe_policy
from modyn_store.app.pipeline.evaluate import cutoff_slice, slice_labels
from modyn_store.app.pipeline.training_info import recorded_cost, recorded_decision
from modyn_store.app.report.records import PipelineResult, TriggerRecord

__all__ = ["METRIC_ORDER", "pipeline_results", "pipeline_trainings", "report_metric", "trainings_table", "unevaluated"]


def pipeline_trainings(store: Any) -> dict[str, list[Any]]:
    """``{pipeline name: [TrainingRecord, ...]}`` in trigger order (trainings made by pipelines only)."""
    from modyn_store.core.trainings import Catalog

    out: dict[str, list[Any]] = {}
    for rec in Catalog(store).list():
        name = rec.metrics.get("pipeline")
        if isinstance(name, str):
            out.setdefault(name, []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: int(r.metrics.get("trigger_index", 0)))
    return out


#: the longest trigger reason a trainings table shows whole (an ISO time with nanoseconds fits)
REASON_WIDTH = 64


def _shortened(text: str) -> str:
    """``text``, or its start marked as cut with an ellipsis (a cut time must not read as another)."""
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


def trainings_table(records: list[Any]) -> list[dict[str, Any]]:
    """Rows for a table of trainings: id, cutoff, trigger reason, update, rows, samples, seconds."""
    rows = []
    for r in records:
        dec = recorded_decision(r)
        rows.append({
            "training": r.training_id, "cutoff": f"{r.cutoff[0]}:{r.cutoff[1]}" if r.cutoff else "",
            "trigger": _shortened(str(r.trigger.get("reason", ""))), "update": dec.get("mode", ""),
            "parent": r.parent_id or "", "rows": r.n_keys, "samples": r.cost.samples,
            "forward passes": int(recorded_cost(r)["forward_passes"]),
            "rows scanned": int(recorded_cost(r)["rows_scanned"]),
            "train s": round(r.cost.wall_s, 3),
        })
    return rows


def pipeline_results(store: Any) -> list[PipelineResult]:
    """The report rows of every pipeline whose models were evaluated in ``store``.

    Each row holds the trainings of the pipeline's latest evaluation (a pipeline that trained
    again after it, e.g. a resumed online run stopped without ``--out``, reports the trainings
    that evaluation covered; :func:`unevaluated` names the others)."""
    from modyn_store.core.trainings import Catalog

    evals = Catalog(store).evaluations()
    if evals is None:
        return []
    rows = evals.to_pylist()
    results = []
    for name, recs in pipeline_trainings(store).items():
        ids = [r.training_id for r in recs]
        mine = [x for x in rows if x["model_id"] in ids]
        if not mine:
            continue
        eid = max(mine, key=lambda x: x["_version"])["evaluation_id"]
        mine = [x for x in mine if x["evaluation_id"] == eid]
        evaluated = {x["model_id"] for x in mine}
        recs = [r for r in recs if r.training_id in evaluated]  # costs and metrics of the same trainings
        ids = [r.training_id for r in recs]
        metric = report_metric({x["metric"] for x in mine}, recs[-1].metrics.get("evaluation_metric"))
        slices = sorted({(x["slice_start"], x["slice"]) for x in mine})
        col = {s: i for i, (_, s) in enumerate(slices)}
        matrix = np.full((len(ids), len(slices)), np.nan)
        margins = np.full((len(ids), len(slices)), np.nan)
        for x in mine:
            if x["metric"] == metric:
                matrix[ids.index(x["model_id"]), col[x["slice"]]] = x["value"]
                half = x.get("margin")  # absent or null in a table written before margins were kept
                if half is not None:
                    margins[ids.index(x["model_id"]), col[x["slice"]]] = half
        starts = np.array([s for s, _ in slices])
        trig = []
        for i, r in enumerate(recs):
            s = cutoff_slice(starts, r.metrics.get("cutoff_ts", float("nan")))
            c = recorded_cost(r)
            trig.append(TriggerRecord(i, r.data_version, r.cost.samples, r.cost.wall_s, slice_index=s,
                                      forward_passes=int(c["forward_passes"]), rows_scanned=int(c["rows_scanned"]),
                                      wall_seconds=c["wall_s"],
                                      bookkeeping_seconds=max(0.0, c["wall_s"] - r.cost.wall_s - c["score_s"]),
                                      trigger_seconds=c["trigger_s"], select_seconds=c["select_s"],
                                      score_seconds=c["score_s"]))
        p = recs[0].policy_params
        desc = [_desc(k, p.get(k, {})) for k in ("trigger", "selection", "update")]
        desc[1] = _desc("selection", _pipeline_selection(recs))
        results.append(PipelineResult(name, desc[0], desc[1], desc[2], trig, matrix.tolist(),
                                      slice_labels(store, starts.tolist()), metric=metric, higher_is_better=metric != "loss",
                                      margins=margins.tolist() if not np.isnan(margins).all() else ()))
    return results


#: the order in which :func:`report_metric` prefers an evaluation's metrics (``training.METRICS``)
METRIC_ORDER = ("accuracy", "f1", "roc_auc", "loss")


def report_metric(metrics: set[str], configured: Any = None) -> str:
    """The metric a pipeline's report shows from an evaluation holding ``metrics``: the pipeline's
    configured ``evaluation.metric`` (recorded with its trainings) where the evaluation holds it,
    else the first of :data:`METRIC_ORDER` it holds, else the alphabetically first.

    >>> report_metric({"loss", "f1"}), report_metric({"loss", "f1"}, "loss"), report_metric({"x", "b"})
    ('f1', 'loss', 'b')
    """
    if isinstance(configured, str) and configured in metrics:
        return configured
    known = [m for m in METRIC_ORDER if m in metrics]
    return known[0] if known else min(metrics)


def unevaluated(store: Any) -> dict[str, list[str]]:
    """``{pipeline: [training ids]}`` of the trainings its latest evaluation does not cover
    (pipelines never evaluated are left out)."""
    from modyn_store.core.trainings import Catalog

    evals = Catalog(store).evaluations()
    if evals is None:
        return {}
    rows = evals.select(["evaluation_id", "model_id", "_version"]).to_pylist()
    out: dict[str, list[str]] = {}
    for name, recs in pipeline_trainings(store).items():
        ids = {r.training_id for r in recs}
        mine = [x for x in rows if x["model_id"] in ids]
        if not mine:
            continue
        eid = max(mine, key=lambda x: x["_version"])["evaluation_id"]
        covered = {x["model_id"] for x in mine if x["evaluation_id"] == eid}
        missing = [r.training_id for r in recs if r.training_id not in covered]
        if missing:
            out[name] = missing
    return out


def _pipeline_selection(recs: list[Any]) -> Any:
    """The pipeline's own selection strategy (a training's ``selection`` is the update policy's
    scope where its decision named one): recorded, else that of a training without a scope."""
    recorded = recs[0].policy_params.get("pipeline_selection")
    if recorded is not None:
        return recorded
    for r in recs:
        if not recorded_decision(r).get("selection_scope"):
            return r.policy_params.get("selection", {})
    return recs[0].policy_params.get("selection", {})


def _desc(kind: str, cfg: Any) -> str:
    """A recorded policy config as the run's report describes it (``name(param=value, ...)``)."""
    if not isinstance(cfg, dict) or "name" not in cfg:
        return ""
    return describe_policy(kind, cfg)
