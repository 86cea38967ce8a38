"""Records and protocols policies exchange with the runner, the store and the training API.

``TriggerInput`` is the delta a trigger consumes, ``Firing`` what it returns;
``SelectionContext`` is what a selection strategy reads; ``UpdateContext`` / ``UpdateDecision``
are the input and output of an update policy. ``SnapshotLike``, ``ScoresLike`` and ``ModelLike``
(:mod:`policies._protocols`) name the few methods policies need of a store snapshot, the store's
scores and a model.

Positions
---------
A firing's data cutoff is ``(version, position)``: the training may use every row inserted at
versions below ``version`` plus the first ``position`` rows of ``version``'s delta, whose inserted
rows are ordered by ``(ts, key)``. ``position`` therefore counts rows (it is an exclusive end):
a trigger that fires "after the 3rd sample" of a version fires at position 3; position 0 means
"none of this version's rows". The keys past the cutoff are ``delta.keys_after(firing)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from modyn_store.core._validate import as_keys, check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._columns import column_to_numpy, datetimes_to_ns
from policies._protocols import ModelLike, ScoresLike, SnapshotLike

__all__ = [
    "SEED_MAX",
    "Cutoff",
    "Firing",
    "ModelLike",
    "ScoresLike",
    "SelectionContext",
    "SnapshotLike",
    "TriggerInput",
    "UpdateContext",
    "UpdateDecision",
    "check_seed",
]

_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Cutoff:
    """A data cutoff that survives later deletions: every row of versions below ``version``,
    plus the rows of ``version`` ordered before ``(ts, key)`` (all of them when ``ts`` is None).

    ``ts`` and ``key`` are those of the first row of ``version`` past the cutoff; ``ts`` is in
    the unit of :class:`TriggerInput` (int64 nanoseconds for datetimes).

    Example
    -------
    >>> Cutoff(3).includes(np.array([3, 3]), np.array([5, 9]), np.array([1, 2])).tolist()
    [True, True]
    >>> Cutoff(3, 9, 2).includes(np.array([2, 3, 3]), np.array([99, 5, 9]), np.array([7, 1, 2])).tolist()
    [True, True, False]
    """

    version: int
    ts: int | float | None = None
    key: int | None = None

    def includes(self, versions: np.ndarray, ts: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Which rows (given their inserting version, event time and key) are within the cutoff."""
        inside = versions < self.version
        same = versions == self.version
        if self.ts is None:
            return inside | same
        before = (ts < self.ts) | ((ts == self.ts) & (keys < int(self.key or 0)))
        return inside | (same & before)


@dataclass(frozen=True, eq=False)
class Firing:
    """One trigger firing and its data cutoff ``(version, position)`` (see the module notes).

    Attributes
    ----------
    version, position:
        The data cutoff: rows of earlier versions plus the first ``position`` rows of ``version``.
    reason:
        Why it fired, in words.
    statistic:
        The deciding number (a drift distance, a metric, a share), if any.
    trigger:
        The registered name of the trigger that fired.
    seen:
        Inserted rows the trigger consumed up to the cutoff, over all deltas so far.
    causes:
        For composites: the sub-trigger firings that made it fire.
    boundary:
        ``(ts, key)`` of the first row of ``version`` past the cutoff, ``None`` when the cutoff
        includes every row of ``version``; see :attr:`cutoff`.
    """

    version: int
    position: int
    reason: str
    statistic: float | None = None
    trigger: str = ""
    seen: int = 0
    causes: tuple[Firing, ...] = ()
    boundary: tuple[int | float, int] | None = None

    @property
    def cutoff(self) -> Cutoff:
        """The cutoff as a :class:`Cutoff` (stable under later deletions and erasures); pass it
        to later selections in ``SelectionContext.trigger_cutoffs``."""
        if self.boundary is None:
            return Cutoff(self.version)
        return Cutoff(self.version, self.boundary[0], int(self.boundary[1]))

    def walk(self) -> Iterator[Firing]:
        """This firing, then its causes, depth first."""
        yield self
        for c in self.causes:
            yield from c.walk()


