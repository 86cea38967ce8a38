"""Online mode: follow a store that another process writes, and train as data arrives.

:class:`OnlineRunner` looks at the store every ``poll`` seconds and feeds each new version, one
at a time and in order, to the :class:`~modyn_store.app.pipeline.loop.PipelineLoop`. It stops
cleanly on SIGTERM or SIGINT (a training in progress finishes and commits first), after
``idle_timeout`` seconds without new versions, or at ``stop_after``.

Evaluation as it goes: when a new model replaces the one in service (and when the runner stops),
the model that served is evaluated on the rows that arrived while it served, from its cutoff to
the new model's (:attr:`OnlineRunner.next_slice`, the ``evaluation.metric`` of the pipeline). The
class count comes from the store (its label map, else its labels ``0 .. n-1``).

Resuming without repeating or losing a trigger. Every training is committed to the catalog as
one atomic store version under the deterministic id ``<pipeline>-<index>``, together with its
trigger firing (version, position, samples seen) and data cutoff. After each training (and
every ``progress_every`` data versions) the runner also commits a row to the
``pipeline_progress`` table (last processed version, trainings, samples seen) and, in the same
store version, the loop's state as zstd-compressed JSON to the ``pipeline_state`` table
(:meth:`PipelineLoop.state`: the trigger's plain-data state, the trainings' cutoffs, the erased
keys the trainings since the last retrain had used). A restart goes on from the last saved state: it adopts the
trainings the state counts and feeds only the versions after it, so rows erased since (which
drop out of every later read) change nothing the run had counted. Where no state is saved (a
user trigger without a plain-data :meth:`~policies.Trigger.state`, a ``stateful`` selection
strategy) the trigger state is rebuilt by feeding the store's versions again, one at a time,
from the start: triggers are deterministic functions of the versions they see, so they fire at
the same positions (such a restart stops when rows the run had seen were erased since, see
``_check_seen``). Either way every firing that already has a training is *adopted* (its
checkpoint and train set are loaded; the recorded cutoff must equal the new firing's, otherwise
the run stops with an error). Only firings without a committed training train. A kill at any
moment therefore leaves either a committed training (adopted after the restart) or none
(trained after the restart). No serialized Python objects are ever read back from the store.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.app.pipeline.config import parse_pipeline
>>> from modyn_store.app.pipeline.online import OnlineRunner
>>> store = Store.open("memory://online-doc", create=True)
>>> x = np.random.default_rng(0).standard_normal((90, 2)).astype(np.float32)
>>> for i in range(3):
...     _ = store.append(pa.table({"ts": np.arange(30 * i, 30 * i + 30), "label": (x[30*i:30*i+30, 0] > 0).astype(np.int64),
...         "features": pa.FixedSizeListArray.from_arrays(pa.array(x[30*i:30*i+30].ravel()), 2)}))
>>> cfg = parse_pipeline({"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg",
...     "params": {"n_classes": 2}}, "trigger": {"name": "data_amount", "every": 40}})
>>> runner = OnlineRunner(cfg, store, poll=0.01)
>>> runner.run(idle_timeout=0.05)
2
>>> [t.cutoff for t in runner.loop.trainings]
[(2, 10), (3, 20)]
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.config import PipelineConfig
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.loop import PipelineLoop, TrainingInfo, pipeline_training_id
from modyn_store.app.pipeline.runner import threads
from modyn_store.app.pipeline.source import check_in_features, dlrm_widths
from modyn_store.app.pipeline.trigger_rows import store_rows
from modyn_store.core._catalog_tables import declare_table
from modyn_store.core._plainjson import read_json
from modyn_store.core.errors import CorruptionError

__all__ = ["PROGRESS_TABLE", "STATE_TABLE", "NextSlice", "OnlineRunner", "check_follow", "read_progress", "read_state"]

PROGRESS_TABLE = "pipeline_progress"
PROGRESS_SCHEMA = pa.schema([
    ("pipeline", pa.string()), ("processed_version", pa.int64()), ("trainings", pa.int64()),
    ("seen_rows", pa.int64()), ("last_training", pa.string()),
])
declare_table(PROGRESS_TABLE, PROGRESS_SCHEMA, "online pipeline runner")
#: the loop's state (:meth:`PipelineLoop.state`, zstd-compressed JSON) at a progress row, in the
#: same store version (key lists compress several times over)
STATE_TABLE = "pipeline_state"
STATE_SCHEMA = pa.schema([("pipeline", pa.string()), ("processed_version", pa.int64()), ("state", pa.binary())])
declare_table(STATE_TABLE, STATE_SCHEMA, "online pipeline runner")


@dataclass(frozen=True)
class NextSlice:
    """A model's metric on the rows that arrived while it served (until ``replaced_by`` or the stop)."""

    training_id: str
    replaced_by: str | None
    metric: str
    value: float
    rows: int


