"""The trigger -> select -> update -> train loop over a store's versions (shared by replay and online).

:class:`PipelineLoop` is fed version ranges ``(a, b]`` in order. It asks the store for the delta,
lets the trigger fire (sample-precise positions, see ``docs/policies.md``), and for every firing
decides the update (fine-tune or retrain), selects the train set on ``store.as_of(firing.version)``
restricted to the firing's cutoff, trains, and records the training in the catalog with its
trigger, cutoff, policies, seed, update decision, metrics and cost. Training ids are
``<pipeline>-<index>``, so a restarted pipeline recognises the trainings it already made
(:meth:`PipelineLoop.adopt`).

Example
-------
>>> import pyarrow as pa, numpy as np
>>> from modyn_store import Store
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> from modyn_store.app.pipeline.loop import PipelineLoop
>>> store = Store.open("memory://loop-doc", create=True)
>>> x = np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(60), "label": (x[:, 0] > 0).astype(np.int64),
...     "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
>>> cfg = parse_pipeline({"name": "doc", "source": {"dataset": "elec2"}, "model": {"name": "logreg",
...     "params": {"in_features": 2, "n_classes": 2}}, "trigger": {"name": "data_amount", "every": 25}})
>>> loop = PipelineLoop(cfg, store)
>>> [t.training_id for t in loop.process(0, store.version)]
['doc-0000', 'doc-0001']
>>> loop.trainings[1].cutoff
(1, 50)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from engine._search import union_keys
from modyn_store.app.pipeline.config import PipelineConfig
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.loop_state import _canon, _Pending, loop_state, restore_loop
from modyn_store.app.pipeline.model_view import TorchModelView, column_array
from modyn_store.app.pipeline.selection import SelectionRuntime, provided_score
from modyn_store.app.pipeline.training_info import TrainingInfo, recorded_cost, recorded_decision, selection_seed

__all__ = ["PipelineLoop", "TrainingInfo", "recorded_cost", "selection_seed"]

#: rows per batch of a selection's scan of the snapshot: fewer, larger batches than the
#: policies' default cut the per-batch overhead of a pass over all data (samples are the
#: same for any batching)
SELECT_BATCH = 1 << 18
# selections made again when rows of a train set are erased before its training reads them
ERASED_RETRIES = 3


@dataclass
class _State:
    cutoffs: list[Any] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)
    current: str | None = None
    module: Any = None
    last_retrain_index: int | None = None
    last_retrain_seconds: float | None = None
    training_seconds: float = 0.0
    since_retrain_keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    erased_since: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    last_ts: float | int = float("nan")
    seen_rows: int = 0
    pending: _Pending = field(default_factory=_Pending)


def pipeline_training_id(pipeline: str, index: int) -> str:
    """The deterministic id of the ``index``-th training of pipeline ``pipeline``."""
    return f"{pipeline}-{index:04d}"


class PipelineLoop:
    """Feed version ranges to the trigger and train on its firings (see the module docstring).

    Parameters
    ----------
    config:
        The validated pipeline.
    store:
        The store holding the stream (and receiving the catalog records).
    model_params:
        The model's parameters with data-derived defaults filled in (default: ``config.model.params``).
    """

    def __init__(self, config: PipelineConfig, store: Any, *, model_params: Mapping[str, Any] | None = None) -> None:
        import policies

        self.config = config
        self.store = store
        self.trigger = policies.from_config("trigger", dict(config.trigger))
        self.strategy = policies.from_config("selection", dict(config.selection))
        self.update = policies.from_config("update", dict(config.update))
        self.model_params = dict(model_params if model_params is not None else config.model.params)
        self.trainings: list[TrainingInfo] = []
        self.skipped: list[tuple[int, int, str]] = []
        self._scoped: dict[str, Any] = {}
        self._scoring: tuple[int, float] = (0, 0.0)
        self._s = _State()
        self._selection = SelectionRuntime(store, config.model.inputs, self.train_config, config.name, ray=config.ray)
        if config.ray is not None:
            from modyn_store.app.pipeline.ray_exec import connect

            connect(config.ray.address)
        for pol, key in ((self.strategy, "selection"), (self.trigger, "trigger")):
            self._check_requires(pol, key)

    @staticmethod
    def _check_requires(pol: Any, key: str) -> None:
        for req in pol.requires:
            if req in ("model", "embeddings"):
                continue
            if req.startswith("score:") and provided_score(req[6:], pol):
                continue
            raise PipelineConfigError(f"{key}.name", f"{pol.name!r} needs {req!r}, which the runner does not provide")

    # -- helpers ---------------------------------------------------------------------------
    def training_id(self, index: int) -> str:
        """The deterministic id of the ``index``-th training of this pipeline."""
        return pipeline_training_id(self.config.name, index)

    def train_config(self, mode: str) -> Any:
        from training.trainer import TrainConfig

        t = self.config.training
        return TrainConfig(
            model=self.config.model.name, model_params=self.model_params, inputs=dict(self.config.model.inputs),
            label="label", mode="finetune" if mode == "finetune" else "scratch", epochs=t.epochs,
            batch_size=t.batch_size, seed=t.seed, optimizer=t.optimizer, lr=t.lr, momentum=t.momentum,
            weight_decay=t.weight_decay, device=t.device, standardize=t.standardize,
        )

    def _model_like(self) -> TorchModelView | None:
        if self._s.module is None:
            return None
        return TorchModelView(self._s.module, self.config.model.inputs)

    def _fresh_module(self) -> Any:
        import torch

        from training.models import build_model

        torch.manual_seed(self.config.training.seed)
        return build_model(self.config.model.name, **self.model_params)

    # -- the loop --------------------------------------------------------------------------
    def process(self, a: int, b: int) -> Iterator[TrainingInfo]:
        """Feed the delta of versions ``(a, b]`` to the trigger; train on each firing (yielded)."""
        from policies import TriggerInput
        from training.eval_sample import event_times  # int64 for integer and temporal times: exact cutoffs

        t0 = time.perf_counter()
        delta = self._delta(a, b)
        tin = TriggerInput.from_delta(delta, columns=self.trigger.columns)
        ts = event_times(delta.inserted.column("ts")) if len(delta) else np.empty(0)
        if tin.erased.size:
            self._s.erased_since = union_keys(self._s.erased_since, tin.erased)
        model = self._model_like() if "model" in self.trigger.requires or "embeddings" in self.trigger.requires else None
        firings = list(self.trigger.fire(tin, model))
        pend = self._s.pending
        pend.rows += len(tin)
        pend.trigger_s += time.perf_counter() - t0
        # a later version may hold late (earlier) rows: a cutoff's time is the latest one up to it
        latest = np.fmax.accumulate(ts) if ts.size else ts
        for f in firings:
            start = int(np.searchsorted(np.asarray(tin.versions), f.version, side="left")) if len(tin) else 0
            last = start + f.position - 1
            cutoff_ts = _later(self._s.last_ts, latest[last].item()) if last >= 0 and ts.size else self._s.last_ts
            info = self._on_firing(f, tin, cutoff_ts)
            if info is not None:
                yield info
        if ts.size:
            self._s.last_ts = _later(self._s.last_ts, latest[-1].item())
        self._s.seen_rows += len(tin)

    def _delta(self, a: int, b: int) -> Any:
        """The store's delta ``(a, b]`` with the trigger's columns. Rows that ``vacuum`` purged
        before the pipeline read them stop it (:class:`DataUnavailableError`), saying why."""
        from modyn_store.core.errors import DataUnavailableError

        try:
            return self.store.delta(a, b, columns=list(self.trigger.columns) or None, labels=self.trigger.reads_labels)
        except DataUnavailableError as exc:
            keys = np.asarray(exc.keys if exc.keys is not None else [], np.int64)
            raise DataUnavailableError(
                f"{keys.size} rows inserted in versions ({a}, {b}] were purged by vacuum (e.g. keys "
                f"{keys[:5].tolist()}): a pipeline reads every version of a store source from the first on "
                "(a restart reads them again to rebuild its triggers), so it cannot run on a store whose "
                "deleted rows were vacuumed before it read them; see 'Online mode' in docs/pipelines.md",
                keys=keys,
            ) from exc

    def _erased_trained(self) -> np.ndarray:
        s = self._s
        return np.intersect1d(s.since_retrain_keys, s.erased_since, assume_unique=True)

    def _strategy_for(self, scope: str | None) -> Any:
        if not scope:
            return self.strategy
        if scope not in self._scoped:
            import policies

            self._scoped[scope] = policies.get("selection", scope)()
        return self._scoped[scope]

    def _context(self, f: Any, tin: Any, index: int, strategy: Any) -> Any:
        from policies import SelectionContext

        snap = self.store.as_of(f.version)
        embed = None
        module = self._s.module if self._s.module is not None else self._fresh_module()
        if "embeddings" in strategy.requires:
            adapter = TorchModelView(module, self.config.model.inputs)
            cols = list(dict.fromkeys(self.config.model.inputs.values()))

            def embed(keys: np.ndarray) -> np.ndarray:
                t = snap.take(keys, columns=cols)
                return adapter.embed({c: column_array(t.column(c)) for c in cols})

        ctx = SelectionContext(
            snapshot=snap, scores=self.store.scores, trigger_index=index,
            trigger_cutoffs=tuple(self._s.cutoffs), history=tuple(self._s.history),
            seed=selection_seed(self.config.training.seed, index), excluded=tin.keys_after(f), embed=embed,
            batch_size=SELECT_BATCH,
        )
        ctx = self._selection.prepare(strategy, ctx, module, self.training_id(index), (int(f.version), int(f.position)))
        self._scoring = self._selection.scoring
        return ctx

    def _on_firing(self, f: Any, tin: Any, cutoff_ts: float | int) -> TrainingInfo | None:
        from policies import UpdateContext

        s = self._s
        index = len(self.trainings)
        limit = self.config.limits.max_trainings
        if limit is not None and index >= limit:
            self.skipped.append((f.version, f.position, "max_trainings reached"))
            return None
        existing = self._existing(index)
        if existing is not None and (existing.cutoff is None or (f.version, f.position) >= tuple(existing.cutoff)):
            return self.adopt(index, existing, f, cutoff_ts, tin)
        # a firing before the recorded training's cutoff was skipped before a restart: replayed
        decision = self.update.decide(UpdateContext(
            trigger_index=index, firing=f, erased_trained_keys=self._erased_trained(),
            training_seconds=s.training_seconds, current_model=s.current,
            last_retrain_index=s.last_retrain_index, last_retrain_seconds=s.last_retrain_seconds,
        ))
        strategy = self._strategy_for(decision.selection_scope)
        from training.errors import ErasedKeysError

        for attempt in range(ERASED_RETRIES + 1):
            t0 = time.perf_counter()
            self._scoring = (0, 0.0)
            ctx = self._context(f, tin, index, strategy)
            if self.config.ray is not None:
                from modyn_store.app.pipeline.ray_exec import select_on_ray

                train_set = select_on_ray(strategy, ctx)
                # recorded with the training: where its selection ran
                self._selection.lineage["ray"] = {"address": self.config.ray.address, "workers": self.config.ray.workers}
            else:
                train_set = strategy.select(ctx)
            select_s = time.perf_counter() - t0
            scored, score_s = self._scoring
            if train_set.size < self.config.limits.min_train_rows:
                s.pending.trigger_s += select_s  # billed to the next training
                s.pending.rows += scored
                self.skipped.append((f.version, f.position, f"train set of {train_set.size} rows"))
                return None
            if existing is not None:  # it trains now: refused (the cutoffs differ)
                return self.adopt(index, existing, f, cutoff_ts)
            try:
                return self._train(index, f, decision, strategy, train_set, decision.base, cutoff_ts,
                                   select=(select_s, scored, score_s), hooks=self._selection.hooks(strategy, ctx))
            except ErasedKeysError:
                # rows of the train set were erased (by another process) between its selection and its
                # training: select again, as a restart would, now without them (not a stateful
                # strategy, whose selection changed its memory)
                if attempt == ERASED_RETRIES or getattr(strategy, "stateful", False):
                    raise
        raise AssertionError("unreachable")

    def _existing(self, index: int) -> Any:
        from modyn_store.core.trainings import Catalog
        from modyn_store.core.errors import UnknownKeyError

        try:
            return Catalog(self.store).get(self.training_id(index))
        except UnknownKeyError:
            return None

    def _train(self, index: int, f: Any, decision: Any, strategy: Any, train_set: Any, parent: str | None,
               cutoff_ts: float | int, select: tuple[float, int, float] = (0.0, 0, 0.0),
               hooks: Mapping[str, Any] | None = None) -> TrainingInfo:
        import training

        s = self._s
        select_s, scored, score_s = select
        pend = s.pending
        rows_scanned = pend.rows + int(train_set.size) + scored
        mode = "finetune" if decision.mode == "finetune" else "retrain"
        cfg = self.train_config("finetune" if parent is not None else "scratch")
        firing = {"version": f.version, "position": f.position, "reason": f.reason, "statistic": f.statistic,
                  "trigger": f.trigger, "seen": f.seen, "index": index}
        t0 = time.perf_counter()
        every = self.config.training.save_every
        if every:  # a progress saved for another train set (selected before an erasure) starts over
            from training.progress import discard_other_progress

            discard_other_progress(self.store, self.training_id(index), cfg, train_set, parent)
        result = training.train(
            self.store, train_set, cfg, parent_id=parent, training_id=self.training_id(index), save_every=every,
            policy=strategy.name or type(strategy).__name__,
            policy_params={"pipeline": self.config.name, "trigger": dict(self.config.trigger),
                           "selection": strategy.to_config(), "update": dict(self.config.update),
                           "pipeline_selection": self.strategy.to_config(), **self._selection.lineage},
            trigger=firing, cutoff=(int(f.version), int(f.position)),
            update_decision=json.dumps({"mode": decision.mode, "base": decision.base, "reason": decision.reason,
                                        "selection_scope": decision.selection_scope}),
            metrics={"pipeline": self.config.name, "trigger_index": index, "cutoff_ts": cutoff_ts,
                     "evaluation_metric": self.config.evaluation.metric,
                     "threads": self.config.training.threads,
                     "cost": {"forward_passes": scored, "rows_scanned": rows_scanned, "trigger_s": pend.trigger_s,
                              "select_s": select_s, "score_s": score_s}},
            **dict(hooks or {}),
        )
        s.pending = _Pending()
        if result.train_set is not None:
            train_set = result.train_set  # with rescoring: every epoch's keys
        fit_s = float(result.cost.wall_s)
        # the training's time as recorded (through its checkpoint write), so that a report made
        # later from the catalog shows the same figures as this run
        wall = recorded_cost(result.record)["wall_s"] if result.record is not None else (
            pend.trigger_s + select_s + time.perf_counter() - t0)
        info = TrainingInfo(index, result.training_id, (int(f.version), int(f.position)), cutoff_ts, mode,
                            train_set.size, int(result.cost.samples), fit_s, wall, decision.reason,
                            forward_passes=scored, rows_scanned=rows_scanned, trigger_seconds=pend.trigger_s,
                            select_seconds=select_s, score_seconds=score_s,
                            bookkeeping_seconds=max(0.0, wall - fit_s - score_s))
        self._after(info, f.cutoff, train_set, result.model)
        return info

    def adopt(self, index: int, record: Any, f: Any, cutoff_ts: float | int, tin: Any = None) -> TrainingInfo:
        """Take over a training recorded before a restart (checks that the firing matches it); given
        the firing's trigger input ``tin``, a ``stateful`` strategy (GDumb) selects again, as before."""
        from modyn_store.core.trainings import Catalog

        self._check_same_pipeline(record)  # first: a changed trigger is named as such, not as a cutoff
        if record.cutoff != (int(f.version), int(f.position)):
            raise PipelineConfigError(
                "name", f"training {record.training_id!r} was recorded with cutoff {record.cutoff}, but the trigger "
                        f"now fires at {(f.version, f.position)}; use a new pipeline name or a fresh store")
        train_set = Catalog(self.store).train_set(record.training_id)
        module = self._recorded_module(record.training_id)
        decision = recorded_decision(record)
        strategy = self._strategy_for(decision.get("selection_scope"))
        if tin is not None and getattr(strategy, "stateful", False):
            strategy.select(self._context(f, tin, index, strategy))
        self._s.pending = _Pending()
        info = self._adopted_info(index, record, cutoff_ts)
        self._after(info, f.cutoff, train_set, module)
        return info

    def _recorded_module(self, training_id: str) -> Any:
        """The model of a recorded training, loaded from its checkpoint."""
        from modyn_store.core.trainings import Catalog
        from training.models import load_weights

        module = self._fresh_module()
        load_weights(module, Catalog(self.store).load_checkpoint(training_id), name="training_id",
                     training_id=training_id)
        return module

    def _adopted_info(self, index: int, record: Any, cutoff_ts: float | int) -> TrainingInfo:
        decision = recorded_decision(record)
        mode = "finetune" if decision.get("mode") == "finetune" else "retrain"
        c = recorded_cost(record)
        return TrainingInfo(index, record.training_id, record.cutoff, cutoff_ts, mode, record.n_keys,
                            record.cost.samples, record.cost.wall_s, c["wall_s"],
                            str(decision.get("reason", "")), adopted=True, forward_passes=int(c["forward_passes"]),
                            rows_scanned=int(c["rows_scanned"]), trigger_seconds=c["trigger_s"],
                            select_seconds=c["select_s"], score_seconds=c["score_s"],
                            bookkeeping_seconds=max(0.0, c["wall_s"] - record.cost.wall_s - c["score_s"]))

    def _check_same_pipeline(self, record: Any) -> None:
        """Refuse to adopt a training that another configuration under this name recorded."""
        from training.train_config import RECORDED_BEFORE

        params = record.policy_params if isinstance(record.policy_params, Mapping) else {}
        mine: dict[str, Any] = {"trigger": dict(self.config.trigger), "update": dict(self.config.update)}
        differ = [k for k, v in mine.items() if k in params and _canon(params[k]) != _canon(v)]
        if "selection" in params:
            allowed = [_canon(self.strategy.to_config())]
            scopes = [v for k, v in dict(self.config.update).items() if k.endswith("scope") and isinstance(v, str) and v]
            allowed += [_canon(self._strategy_for(sc).to_config()) for sc in scopes]
            if _canon(params["selection"]) not in allowed:
                differ.append("selection")
        recorded = dict(record.config) if isinstance(record.config, Mapping) else {}
        current = self.train_config("scratch").to_json()
        if recorded:
            recorded = {**RECORDED_BEFORE, **recorded}
            fields = sorted(k for k in current if k != "mode" and k in recorded and _canon(recorded[k]) != _canon(current[k]))
            differ += [f"training/model ({', '.join(fields)})"] if fields else []
        if differ:
            raise PipelineConfigError(
                "name", f"training {record.training_id!r} in this store was recorded by a pipeline {self.config.name!r} "
                        f"with another configuration ({', '.join(differ)} differ); use a new pipeline name or a fresh store")

    def _after(self, info: TrainingInfo, cutoff: Any, train_set: Any, module: Any) -> None:
        s = self._s
        if self.config.training.save_every:  # recorded (or adopted): a progress a kill left is of no use
            from training.progress import discard_progress

            discard_progress(self.store, info.training_id)
        s.cutoffs.append(cutoff)
        s.history.append(train_set)
        s.current = info.training_id
        s.module = module
        s.training_seconds += info.train_seconds
        if info.mode == "retrain":
            s.last_retrain_index = info.index
            s.last_retrain_seconds = info.train_seconds
            s.since_retrain_keys = np.sort(train_set.keys)
            s.erased_since = np.empty(0, np.int64)
        else:
            s.since_retrain_keys = union_keys(s.since_retrain_keys, train_set.keys)
        self.trigger.on_training(train_set)
        self.trainings.append(info)

    # -- resuming from plain data (modyn_store.app.pipeline.loop_state) --------------------
    def state(self) -> dict[str, Any] | None:
        """See :func:`~modyn_store.app.pipeline.loop_state.loop_state`."""
        return loop_state(self)

    def restore(self, state: Mapping[str, Any], rows: Any = None) -> None:
        """See :func:`~modyn_store.app.pipeline.loop_state.restore_loop`."""
        restore_loop(self, state, rows)

    @property
    def current_model(self) -> str | None:
        """The id of the latest training (the model in service)."""
        return self._s.current

    @property
    def pending(self) -> tuple[int, float]:
        """``(rows scanned, seconds)`` of trigger work after the latest training (no training to bill)."""
        return self._s.pending.rows, self._s.pending.trigger_s

    @property
    def seen_rows(self) -> int:
        """Inserted rows fed to the trigger so far."""
        return self._s.seen_rows


def _later(a: float | int, b: float | int) -> float | int:
    """The later of two event times, exactly (ints stay ints); NaN (no time yet) gives the other."""
    return b if (isinstance(a, float) and a != a) or b > a else a