@dataclass(frozen=True, eq=False)
class TriggerInput:
    """The inserted rows (in ``(version, ts, key)`` order) and removed keys of one delta.

    :meth:`Trigger.fire` refuses rows in another order (:meth:`check_order`); a
    :data:`~policies.base.RowSource`'s may come in any order (looked up by key, never fired).

    Example
    -------
    >>> import numpy as np
    >>> d = TriggerInput(version=2, keys=np.array([4, 5]), ts=np.array([10, 11]))
    >>> len(d), d.cutoff(1)
    (2, (2, 1))
    """

    version: int
    keys: np.ndarray
    ts: np.ndarray
    labels: np.ndarray | None = None
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    deleted: np.ndarray = field(default_factory=lambda: _EMPTY)
    erased: np.ndarray = field(default_factory=lambda: _EMPTY)
    versions: np.ndarray | None = None
    ts_is_datetime: bool = False

    def __post_init__(self) -> None:
        # keys by the store's rules (a cast would truncate 1.7 to 1 or wrap 2**64 - 1 to -1:
        # another row's key, so a firing's cutoff, keys_after and removals would name other rows)
        keys = np.ascontiguousarray(as_keys(self.keys, name="keys"))
        n = keys.size
        version = check_int("version", self.version, 0)
        ts = np.asarray(self.ts)
        if ts.shape != (n,):
            raise InvalidArgumentError("ts", ts.shape, f"an array of shape ({n},) aligned with keys")
        if np.issubdtype(ts.dtype, np.datetime64):
            ts = datetimes_to_ns(ts, "ts")
            object.__setattr__(self, "ts_is_datetime", True)
        versions = (
            np.full(n, version, dtype=np.int64)
            if self.versions is None
            else np.ascontiguousarray(as_keys(self.versions, name="versions"))  # checked as keys are
        )
        if versions.shape != (n,) or (n and np.any(np.diff(versions) < 0)):
            raise InvalidArgumentError("versions", versions.shape, f"{n} non-decreasing versions")
        if self.labels is not None and np.shape(self.labels)[0] != n:
            raise InvalidArgumentError("labels", np.shape(self.labels), f"{n} labels")
        for name, arr in self.features.items():
            if np.shape(arr)[0] != n:
                raise InvalidArgumentError(f"features[{name!r}]", np.shape(arr), f"{n} rows")
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "ts", ts)
        object.__setattr__(self, "versions", versions)
        object.__setattr__(self, "deleted", as_keys(self.deleted, name="deleted"))
        object.__setattr__(self, "erased", as_keys(self.erased, name="erased"))
        object.__setattr__(self, "version", version)

    def __len__(self) -> int:
        return int(self.keys.size)

    def check_order(self) -> None:
        """Refuse rows out of ``(version, ts, key)`` order, or a row twice in one version, with
        :class:`InvalidArgumentError` naming the first such row (``delta.ts[i]``, or
        ``delta.keys[i]`` at a tie in event time); a NaN event time sorts last in its version, as
        in ``Store.delta``. :meth:`Trigger.fire` calls it: positions and cutoffs name rows in this
        order (see the module notes). The rows are not sorted here, which would move the
        positions the caller reads back. One vectorized pass, skipped once a delta passed.

        >>> TriggerInput(version=1, keys=np.array([1, 2]), ts=np.array([7, 3])).check_order()
        Traceback (most recent call last):
        ...
        modyn_store.core.errors.InvalidArgumentError: invalid delta.ts[1]=3: expected rows in (version, ts, key) order, each row once, ...
        """
        if self.__dict__.get("_ordered", False) or len(self) < 2:
            return
        assert self.versions is not None
        v, ts, k = self.versions, self.ts, self.keys
        with np.errstate(invalid="ignore"):
            later, tie = ts[1:] > ts[:-1], ts[1:] == ts[:-1]
        if ts.dtype.kind in "fc":  # NaN after every other event time of its version
            nan = np.isnan(ts)
            later, tie = later | (nan[1:] & ~nan[:-1]), tie | (nan[1:] & nan[:-1])
        ok = (v[1:] != v[:-1]) | later | (tie & (k[1:] > k[:-1]))
        if not bool(ok.all()):
            i = int(np.argmin(ok)) + 1
            name, value = (f"delta.keys[{i}]", int(k[i])) if tie[i - 1] else (f"delta.ts[{i}]", ts[i].item())
            raise InvalidArgumentError(
                name, value, f"rows in (version, ts, key) order, each row once, as Store.delta returns "
                f"them: row {i} (ts={ts[i].item()!r}, key={int(k[i])}) of version {int(v[i])} comes after "
                f"row {i - 1} (ts={ts[i - 1].item()!r}, key={int(k[i - 1])}); sort all fields alike")
        object.__setattr__(self, "_ordered", True)

    @classmethod
    def from_delta(cls, delta: Any, *, columns: Sequence[str] = ()) -> TriggerInput:
        """Convert a store ``Delta`` (``inserted`` table with key, ts, label, version columns)."""
        table: pa.Table = delta.inserted
        names = set(table.column_names)
        missing = [c for c in ("key", "ts", *columns) if c not in names]
        if missing:
            raise InvalidArgumentError("delta.inserted", missing[0], f"one of {sorted(names)}")
        ts_type = table.schema.field("ts").type
        return cls(
            version=int(delta.end),
            keys=column_to_numpy(table.column("key")),
            ts=column_to_numpy(table.column("ts"), name="ts"),
            labels=column_to_numpy(table.column("label")) if "label" in names else None,
            features={c: column_to_numpy(table.column(c)) for c in columns},
            deleted=np.asarray(delta.deleted, dtype=np.int64),
            erased=np.asarray(delta.erased, dtype=np.int64),
            versions=column_to_numpy(table.column("version")) if "version" in names else None,
            ts_is_datetime=pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type),
        )

    def cutoff(self, end: int) -> tuple[int, int]:
        """The ``(version, position)`` cutoff that includes the first ``end`` rows of this delta."""
        n = len(self)
        if not 0 <= end <= n:
            raise InvalidArgumentError("end", end, f"an integer in [0, {n}]")
        if n == 0:
            return self.version, 0
        assert self.versions is not None
        if end == 0:
            return int(self.versions[0]), 0
        v = int(self.versions[end - 1])
        first = int(np.searchsorted(self.versions, v, side="left"))
        return v, end - first

    def firing(self, end: int, reason: str, *, trigger: str, seen: int,
               statistic: float | None = None) -> Firing:
        """A :class:`Firing` whose cutoff includes the first ``end`` rows of this delta."""
        v, pos = self.cutoff(end)
        return Firing(version=v, position=pos, reason=reason, statistic=statistic,
                      trigger=trigger, seen=seen, boundary=self.boundary(end))

    def boundary(self, end: int) -> tuple[int | float, int] | None:
        """``(ts, key)`` of row ``end`` if it belongs to the cutoff's version, else ``None``."""
        v, _ = self.cutoff(end)
        assert self.versions is not None
        if end >= len(self) or int(self.versions[end]) != v:
            return None
        return self.ts[end].item(), int(self.keys[end])

    def keys_after(self, firing: Firing) -> np.ndarray:
        """Keys of this delta past ``firing``'s cutoff (to exclude from its selection)."""
        assert self.versions is not None
        first = int(np.searchsorted(self.versions, firing.version, side="left"))
        return self.keys[first + firing.position:].copy()

    def feature_matrix(self, columns: Sequence[str], start: int = 0,
                       end: int | None = None) -> np.ndarray:
        """Rows ``[start, end)`` of ``columns`` as one float64 matrix (vector columns flattened)."""
        parts = []
        for c in columns:
            if c not in self.features:
                raise InvalidArgumentError("columns", c, f"one of {sorted(self.features)}")
            a = np.asarray(self.features[c][start:end], dtype=np.float64)
            parts.append(a.reshape(a.shape[0], -1))
        return np.concatenate(parts, axis=1) if parts else np.empty((0, 0))

    def __repr__(self) -> str:
        return (f"TriggerInput(version={self.version}, inserted={len(self)}, "
                f"deleted={self.deleted.size}, erased={self.erased.size})")


