"""Composite triggers: ``AtLeast(n)``, ``Any`` and ``All`` of sub-triggers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modyn_store.core._validate import check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._state_shape import PARAMS, is_count, is_keys, is_number, own_state
from policies.base import Firing, ModelLike, RowSource, Trigger, TriggerInput, register, sub_triggers

__all__ = ["All", "AnyOf", "AtLeast"]


@register("at_least")
class AtLeast(Trigger):
    """Fire where ``n`` distinct sub-triggers have fired since this composite last fired.

    Every sub-trigger sees every delta and keeps its own state. A sub-trigger that fires counts
    once until the composite fires; the composite fires at the position of the firing that
    completes the count (sub-triggers firing at the same position count together, also when
    one fires at the end of a delta and another before the first row of the next: both cut the
    same rows), and its firing lists those sub-firings as ``causes``. A delta that one
    sub-trigger refuses before firing (versions fed before, feature columns missing, event
    times in other units than a time trigger's) is refused before any sub-trigger counts it;
    one that fails while firing (a model's error) leaves the sub-triggers before it as they were
    (see :meth:`Trigger.fire`), so the delta may be fed again.

    Parameters
    ----------
    n:
        How many distinct sub-triggers must fire, in ``[1, len(triggers)]``.
    triggers:
        Sub-triggers, as instances or config dicts. An instance can be part of one trigger
        only (it keeps state): use ``t.clone()`` to reuse one.

    Example
    -------
    >>> import numpy as np
    >>> from policies import AtLeast, DataAmount, TriggerInput
    >>> t = AtLeast(n=2, triggers=[DataAmount(every=2), DataAmount(every=3)])
    >>> fs = t.fire(TriggerInput(version=1, keys=np.arange(7), ts=np.arange(7)))
    >>> [f.position for f in fs]  # sub-firings at 2, 3 | 4, 6 | 6
    [3, 6]
    """

    #: whether this composite fired at the end of the last delta that had rows: a sub-firing at
    #: position 0 of the next delta is at that same cutoff, so it counts with that firing
    _fired_at_end: bool = False

    def __init__(self, n: int = 1, triggers: Sequence[Any] = ()) -> None:
        if isinstance(triggers, (str, bytes)) or not isinstance(triggers, Sequence):
            raise InvalidArgumentError("triggers", triggers, "a list of triggers or configs")
        if not triggers:
            raise InvalidArgumentError("triggers", triggers, "at least one sub-trigger")
        self.n = check_int("n", n, 1, len(triggers))
        self.triggers = sub_triggers(self, [(f"triggers[{i}]", t) for i, t in enumerate(triggers)])
        self._armed: dict[int, Firing] = {}
        self._fired_at_end = False

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"n": 2, "triggers": [{"name": "data_amount", "every": 5},
                                      {"name": "time", "every": 4.0, "start": 0}]}]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for t in self.triggers for c in t.columns))

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(t.requires for t in self.triggers))

    @property
    def reads_labels(self) -> bool:  # type: ignore[override]
        return any(t.reads_labels for t in self.triggers)

    def _parts(self) -> list[Trigger]:
        return list(self.triggers)

    def _needed(self) -> int:
        return int(self.n)  # type: ignore[arg-type]

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        # (every part admitted the delta before any part fires: Trigger._admit)
        assert delta.versions is not None
        events: list[tuple[int, int, Firing]] = []
        for i, t in enumerate(self.triggers):
            for f in t.fire(delta, model):
                start = int(np.searchsorted(delta.versions, f.version, side="left"))
                events.append((start + f.position, i, f))
        events.sort(key=lambda e: (e[0], e[1]))
        n = len(delta)
        if n and self._fired_at_end:
            # a sub-trigger firing before the first row of this delta fired at the cutoff where
            # this composite last fired (the end of the previous delta): as one delta, it would
            # have been part of that firing, so it does not count towards the next one
            events = [e for e in events if e[0] > 0]
        out: list[Firing] = []
        last_end = -1
        j = 0
        while j < len(events):
            end = events[j][0]
            group: list[Firing] = []
            while j < len(events) and events[j][0] == end:
                self._armed[events[j][1]] = events[j][2]
                group.append(events[j][2])
                j += 1
            if len(self._armed) >= self._needed():
                causes = tuple(self._armed[i] for i in sorted(self._armed))
                names = ", ".join(c.trigger for c in causes)
                v, pos = delta.cutoff(end)
                boundary = delta.boundary(end)
                # the same rows may be cut at a later version of the delta (e.g. a deletion
                # trigger's cutoff at the end of the version that removed rows): keep the latest
                for g in group:
                    if g.version > v:
                        v, pos, boundary = g.version, g.position, g.boundary
                out.append(Firing(version=v, position=pos, trigger=self.name,
                                  reason=f"{len(causes)} of {len(self.triggers)} fired: {names}",
                                  seen=max(c.seen for c in causes), causes=causes,
                                  boundary=boundary))
                self._armed.clear()
                last_end = end
        if n:
            self._fired_at_end = bool(out) and last_end == n
        return out

    def on_training(self, train_set: TrainSet) -> None:
        for t in self.triggers:
            t.on_training(train_set)

    def state(self) -> dict[str, Any] | None:
        """The composite's own parameters (``"params"``: its name and ``n``; each sub-trigger's
        state records its own), the sub-triggers' states, the sub-firings armed so far and
        whether the composite fired at the end of the last delta; ``None`` when a sub-trigger has
        no plain-data state."""
        parts = [t.state() for t in self.triggers]
        if any(p is None for p in parts):
            return None
        return {PARAMS: self._state_params(), "parts": parts,
                "armed": [[i, _plain_firing(f)] for i, f in sorted(self._armed.items())],
                "fired_at_end": bool(self._fired_at_end)}

    def _state_params(self) -> dict[str, Any]:
        return {"name": self._config_name(), "n": self._needed()}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take :meth:`state`'s data. A state saved by another composite (another name or ``n``)
        is refused naming ``state.params.<name>``, and one whose sub-trigger ``i`` had other
        parameters naming ``state.parts[i].params.<name>``; the sub-triggers are left as they
        were."""
        state = own_state(state, self._state_params(), "a composite trigger's state")
        shape = ("{'params': its name and n, 'parts': [a state per sub-trigger], 'armed': [[index, firing], ...], "
                 "'fired_at_end': bool}")
        ok = isinstance(state, Mapping) and set(state) == {"parts", "armed", "fired_at_end"} \
            and isinstance(state["parts"], list) and len(state["parts"]) == len(self.triggers) \
            and isinstance(state["armed"], list) and isinstance(state["fired_at_end"], bool)
        if not ok:
            raise InvalidArgumentError("state", state, f"a composite trigger's state: {shape}")
        try:
            pairs = [(i, _firing(f)) for i, f in state["armed"]]
            armed = dict(pairs)
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidArgumentError("state", state, f"a composite trigger's state: {shape}") from exc
        # each index once, of a sub-trigger; as many as fire the composite would have fired it
        # (and been cleared): such a state is another composite's (n, any or all)
        if (len(armed) != len(pairs) or len(armed) >= self._needed()
                or any(not (is_count(i) and i < len(self.triggers)) for i in armed)):
            raise InvalidArgumentError("state", state, f"a composite trigger's state: {shape}, "
                                       f"indices distinct in [0, {len(self.triggers)}), fewer than "
                                       f"{self._needed()}")
        before = [t.state() for t in self.triggers]
        try:
            for i, (t, part) in enumerate(zip(self.triggers, state["parts"])):
                try:
                    t.load_state(part, rows)
                except InvalidArgumentError as exc:
                    if not exc.name.startswith("state"):
                        raise
                    # named as a path into this state: which sub-trigger's state is refused
                    raise InvalidArgumentError(f"state.parts[{i}]{exc.name[len('state'):]}", exc.value,
                                               exc.expected) from exc
        except BaseException:
            for t, part in zip(self.triggers, before):
                if part is not None:
                    t.load_state(part, rows)
            raise
        self._armed, self._fired_at_end = armed, state["fired_at_end"]


def _plain_firing(f: Firing) -> dict[str, Any]:
    """A firing as plain data (JSON), its causes included."""
    def num(v: Any) -> Any:
        return v.item() if isinstance(v, np.generic) else v

    return {"version": int(f.version), "position": int(f.position), "reason": f.reason,
            "statistic": None if f.statistic is None else float(f.statistic), "trigger": f.trigger,
            "seen": int(f.seen), "causes": [_plain_firing(c) for c in f.causes],
            "boundary": None if f.boundary is None else [num(f.boundary[0]), int(f.boundary[1])]}


_FIRING_FIELDS = {"version", "position", "reason", "statistic", "trigger", "seen", "causes", "boundary"}


def _firing(d: Any) -> Firing:
    """The firing :func:`_plain_firing` made ``d`` of; ``ValueError`` when ``d`` is not one (its
    fields are taken as they are, not converted: a text or a fraction is not a version)."""
    if not (isinstance(d, Mapping) and set(d) == _FIRING_FIELDS):
        raise ValueError("not a firing")
    b, statistic = d["boundary"], d["statistic"]
    if not (is_count(d["version"]) and is_count(d["position"]) and is_count(d["seen"])
            and isinstance(d["reason"], str) and isinstance(d["trigger"], str)
            and (statistic is None or is_number(statistic)) and isinstance(d["causes"], list)
            and (b is None or (isinstance(b, list) and len(b) == 2 and is_number(b[0])
                               and is_keys(b[1:])))):
        raise ValueError("not a firing")
    return Firing(version=d["version"], position=d["position"], reason=d["reason"],
                  statistic=statistic, trigger=d["trigger"], seen=d["seen"],
                  causes=tuple(_firing(c) for c in d["causes"]), boundary=None if b is None else (b[0], b[1]))


@register("any")
class AnyOf(AtLeast):
    """Fire whenever any sub-trigger fires (``AtLeast(n=1)``).

    Example
    -------
    >>> from policies import AnyOf, DataAmount, Time
    >>> AnyOf(triggers=[DataAmount(every=100), Time(every="1d")]).n
    1
    """

    def __init__(self, triggers: Sequence[Any] = ()) -> None:
        super().__init__(n=1, triggers=triggers)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"triggers": [{"name": "data_amount", "every": 5},
                              {"name": "time", "every": 4.0, "start": 0}]}]


@register("all")
class All(AtLeast):
    """Fire where every sub-trigger has fired since the last firing (``AtLeast(n=len)``).

    Example
    -------
    >>> from policies import All, DataAmount
    >>> All(triggers=[DataAmount(every=2), DataAmount(every=3)]).n
    2
    """

    def __init__(self, triggers: Sequence[Any] = ()) -> None:
        super().__init__(n=max(1, len(triggers)) if isinstance(triggers, Sequence) else 1,
                         triggers=triggers)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return AnyOf._test_params()