def read_progress(store: Any, pipeline: str) -> dict[str, Any] | None:
    """The last committed progress row of ``pipeline`` (``None`` if it never committed one)."""
    from modyn_store.core._validate import check_name

    check_name("pipeline", pipeline)
    t = store.read_table(PROGRESS_TABLE, None, filter=f"pipeline = '{pipeline}'")
    if t is None or t.num_rows == 0:
        return None
    rows = sorted(t.to_pylist(), key=lambda r: r["_version"])
    return rows[-1]


def read_state(store: Any, pipeline: str) -> tuple[int, dict[str, Any]] | None:
    """``(processed version, loop state)`` saved with ``pipeline``'s last progress row, if that
    row saved one (``None`` otherwise: a restart feeds every version again). A saved state that
    does not decompress or decode is :class:`~modyn_store.core.errors.CorruptionError`."""
    import zstandard

    from modyn_store.core._validate import check_name

    check_name("pipeline", pipeline)
    last = read_progress(store, pipeline)
    if last is None:
        return None
    # only the row saved with the last progress row (none: e.g. a stateful strategy), not every
    # state the pipeline ever saved
    t = store.read_table(STATE_TABLE, None, filter=f"pipeline = '{pipeline}' AND _version = {int(last['_version'])}")
    if t is None or t.num_rows == 0:
        return None
    row = t.to_pylist()[-1]
    try:
        state = read_json(zstandard.ZstdDecompressor().decompress(row["state"]))
    except (zstandard.ZstdError, ValueError) as exc:  # damaged, or crafted (JSON nested too deep)
        raise CorruptionError(f"the saved state of pipeline {pipeline!r} at version {int(last['_version'])} "
                              f"is not readable: {exc}") from exc
    return int(row["processed_version"]), state


#: the pipelines a restart resumes from a saved state (see the module docstring)
_STATEFUL = ("the built-in triggers data_amount, time, data_drift, performance, deletion and their composites "
             "save one; a user trigger saves one only when its state() is not None, and a composite only when "
             "all its sub-triggers do; none is saved with a stateful selection strategy")
_NO_STATE = f"it saved no state to go on from ({_STATEFUL})"


def _recorded_seen(store: Any, pipeline: str) -> dict[int, int]:
    """``{processed version: rows seen}`` of the progress rows ``pipeline`` committed so far."""
    t = store.read_table(PROGRESS_TABLE, None, filter=f"pipeline = '{pipeline}'")
    if t is None:
        return {}
    return {int(r["processed_version"]): int(r["seen_rows"]) for r in t.to_pylist()}


def _schema_params(config: PipelineConfig, store: Any) -> dict[str, Any]:
    params = dict(config.model.params)
    given = "n_classes" in params
    # a restart takes the values the first run derived (recorded with its first training), not
    # the store's of now: a class that arrived since must not change the model it resumes
    params.update({k: v for k, v in _recorded_params(config, store).items() if k not in params})
    schema = store.schema
    if config.model.name in ("mlp", "logreg"):
        col = config.model.inputs.get("features", "features")
        if schema is not None and col in schema.names:
            t = schema.field(col).type
            params.setdefault("in_features", t.list_size if pa.types.is_fixed_size_list(t) else 1)
            check_in_features(params, t)
        elif "in_features" not in params:
            raise PipelineConfigError(f"model.inputs.features", f"the store has no column {col!r} yet")
    if config.model.name == "dlrm":  # as a replay takes them (source.model_params)
        dlrm_widths(config, schema, params)
    if "n_classes" not in params:
        params["n_classes"] = _online_classes(config, store)
    elif given:
        have = _store_classes(store)[0]
        if params["n_classes"] < have:  # a label past the model's outputs would fail inside the loss
            raise PipelineConfigError("model.params.n_classes", f"n_classes={params['n_classes']} is fewer than "
                                      f"the {have} classes of the store; leave it out to take the store's count")
    return params