#: the largest selection seed (seeds are 63-bit, like a training's ``TrainConfig.seed``)
SEED_MAX = 2**63 - 1


def check_seed(name: str, value: Any) -> int:
    """``value`` as a seed: an integer in ``[0, 2**63 - 1]`` (bools and floats refused)."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or not 0 <= int(value) <= SEED_MAX:
        raise InvalidArgumentError(name, value, "an integer in [0, 2**63 - 1]")
    return int(value)


@dataclass(frozen=True, eq=False)
class SelectionContext:
    """Everything a selection strategy may read for one training.

    Attributes
    ----------
    snapshot:
        The store snapshot at the firing's version (``Store.as_of(firing.version)``).
    scores:
        The store's scores (``Store.scores``), or ``None``.
    trigger_index:
        0 for the first training, 1 for the second, ...
    trigger_cutoffs:
        Data cutoffs of the past trainings, oldest first (not including this one):
        ``Firing.cutoff`` records, or plain versions (a version's rows all included).
    history:
        Train sets of the past trainings, oldest first.
    seed:
        Seed of this selection, an integer in ``[0, 2**63 - 1]``; the same context and seed give
        the same train set.
    excluded:
        Live keys of the snapshot past the firing's position (``TriggerInput.keys_after``).
    candidates:
        Sorted keys to restrict the selection to (set by composition), or ``None``.
    computed_scores:
        Scores from a scoring pass, ``name -> (keys, values)`` or ``name -> callable`` returning
        an iterator of ``(keys, values)`` batches; they take precedence over ``scores``. Keys of a
        ``(keys, values)`` pair that are not live in ``snapshot`` (deleted, erased, or inserted
        after its version) are dropped like ``excluded`` ones; a streamed source is trusted to
        yield keys of the snapshot, as a scoring pass over it does.
    embed:
        Maps keys to embeddings (``[n, d]`` float) with the current model, if provided.
    label_column, batch_size:
        The label column name and the streaming batch size (an integer in ``[1, 2**32 - 1]``,
        the store's bound on a read's batch).
    scores_version:
        The store version to read ``scores`` at (``None``: the snapshot's version). Set it to
        the version a scoring pass wrote its scores at, when that is after the snapshot.
    """

    snapshot: SnapshotLike
    scores: ScoresLike | None = None
    trigger_index: int = 0
    trigger_cutoffs: tuple[Cutoff | int, ...] = ()
    history: tuple[TrainSet, ...] = ()
    seed: int = 0
    excluded: np.ndarray = field(default_factory=lambda: _EMPTY)
    candidates: np.ndarray | None = None
    computed_scores: Mapping[str, Any] = field(default_factory=dict)
    embed: Callable[[np.ndarray], np.ndarray] | None = None
    label_column: str = "label"
    batch_size: int = 1 << 16
    scores_version: int | None = None

    def __post_init__(self) -> None:
        from modyn_store.core._validate import as_keys, check_batch_size, check_int, check_int_or_none

        object.__setattr__(self, "seed", check_seed("seed", self.seed))
        object.__setattr__(self, "trigger_index", check_int("trigger_index", self.trigger_index, 0))
        # keys by the store's rules: a float key is refused, not truncated onto another key
        object.__setattr__(self, "excluded", np.sort(as_keys(self.excluded, name="excluded")))
        if self.candidates is not None:
            object.__setattr__(self, "candidates", np.sort(as_keys(self.candidates, name="candidates")))
        # the store's read bound: a larger size was refused only by the first read
        object.__setattr__(self, "batch_size", check_batch_size(self.batch_size))
        if self.embed is not None and not callable(self.embed):
            raise InvalidArgumentError("embed", type(self.embed).__name__, "None or a callable keys -> embeddings")
        object.__setattr__(self, "scores_version",
                           check_int_or_none("scores_version", self.scores_version, 0))
        if not isinstance(self.label_column, str) or not self.label_column:
            raise InvalidArgumentError("label_column", self.label_column, "a column name")
        cuts: list[Cutoff] = []
        for i, c in enumerate(self.trigger_cutoffs):
            if not isinstance(c, Cutoff):  # a store version
                c = Cutoff(check_int(f"trigger_cutoffs[{i}]", c, 0))
            if cuts and _cutoff_order(c) < _cutoff_order(cuts[-1]):
                raise InvalidArgumentError(f"trigger_cutoffs[{i}]", c, f"cutoffs oldest first "
                                           f"(this one is before trigger_cutoffs[{i - 1}]={cuts[-1]})")
            cuts.append(c)
        object.__setattr__(self, "trigger_cutoffs", tuple(cuts))
        history = tuple(self.history)
        for i, h in enumerate(history):
            if not isinstance(h, TrainSet):
                raise InvalidArgumentError(f"history[{i}]", type(h).__name__, "a TrainSet")
        object.__setattr__(self, "history", history)
        if not isinstance(self.computed_scores, Mapping):
            raise InvalidArgumentError("computed_scores", type(self.computed_scores).__name__,
                                       "a mapping of score name -> (keys, values) or a callable")
        for name, src in self.computed_scores.items():
            # a pair: a tuple or list, or an array of two rows (``np.vstack([keys, values])``)
            pair = isinstance(src, Sequence) and not isinstance(src, (str, bytes)) or \
                isinstance(src, np.ndarray) and src.ndim >= 1
            if not callable(src) and (not pair or len(src) != 2):
                raise InvalidArgumentError(f"computed_scores[{name!r}]", type(src).__name__,
                                           "a (keys, values) pair or a callable returning an "
                                           "iterator of such batches")

    @property
    def version(self) -> int:
        """The snapshot's store version (the train set's version)."""
        return int(self.snapshot.version)

    def replace(self, **changes: Any) -> SelectionContext:
        """A copy with some fields changed."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields.update(changes)
        return SelectionContext(**fields)


def _cutoff_order(c: Cutoff) -> tuple[int, int, int | float, int]:
    """Sort key of a cutoff: by version, then a cutoff inside the version by ``(ts, key)``
    before the end of the version (``ts`` None)."""
    if c.ts is None:
        return (int(c.version), 1, 0, 0)
    return (int(c.version), 0, c.ts, int(c.key or 0))


@dataclass(frozen=True, eq=False)
class UpdateContext:
    """What the runner tells an update policy before each training.

    Attributes
    ----------
    trigger_index:
        0 for the first training, 1 for the second, ...
    firing:
        The firing that started this training (with its statistic and causes), if any.
    erased_trained_keys:
        Keys erased since the last full retrain that were in any train set since then.
    training_seconds:
        Training seconds spent so far by the pipeline.
    current_model:
        Id of the current model, or ``None`` before the first training.
    last_retrain_index:
        Trigger index of the last full retrain, or ``None`` if there was none.
    last_retrain_seconds:
        Training seconds of the last full retrain, or ``None``.
    """

    trigger_index: int
    firing: Firing | None = None
    erased_trained_keys: np.ndarray = field(default_factory=lambda: _EMPTY)
    training_seconds: float = 0.0
    current_model: str | None = None
    last_retrain_index: int | None = None
    last_retrain_seconds: float | None = None

    def __post_init__(self) -> None:
        # checked, not cast: int(1.7) would be trigger 1, a float key another row's key, and a
        # NaN duration compares false with every budget (a cost budget would never retrain)
        object.__setattr__(self, "trigger_index", check_int("trigger_index", self.trigger_index, 0))
        if self.last_retrain_index is not None:
            object.__setattr__(self, "last_retrain_index",
                               check_int("last_retrain_index", self.last_retrain_index, 0))
        object.__setattr__(self, "erased_trained_keys",
                           as_keys(self.erased_trained_keys, name="erased_trained_keys"))
        object.__setattr__(self, "training_seconds", _seconds("training_seconds", self.training_seconds))
        if self.last_retrain_seconds is not None:
            object.__setattr__(self, "last_retrain_seconds",
                               _seconds("last_retrain_seconds", self.last_retrain_seconds))


def _seconds(name: str, value: Any) -> float:
    """A duration in seconds: a finite real number >= 0 (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise InvalidArgumentError(name, value, "a finite number of seconds >= 0")
    return float(value)


@dataclass(frozen=True)
class UpdateDecision:
    """How one training starts: ``mode`` and the checkpoint it starts from.

    ``base`` is the model id to start from: the current model for a fine-tune; for a retrain
    ``None`` (a fresh initialisation) or a named base checkpoint. ``selection_scope`` names a
    registered selection strategy the runner should use for this training instead of the
    pipeline's default (``None``: the default).
    """

    mode: Literal["finetune", "retrain"]
    base: str | None
    reason: str
    selection_scope: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("finetune", "retrain"):
            raise InvalidArgumentError("mode", self.mode, "one of 'finetune', 'retrain'")
        if self.mode == "finetune" and self.base is None:
            raise InvalidArgumentError("base", None, "the id of the model to fine-tune")
