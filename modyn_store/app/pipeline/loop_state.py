"""An online pipeline loop's state as plain data (JSON), and a fresh loop resumed from it.

The online runner (:mod:`modyn_store.app.pipeline.online`) saves :func:`loop_state` with each
progress row and, on a restart, :func:`restore_loop` adopts the trainings the state counts and
takes the trigger's state, so only the versions after it are fed again: rows erased since drop
out of every later read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core.trainings import Catalog
from policies import Cutoff
from policies._state_shape import is_count, is_keys, with_params

if TYPE_CHECKING:
    from modyn_store.app.pipeline.loop import PipelineLoop

__all__ = ["loop_state", "restore_loop"]


@dataclass
class _Pending:
    """Work done since the last training (billed to the next one)."""

    rows: int = 0
    trigger_s: float = 0.0


def loop_state(loop: PipelineLoop) -> dict[str, Any] | None:
    """What a restart needs to go on from here without feeding the versions so far again
    (plain data, JSON): the trigger's :meth:`~policies.Trigger.state`, the trainings' data
    cutoffs, the keys erased since the last retrain and the counters. ``None`` when the
    trigger keeps no such state or a selection strategy is ``stateful`` (it must select
    again for every training): such a pipeline rebuilds its state by feeding every version."""
    trig = loop.trigger.state()
    strategies = [loop.strategy, *loop._scoped.values()]
    strategies += [loop._strategy_for(v) for k, v in dict(loop.config.update).items()
                   if k.endswith("scope") and isinstance(v, str) and v]
    if trig is None or any(getattr(st, "stateful", False) for st in strategies):
        return None
    s = loop._s
    return {"trigger_config": json.loads(_canon(dict(loop.config.trigger))), "trigger": trig,
            "trainings": len(loop.trainings),
            "cutoffs": [[int(c.version), _plain(c.ts), None if c.key is None else int(c.key)] for c in s.cutoffs],
            "erased_since": loop._erased_trained().tolist(), "last_ts": _plain(s.last_ts), "seen_rows": int(s.seen_rows),
            "pending": [int(s.pending.rows), float(s.pending.trigger_s)]}


def restore_loop(loop: PipelineLoop, state: Mapping[str, Any], rows: Any = None) -> None:
    """Go on from ``state`` (made by :func:`loop_state`) on a fresh ``loop``: adopt the trainings
    it counts from the catalog (checked as :meth:`PipelineLoop.adopt` checks them), then take the
    trigger's state (rows it names by key read with ``rows``, a :data:`policies.base.RowSource`)
    and the counters; erased rows drop out of later deltas."""
    if loop.trainings or loop._s.seen_rows:
        raise PipelineConfigError("name", "a pipeline loop resumes only before it is fed anything")
    if not _shaped(state):
        raise PipelineConfigError("name", f"the saved state of pipeline {loop.config.name!r} is not one this "
                                          f"version reads (keys {sorted(state) if isinstance(state, Mapping) else state!r}); "
                                          "use a new pipeline name")
    if _canon(state["trigger_config"]) != _canon(dict(loop.config.trigger)):
        raise PipelineConfigError("trigger", f"the saved state of pipeline {loop.config.name!r} is that of "
                                             f"the trigger {state['trigger_config']}; use a new pipeline name")
    n = int(state["trainings"])
    if len(state["cutoffs"]) != n:
        raise PipelineConfigError("name", f"the saved state of pipeline {loop.config.name!r} is damaged: {n} "
                                          f"trainings but {len(state['cutoffs'])} cutoffs")
    for index, (v, ts, key) in enumerate(state["cutoffs"]):
        record = loop._existing(index)
        if record is None:
            raise PipelineConfigError("name", f"the saved state of pipeline {loop.config.name!r} counts {n} "
                                              f"trainings, but {loop.training_id(index)!r} is not in the catalog")
        loop._check_same_pipeline(record)
        info = loop._adopted_info(index, record, record.metrics.get("cutoff_ts", float("nan")))
        module = loop._recorded_module(record.training_id) if index == n - 1 else None
        loop._after(info, Cutoff(int(v), ts, key), Catalog(loop.store).train_set(record.training_id), module)
    # the trigger configuration matched: a trigger state saved before states recorded their
    # trigger's parameters is that trigger's, and is given them
    loop.trigger.load_state(with_params(loop.trigger, state["trigger"]), rows)
    s = loop._s
    s.erased_since = np.asarray(state["erased_since"], np.int64)
    s.last_ts = float("nan") if state["last_ts"] is None else state["last_ts"]
    s.seen_rows = int(state["seen_rows"])
    s.pending = _Pending(int(state["pending"][0]), float(state["pending"][1]))


def _plain(value: Any) -> Any:
    """A number as JSON holds it: a NumPy scalar as a Python one, NaN (no time yet) as ``None``."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and value != value else value


def _canon(value: Any) -> str:
    """A configuration value as canonical JSON (tuples and lists alike, keys sorted)."""
    return json.dumps(value, sort_keys=True, default=str)


def _shaped(state: Any) -> bool:
    """Whether ``state`` has the fields and types :func:`loop_state` writes (the trigger's own
    state is checked by the trigger)."""
    count = is_count
    names = {"trigger_config", "trigger", "trainings", "cutoffs", "erased_since", "last_ts", "seen_rows", "pending"}
    return (isinstance(state, Mapping) and set(state) == names and count(state["trainings"])
            and count(state["seen_rows"]) and is_keys(state["erased_since"])
            and isinstance(state["cutoffs"], list)
            and all(isinstance(c, list) and len(c) == 3 and count(c[0]) for c in state["cutoffs"])
            and isinstance(state["pending"], list) and len(state["pending"]) == 2 and count(state["pending"][0])
            and isinstance(state["pending"][1], (int, float)) and isinstance(state["trigger_config"], dict))