def _recorded_params(config: PipelineConfig, store: Any) -> dict[str, Any]:
    """``in_features`` and ``n_classes`` as the pipeline's first recorded training took them."""
    from modyn_store.core.errors import UnknownKeyError
    from modyn_store.core.trainings import Catalog

    try:
        record = Catalog(store).get(pipeline_training_id(config.name, 0))
    except UnknownKeyError:
        return {}
    recorded = record.config.get("model_params") if isinstance(record.config, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {k: recorded[k] for k in ("in_features", "n_classes") if isinstance(recorded.get(k), int)}


def _online_classes(config: PipelineConfig, store: Any) -> int:
    """The class count: the store's label map, else its labels ``0 .. n-1``, else the data set's."""
    from modyn_store.app.datasets import DATASETS

    spec = DATASETS.get(config.source.dataset or "")
    n, labels = _store_classes(store)
    if labels is None and spec is not None and spec.n_classes is not None:
        return max(n, int(spec.n_classes))  # a class may not have arrived yet
    return max(2, n)


def _store_classes(store: Any) -> tuple[int, Any]:
    """``store_classes(store)``, its refusal named as ``model.params.n_classes``'s."""
    from modyn_store.app.datasets.labels import LabelError, store_classes

    try:
        return store_classes(store)
    except LabelError as exc:
        raise PipelineConfigError("model.params.n_classes", str(exc)) from exc


def check_follow(*, poll: Any = 1.0, idle_timeout: Any = None, stop_after: Any = None, progress_every: Any = 10,
                 cli: bool = False) -> None:
    """Refuse follow settings that cannot mean anything (a negative or NaN wait, a negative version).

    ``poll`` and ``idle_timeout`` are finite seconds >= 0 (``idle_timeout`` may be ``None``),
    ``stop_after`` a version >= 0 or ``None``, ``progress_every`` an integer >= 1; errors are
    :class:`~modyn_store.core.errors.InvalidArgumentError` naming the argument (``--poll``, ...
    with ``cli``).

    Example
    -------
    >>> check_follow(poll=float("nan"))
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid poll=nan: expected a finite number in [0.0, inf]
    """
    from modyn_store.core._validate import check_float, check_float_or_none, check_int, check_int_or_none

    def name(n: str) -> str:
        return "--" + n.replace("_", "-") if cli else n

    check_float(name("poll"), poll, 0.0)
    check_float_or_none(name("idle_timeout"), idle_timeout, 0.0)
    check_int_or_none(name("stop_after"), stop_after, 0)
    check_int(name("progress_every"), progress_every, 1)


class OnlineRunner:
    """Follow ``store`` and run ``config`` on every new version (see the module docstring).

    Parameters
    ----------
    config:
        The validated pipeline (its ``source`` only names the data set; the store is written by
        another process). A ``deletions`` section is refused: it simulates erasures in a replay.
    store:
        A :class:`modyn_store.Store` or a store location (created when missing).
    poll:
        Seconds between looks at the store when it has no new version.
    progress_every:
        Commit a progress row at least every this many processed data versions.
    on_training:
        Called with each new :class:`TrainingInfo`.
    """

    def __init__(self, config: PipelineConfig, store: Any, *, poll: float = 1.0, data_dir: str | Path | None = None,
                 progress_every: int = 10, on_training: Callable[[TrainingInfo], None] | None = None) -> None:
        from modyn_store.core.store import Store

        if config.deletions is not None:  # refused before the store is opened (or created)
            raise PipelineConfigError("deletions", "simulates erasures while a replay writes its store; an online "
                                                   "pipeline follows the deletions of the store another process "
                                                   "writes: remove deletions: from the pipeline")
        check_follow(poll=poll, progress_every=progress_every)
        self.config = config
        if isinstance(store, (str, Path)):
            src = config.source  # the source store itself: opened with its storage options
            options = dict(src.storage_options) if src.kind == "store" and src.storage_options \
                and str(store) == str(src.store) else None
            store = Store.open(str(store), create=True, storage_options=options)
        self.store = store
        self.poll = float(poll)
        self.progress_every = int(progress_every)
        self.on_training = on_training
        self.processed = 0
        self.loop: PipelineLoop | None = None
        self.next_slice: list[NextSlice] = []
        self._previous: TrainingInfo | None = None
        self._stop = threading.Event()
        self._since_progress = 0
        self._seen_before: dict[int, int] | None = None  # read once this runner holds the pipeline
        # the thread whose run() holds the pipeline's lock (see running.pipeline_running): its own
        # steps need not take it; a step() from any other thread does (and is refused meanwhile)
        self._holder: int | None = None
        # why a state saved by the run before this restart was not resumed from (see _check_seen)
        self._unused_state: str | None = None

    def _next_slice(self, info: TrainingInfo | None) -> None:
        """Evaluate the model that served until now on the rows that arrived while it served."""
        prev = self._previous
        self._previous = info if info is not None else prev
        if prev is None or not np.isfinite(prev.cutoff_ts):
            return
        import training
        from training.evaluation import Slice

        end = info.cutoff_ts if info is not None else float("inf")
        c = prev.cutoff_ts  # the window starts after it: the next integer time, or the next float
        start = c + 1 if isinstance(c, int) else float(np.nextafter(c, np.inf))
        if start > end:  # no event time after the served model's cutoff: nothing to evaluate
            return
        sl = Slice(f"after-{prev.training_id}", start, end, closed=True)
        metric = self.config.evaluation.metric
        m = training.evaluate(self.store, [prev.training_id], [sl], inputs=dict(self.config.model.inputs),
                              metrics=(metric,), record=False)
        rows = int(m.counts[0]) if m.counts else 0
        if rows:
            self.next_slice.append(NextSlice(prev.training_id, info.training_id if info else None, metric,
                                             float(m.matrix(metric)[0, 0]), rows))

    def finish(self) -> None:
        """Evaluate the last model on the rows that arrived after it (called when :meth:`run` ends)."""
        if self._previous is not None:
            self._next_slice(None)
            self._previous = None

    def stop(self) -> None:
        """Ask the runner to stop after the current version."""
        self._stop.set()

    def _ensure_loop(self) -> PipelineLoop:
        if self.loop is None:
            self.loop = PipelineLoop(self.config, self.store, model_params=_schema_params(self.config, self.store))
        return self.loop

    def _resume(self) -> None:
        """Go on from the state saved with the last progress row, when there is one (see the
        module docstring): the versions up to it are not fed again."""
        saved = read_state(self.store, self.config.name) if self.loop is None and self.processed == 0 else None
        if saved is None:
            return
        loop = self._ensure_loop()
        now = loop.state()
        if now is None or now["trigger_config"] != saved[1].get("trigger_config"):
            # another trigger under this name: fed every version (its trainings are refused)
            self._unused_state = (
                f"the state it saved (with version {saved[0]}) is that of the trigger "
                f"{saved[1].get('trigger_config')}, not of this configuration's {dict(self.config.trigger)}"
                if now is not None else
                f"the state it saved (with version {saved[0]}) cannot be resumed by this configuration, which "
                f"keeps no such state ({_STATEFUL})")
            return
        try:
            loop.restore(saved[1], store_rows(self.store))
        except BaseException:
            self.loop = None  # never fed on top of a half-restored loop: a next step() starts over
            raise
        self.processed = saved[0]
        self._previous = loop.trainings[-1] if loop.trainings else None

    def _check_seen(self, v: int) -> None:
        """Stop a restart whose versions no longer hold the rows the run before it had seen."""
        before = (self._seen_before or {}).get(v)
        now = self.loop.seen_rows if self.loop is not None else 0
        if before is not None and before != now:
            raise PipelineConfigError(
                "name", f"pipeline {self.config.name!r} had seen {before} rows up to version {v} before this "
                        f"restart, but the store's versions hold {now} rows up to there now (rows were erased "
                        f"since), and {self._unused_state or _NO_STATE}: its triggers cannot be "
                        "rebuilt as they were, and would fire at other positions; "
                        "use a new pipeline name (see 'Online mode' in docs/pipelines.md)")

    def _commit_progress(self) -> None:
        loop = self.loop
        assert loop is not None
        row = {"pipeline": self.config.name, "processed_version": self.processed, "trainings": len(loop.trainings),
               "seen_rows": loop.seen_rows, "last_training": loop.current_model}
        state = loop.state()
        if state is not None:
            import zstandard

            packed = zstandard.ZstdCompressor(level=3).compress(json.dumps(state).encode())
        with self.store.transaction("pipeline", message=f"{self.config.name} at version {self.processed}") as txn:
            txn.append(PROGRESS_TABLE, pa.Table.from_pylist([row], schema=PROGRESS_SCHEMA))
            if state is not None:
                txn.append(STATE_TABLE, pa.Table.from_pylist(
                    [{"pipeline": self.config.name, "processed_version": self.processed, "state": packed}],
                    schema=STATE_SCHEMA))
        self._since_progress = 0

    def step(self, until: int | None = None) -> int:
        """Process every version committed since the last call (up to version ``until``, when given);
        returns the number of new trainings. Outside :meth:`run` it holds the pipeline's lock for
        the call: another run of this pipeline on this store, in progress, refuses it
        (:class:`~modyn_store.core.errors.ConflictError`)."""
        if self._holder == threading.get_ident():
            return self._step(until)
        from modyn_store.app.pipeline.running import pipeline_running

        with pipeline_running(self.store, self.config.name):
            return self._step(until)

    def _step(self, until: int | None) -> int:
        try:
            return self._feed(until)
        except BaseException:
            # the trigger may have consumed versions past the last saved progress (and refuses
            # them fed again): the next step starts over from that progress, as a restarted
            # process does (the trainings recorded since are adopted, not made again)
            self.loop, self.processed, self._previous, self._since_progress = None, 0, None, 0
            raise

    def _feed(self, until: int | None) -> int:
        if self._seen_before is None:  # what the runs before this one had seen (see _check_seen)
            self._seen_before = _recorded_seen(self.store, self.config.name)
        new = 0
        self._resume()
        records = {r.version: r for r in self.store.log(since=self.processed)}
        for v in sorted(records):
            if self._stop.is_set() or (until is not None and v > until):
                break
            rec = records[v]
            if rec.inserted == 0 and rec.deleted == 0 and rec.erased == 0:
                self.processed = v  # catalog, progress and tag versions carry no data
                self._check_seen(v)
                continue
            loop = self._ensure_loop()
            trained = False
            for info in loop.process(self.processed, v):
                trained = trained or not info.adopted
                new += 0 if info.adopted else 1
                if not info.adopted:
                    self._next_slice(info)
                else:
                    self._previous = info  # served before a restart: evaluated when it is replaced
                if self.on_training is not None and not info.adopted:
                    self.on_training(info)
            self.processed = v
            self._check_seen(v)
            self._since_progress += 1
            if trained or self._since_progress >= self.progress_every:
                self._commit_progress()
        return new

    def run(self, *, idle_timeout: float | None = None, stop_after: int | None = None,
            on_start: Callable[[], None] | None = None) -> int:
        """Follow the store until a signal, ``idle_timeout`` idle seconds, or version ``stop_after``.

        ``on_start`` is called once the signal handlers are in place. Returns the number of
        trainings made by this call (adopted ones not counted). Another run of this pipeline on
        this store, in progress, refuses it (:class:`~modyn_store.core.errors.ConflictError`; see
        :mod:`~modyn_store.app.pipeline.running`).
        """
        check_follow(idle_timeout=idle_timeout, stop_after=stop_after)
        from modyn_store.app.pipeline.running import pipeline_running

        with pipeline_running(self.store, self.config.name):  # a second run of this pipeline is refused
            self._holder = threading.get_ident()
            try:
                return self._run(idle_timeout, stop_after, on_start)
            finally:
                self._holder = None

    def _run(self, idle_timeout: float | None, stop_after: int | None, on_start: Callable[[], None] | None) -> int:
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                handlers[sig] = signal.signal(sig, lambda *_: self._stop.set())
        if on_start is not None:
            on_start()
        total = 0
        idle_since = time.monotonic()
        try:
            with threads(self.config.training.threads):
                while not self._stop.is_set():
                    before = self.processed
                    total += self.step(until=stop_after)
                    if stop_after is not None and self.processed >= stop_after:
                        break
                    if self.processed != before:
                        idle_since = time.monotonic()
                        continue
                    if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                        break
                    self._stop.wait(self.poll)
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
        if self.loop is not None and self._since_progress:
            self._commit_progress()
        with threads(self.config.training.threads):
            self.finish()
        return total
