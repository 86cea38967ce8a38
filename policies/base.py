"""Shared base of every policy: triggers (when), selection strategies (what), update policies (how).

A policy is a small class configured by plain parameters. Every constructor argument is kept as a
public attribute of the same name, internal state is ``_``-prefixed, so :meth:`Policy.to_config`,
:meth:`Policy.clone` and ``repr`` work generically. Policies register by name in
:data:`REGISTRY`; :func:`from_config` builds one from a plain dict such as
``{"name": "data_amount", "every": 100}``.

Example
-------
>>> from policies.base import from_config
>>> t = from_config("trigger", {"name": "data_amount", "every": 3})
>>> t
DataAmount(every=3)
>>> t.to_config()
{'name': 'data_amount', 'every': 3}
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from modyn_store.core._validate import check_int
from modyn_store.core.errors import InvalidArgumentError, engine_errors
from modyn_store.core.trainset import TrainSet
from policies._lookup import (
    BASES,
    ENTRY_POINT_GROUP,
    KINDS,
    REGISTRY,
    _check_kind,
    _entry_point_name,
    _is_policy_module,
    check_registered,
    get,
)
from policies._records import (
    Cutoff,
    Firing,
    ModelLike,
    ScoresLike,
    SelectionContext,
    SnapshotLike,
    TriggerInput,
    UpdateContext,
    UpdateDecision,
)
from policies._windows import parts_restored_on_error

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "MAX_COUNT",
    "REGISTRY",
    "Cutoff",
    "Firing",
    "ModelLike",
    "Policy",
    "RowSource",
    "ScoresLike",
    "SelectionContext",
    "SelectionStrategy",
    "SnapshotLike",
    "Trigger",
    "TriggerInput",
    "UpdateContext",
    "UpdateDecision",
    "UpdatePolicy",
    "check_count",
    "check_registered",
    "from_config",
    "sub_triggers",
    "get",
    "register",
]

Kind = Literal["trigger", "selection", "update"]

#: Reads rows back by key for :meth:`Trigger.load_state`: ``rows(keys, columns, version)`` is a
#: :class:`TriggerInput` of those of ``keys`` live in the store as of ``version`` (in any order,
#: with the feature ``columns`` and the labels, ``performance`` needs them); keys erased since (at
#: every version) or never live are left out.
#: A trigger's state names rows by key rather than holding their values, so an erasure removes
#: them from the store and from any trigger resumed after it.
RowSource = Callable[[np.ndarray, Sequence[str], int], TriggerInput]

P = TypeVar("P", bound="Policy")


def _plain(value: Any) -> Any:
    """Convert a parameter value to plain Python data (for configs)."""
    if isinstance(value, Policy):
        return value.to_config()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


class Policy:
    """Base of all policies: parameters, config round trip, clone, repr.

    Subclasses set ``name`` through :func:`register`, store every constructor argument as a
    public attribute of the same name and provide ``_test_params`` for the conformance test.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    #: What the runner must provide before this policy runs: score names as ``"score:<name>"``,
    #: ``"embeddings"`` or ``"model"``.
    requires: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the public attributes of the same name."""
        return {n: getattr(self, n) for n in self._param_names()}

    def to_config(self) -> dict[str, Any]:
        """A plain dict (JSON/YAML-ready) that :meth:`from_config` turns back into this policy."""
        return {"name": self._config_name(), **{k: _plain(v) for k, v in self.params().items()}}

    @classmethod
    def _config_name(cls) -> str:
        """The registered name, else the name of the installed entry point providing the class,
        else its dotted path."""
        if cls.name and REGISTRY.get(cls.kind, {}).get(cls.name) is cls:
            return cls.name
        if not _is_policy_module(cls.__module__):
            ep_name = _entry_point_name(cls)
            if ep_name is not None:
                return ep_name
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def from_config(cls: type[P], config: Mapping[str, Any]) -> P:
        """Build the policy from a dict made by :meth:`to_config` (the ``name`` entry optional)."""
        if not isinstance(config, Mapping):
            raise InvalidArgumentError("config", config, "a mapping of parameter names to values")
        cfg = dict(config)
        name = cfg.pop("name", cls._config_name())
        if name != cls._config_name():
            raise InvalidArgumentError(
                "config.name", name, f"{cls._config_name()!r} for {cls.__name__}"
            )
        allowed = cls._param_names()
        unknown = sorted(set(cfg) - set(allowed))
        if unknown:
            raise InvalidArgumentError(
                f"{cls._config_name()}.{unknown[0]}",
                cfg[unknown[0]],
                f"one of the parameters {allowed}",
            )
        return cls(**cfg)

    def clone(self: P) -> P:
        """A fresh policy with the same parameters and no internal state."""
        return type(self).from_config(self.to_config())

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        """Parameter sets the conformance test builds this policy from."""
        return [{}]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Policy)
        return self.to_config() == other.to_config()

    __hash__ = None  # type: ignore[assignment]


class Trigger(Policy):
    """Decides when to train: fed each new version's delta, returns where it fires.

    Triggers are stateful across versions: feed every delta exactly once, in version order.
    :meth:`fire` refuses a delta that covers a version already fed (a delta fed again would
    count its rows and removals twice) and rows out of ``(version, ts, key)`` order
    (:meth:`TriggerInput.check_order`), both with :class:`InvalidArgumentError` before the
    trigger's state changes.
    ``columns`` names the feature columns a trigger needs in the delta (the runner asks the store
    for them).
    """

    kind: ClassVar[str] = "trigger"
    #: Whether :meth:`fire` reads the delta's labels; built-in triggers that do not set it to
    #: ``False`` so the runner reads deltas without the ``label`` column (user triggers keep
    #: the default and always get labels).
    reads_labels: ClassVar[bool] = True
    #: The trigger this one is part of (see :func:`sub_triggers`), if any.
    _part_of: weakref.ref[Trigger] | None = None
    #: The last version of the deltas fed so far (``None``: none fed, or resumed by load_state).
    _fed_through: int | None = None

    def _parts(self) -> list[Trigger]:
        """The triggers that are part of this one (:func:`sub_triggers`)."""
        return []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_part_of", None)  # a copy belongs to whichever trigger holds it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for t in self._parts():
            t._part_of = weakref.ref(self)

    @property
    def columns(self) -> tuple[str, ...]:
        """Feature columns this trigger reads from each delta."""
        return ()

    def fire(self, delta: Any, model: ModelLike | None = None) -> list[Firing]:
        """Consume one delta and return the firings inside it, ordered by position.

        Parameters
        ----------
        delta:
            A :class:`TriggerInput`, or a store ``Delta`` (converted with
            :meth:`TriggerInput.from_delta` using :attr:`columns`).
        model:
            The current model, for triggers whose ``requires`` holds ``"model"``.

        Raises
        ------
        InvalidArgumentError
            Naming ``delta.version`` when the delta covers a version at or before the last one
            this trigger was fed (the same versions given again); a delta holding nothing at
            the last version fed is taken as no change (``[]``, the state untouched). Naming
            ``delta.ts[i]`` or ``delta.keys[i]`` when its rows are not in ``(version, ts, key)``
            order. Either way the trigger is left as it was. A trigger resumed with
            :meth:`load_state` checks versions from the next delta it is fed on.

        A trigger with parts (a composite, a drift trigger's warm-up trigger) whose part fails
        while firing (a model's error) puts the parts back as they were before re-raising
        (containers copied, arrays and parts kept: no rows copied), so the delta may be fed again.
        """
        if not isinstance(delta, TriggerInput):
            if not hasattr(delta, "inserted"):
                raise InvalidArgumentError("delta", type(delta).__name__,
                                           "a TriggerInput or a store Delta")
            delta = TriggerInput.from_delta(delta, columns=self.columns)
        delta.check_order()
        span = self._admit(delta)
        if span is None:  # nothing, at the last version fed: as if not fed
            return []
        # a part that fails while firing (a model's error, a refused label) leaves the parts
        # that fired before it as they were: the delta may be fed again
        with engine_errors(), parts_restored_on_error(self._parts()):
            out = self._fire(delta, model)
        self._fed_through = span[1]
        return out

    def _admit(self, delta: TriggerInput) -> tuple[int, int] | None:
        """Every refusal of ``delta`` before any state changes, this trigger's and its parts'
        (:meth:`_parts`, which are fed the same delta): feature columns missing, versions fed
        before (see :meth:`_check_new`, whose value it returns). A composite or a trigger with a
        warm-up part is thus refused as a whole, before a part counts the delta."""
        if len(delta):
            missing = [c for c in self.columns if c not in delta.features]
            if missing:
                raise InvalidArgumentError("delta.features", missing[0],
                                           f"the trigger's feature columns {list(self.columns)} "
                                           f"(the delta has {sorted(delta.features)})")
        span = self._check_new(delta)
        if span is not None:
            for part in self._parts():
                part._admit(delta)
        return span

    def _check_new(self, delta: TriggerInput) -> tuple[int, int] | None:
        """The versions ``(first, last)`` ``delta`` covers (its rows' versions and its own),
        refused with :class:`InvalidArgumentError` naming ``delta.version`` when they are not
        all after the versions fed so far; ``None`` for a delta with nothing in it (no rows,
        deletions or erasures) at the last version fed."""
        assert delta.versions is not None
        n = len(delta)
        first = min(int(delta.versions[0]), delta.version) if n else delta.version
        last = max(int(delta.versions[-1]), delta.version) if n else delta.version
        fed = self._fed_through
        if fed is None or first > fed:
            return first, last
        if not n and not delta.deleted.size and not delta.erased.size and delta.version == fed:
            return None
        given = f"{first}..{last}" if first != last else f"{last}"
        raise InvalidArgumentError(
            "delta.version", delta.version, f"a delta of versions after {fed}, the last version this "
            f"trigger consumed (this delta covers versions {given}): a trigger counts every row and "
            f"removal it is fed, so feed each version once, in version order (a fresh trigger: clone())")

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        raise NotImplementedError

    def on_training(self, train_set: TrainSet) -> None:
        """Told the train set of the training a firing started (default: ignored)."""

    def state(self) -> dict[str, Any] | None:
        """The trigger's state as plain data (JSON: numbers, strings, lists, dicts), from which
        :meth:`load_state` makes a fresh trigger of the same parameters continue exactly as this
        one would; ``None`` (the default) when the trigger cannot be resumed that way (its state
        holds rows, a model's view or firings), and must be rebuilt by feeding it every delta
        again. The built-in triggers' states record the parameters that give them meaning under
        ``"params"`` (:meth:`_state_params`), which :meth:`load_state` checks."""
        return None

    def _state_params(self) -> dict[str, Any]:
        """The parameters a built-in trigger's state records (``"params"``): its configuration
        (:meth:`to_config`); a composite's own (its parts' states record theirs)."""
        return self.to_config()

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take the state :meth:`state` returned (a fresh trigger, fed nothing yet); refused with
        :class:`InvalidArgumentError` naming ``state`` when it is not this trigger's (naming
        ``state.params.<name>`` when it was saved by a trigger whose parameter ``<name>`` differs
        from this one's), leaving the trigger as it was. A state that names rows by key (``data_drift``'s windows,
        ``performance``'s pending rows) reads them back with ``rows`` (see :data:`RowSource`)."""
        raise InvalidArgumentError("state", type(self).__name__, "a trigger whose state() is not None")


class SelectionStrategy(Policy):
    """Decides what to train on: maps a :class:`SelectionContext` to a ``TrainSet``."""

    kind: ClassVar[str] = "selection"
    #: ``True`` when a selection changes what later ones select (GDumb's memory): a pipeline
    #: resumed after a restart then selects again for the trainings it adopts
    stateful: ClassVar[bool] = False

    def select(self, ctx: SelectionContext) -> TrainSet:
        """Select the train set of one training.

        Parameters
        ----------
        ctx:
            The snapshot (with the firing's cutoff), scores, history and seed.
        """
        if not isinstance(ctx, SelectionContext):
            raise InvalidArgumentError("ctx", type(ctx).__name__, "a SelectionContext")
        with engine_errors():
            return self._select(ctx)

    def _select(self, ctx: SelectionContext) -> TrainSet:
        raise NotImplementedError


class UpdatePolicy(Policy):
    """Decides how to update the model: fine-tune the current one or retrain."""

    kind: ClassVar[str] = "update"

    def decide(self, ctx: UpdateContext) -> UpdateDecision:
        """Decide the initial weights (and optionally the selection scope) of one training."""
        if not isinstance(ctx, UpdateContext):
            raise InvalidArgumentError("ctx", type(ctx).__name__, "an UpdateContext")
        with engine_errors():
            return self._decide(ctx)

    def _decide(self, ctx: UpdateContext) -> UpdateDecision:
        raise NotImplementedError


BASES.update(trigger=Trigger, selection=SelectionStrategy, update=UpdatePolicy)


def register(name: str) -> Any:
    """Class decorator: register a policy class under ``name`` in its kind's registry."""

    def deco(cls: type[P]) -> type[P]:
        kind = cls.kind
        _check_kind(kind)
        if name in REGISTRY[kind] and REGISTRY[kind][name] is not cls:
            raise InvalidArgumentError("name", name, f"a {kind} name not yet registered")
        cls.name = name
        REGISTRY[kind][name] = cls
        return cls

    return deco


#: The largest value of a count parameter (a history length, a memory size): larger ones would
#: not fit the int64 arithmetic of the engine and NumPy.
MAX_COUNT = 2**62


def check_count(name: str, value: Any, lo: int, hi: int = MAX_COUNT, hi_text: str = "2**62") -> int:
    """``value`` as an int ``>= lo`` (the usual check), then at most ``hi``: a larger count
    (say ``history=10**30``) is refused here instead of overflowing the engine or NumPy later."""
    n = check_int(name, value, lo)
    if n > hi:
        raise InvalidArgumentError(name, value, f"an integer in [{lo}, {hi_text}]")
    return n


def from_config(kind: str, config: Mapping[str, Any] | Policy, *, arg: str = "config") -> Any:
    """Build a policy of ``kind`` from a plain dict ``{"name": ..., **params}``.

    A policy instance is returned unchanged (after a kind check), so nested parameters accept
    either form. ``arg``: the argument a bad ``config`` is reported as (a nested parameter's
    name).

    Example
    -------
    >>> from policies.base import from_config
    >>> from_config("update", {"name": "periodic_retrain", "every": 4}).every
    4
    """
    base = _check_kind(kind)
    if isinstance(config, Policy):
        if not isinstance(config, base):
            raise InvalidArgumentError(arg, config, f"a {base.__name__}")
        return config
    if not isinstance(config, Mapping) or "name" not in config:
        raise InvalidArgumentError(arg, config, f"a {base.__name__} or a mapping with a 'name' entry")
    cls = get(kind, config["name"])
    cfg = dict(config)
    cfg["name"] = cls._config_name()
    return cls.from_config(cfg)


def sub_triggers(owner: Trigger, parts: Sequence[tuple[str, Mapping[str, Any] | Trigger]]) -> list[Trigger]:
    """``(arg, config)`` pairs built as the parts of ``owner`` (a composite's members, a warm-up
    trigger); call it last in ``owner``'s constructor, once every other argument is checked,
    and list them in ``owner._parts()``.

    Triggers keep state across deltas, so one instance can be part of one trigger only: an
    instance already part of another (or given twice) would see every delta twice and fire at
    the wrong rows. It is refused (:class:`InvalidArgumentError` naming its ``arg``) before any
    part is taken; pass ``t.clone()`` or a config instead.

    Example
    -------
    >>> from policies import AnyOf, DataAmount
    >>> t = DataAmount(every=3)
    >>> AnyOf(triggers=[t, t])
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid triggers[1]=DataAmount(every=3): expected a trigger that is not part of another one ...
    """
    built = [(arg, from_config("trigger", config, arg=arg)) for arg, config in parts]
    taken: set[int] = set()
    for arg, t in built:
        held = t._part_of
        if id(t) in taken or (held is not None and held() is not None):
            raise InvalidArgumentError(arg, t, "a trigger that is not part of another one "
                                       "(triggers keep state; pass t.clone() or a config)")
        taken.add(id(t))
    for _, t in built:
        t._part_of = weakref.ref(owner)
    return [t for _, t in built]
