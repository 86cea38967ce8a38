"""``Performance``: fire when the current model does badly on newly arrived labelled data."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine._search import union_keys
from modyn_store.core._validate import check_bool, check_choice, check_float, check_float_or_none, check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._mean_gap import above_mean
from policies._options import only_with
from policies._windows import restored_on_error, rows_by_key
from policies.base import Firing, ModelLike, RowSource, Trigger, TriggerInput, check_count, register
from policies._state_shape import PARAMS, is_count, is_finite, is_keys, own_state

__all__ = ["Performance"]

DECISIONS = ("threshold", "rolling_average", "avoidable_misclassifications")


@register("performance")
class Performance(Trigger):
    """Evaluate the current model on every ``every`` newly arrived labelled samples.

    ``threshold``: fire when accuracy < ``threshold``. ``rolling_average``: fire when accuracy
    < mean of the last ``history`` accuracies - ``threshold`` (the allowed deviation), compared
    as the decimals the numbers print as (an accuracy of 0.6 after one of 0.9 is not below
    ``0.9 - 0.3``, which float64 gives as ``0.6000000000000001``).
    ``avoidable_misclassifications``: expect the accuracy ``expected`` (``None``: the first
    evaluation after each training) and fire when the cumulative misclassifications beyond the
    expected ones, ``sum(wrong - (1 - expected) * n)`` over evaluations since the last training,
    exceed ``threshold``. Labels are class indices into the model's logits (a fractional label is
    refused); rows without a label (negative or NaN) are skipped. A label beyond the logits (a
    class the model has not seen) and a row whose logits hold a NaN count as misclassified. With no model yet and ``bootstrap``, the first evaluation point
    fires (so a pipeline gets its first model); without ``bootstrap`` it stays quiet.

    The labelled rows waiting for the next evaluation are rows live in the store: those a delta
    deletes or erases leave them when it is fed (before its own rows are added; a row the delta
    both inserts and deletes, after them), so an evaluation comes at the ``every``-th labelled
    row still live, later than it would have without the removal; an evaluation already made is
    kept (see :meth:`state`).

    Parameters
    ----------
    columns:
        Feature columns the model reads (``model.logits({column: rows})``).
    every:
        Labelled samples per evaluation.
    decision, threshold, history, expected, bootstrap:
        See above; ``history`` in ``[1, 2**62]`` (``policies.base.MAX_COUNT``); ``expected`` with
        another decision than ``avoidable_misclassifications`` is refused (it would be ignored),
        as is a ``history`` other than the default 10 with another decision than
        ``rolling_average`` (:class:`InvalidArgumentError` naming it and that decision).

    Example
    -------
    >>> import numpy as np
    >>> from policies import Performance, TriggerInput
    >>> class Sign:  # predicts class 1 for x > 0
    ...     def embed(self, f): return f["x"][:, None]
    ...     def logits(self, f): return np.stack([-f["x"], f["x"]], axis=1)
    >>> x = np.array([1.0, 2, 3, 4, -1, -2, -3, -4])
    >>> y = np.array([1, 1, 1, 1, 1, 1, 1, 1])
    >>> t = Performance(columns=["x"], every=4, threshold=0.8)
    >>> d = TriggerInput(version=1, keys=np.arange(8), ts=np.arange(8), labels=y, features={"x": x})
    >>> [(f.position, f.statistic) for f in t.fire(d, model=Sign())]
    [(8, 0.0)]
    """

    def __init__(self, columns: Sequence[str] = (), *, every: int = 1000,
                 decision: str = "threshold", threshold: float = 0.8, history: int = 10,
                 expected: float | None = None, bootstrap: bool = True) -> None:
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise InvalidArgumentError("columns", columns, "a list of column names")
        if not columns:
            raise InvalidArgumentError("columns", columns, "at least one feature column")
        self._columns = tuple(columns)
        self.every = check_int("every", every, 1)
        self.decision = check_choice("decision", decision, DECISIONS)
        hi = None if decision == "avoidable_misclassifications" else 1.0
        self.threshold = check_float("threshold", threshold, 0.0, hi)
        # read by decision='rolling_average' only: another value with another decision is refused
        self.history = only_with(Performance.__init__, "history", check_count("history", history, 1), "decision",
                                 decision, ("rolling_average",))
        self.expected = check_float_or_none("expected", expected, 0.0, 1.0)
        if expected is not None and decision != "avoidable_misclassifications":
            # read by that decision only: with another one the accuracy given would be ignored
            raise InvalidArgumentError("expected", expected, f"None with decision={decision!r} (the expected "
                                       "accuracy is that of decision='avoidable_misclassifications')")
        self.bootstrap = check_bool("bootstrap", bootstrap)
        # labelled rows waiting for the next evaluation: (features, labels, keys) chunks
        self._pending: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._version = 0  # the last version fed: state() names the pending rows as of it
        self._past: deque[float] = deque(maxlen=self.history)
        self._expect: float | None = self.expected
        self._avoidable = 0.0
        self._seen = 0
        self._bootstrapped = False

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"columns": ["x"], "every": 10, "threshold": 0.6},
                {"columns": ["x"], "every": 10, "decision": "avoidable_misclassifications",
                 "threshold": 3.0}]

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"model"})

    def on_training(self, train_set: TrainSet) -> None:
        self._expect = self.expected
        self._avoidable = 0.0
        self._past.clear()

    def _accuracy(self, model: ModelLike, feats: dict[str, np.ndarray],
                  labels: np.ndarray) -> tuple[float, int, int]:
        logits = np.asarray(model.logits(feats))
        n = labels.size
        if logits.dtype.kind not in "biuf":
            raise InvalidArgumentError("model.logits", str(logits.dtype), "numeric logits")
        if logits.ndim != 2 or logits.shape[0] != n or logits.shape[1] == 0:
            raise InvalidArgumentError("model.logits", logits.shape,
                                       f"[{n}, classes] logits (one row per sample, >= 1 class)")
        pred = np.argmax(logits, axis=1)
        # a row with a NaN logit has no prediction: a miss (argmax would say class 0)
        wrong = int(np.count_nonzero((pred != labels) | np.isnan(logits).any(axis=1)))
        # (n - wrong) / n is the accuracy correctly rounded; 1 - wrong / n can fall an ulp below
        # it (2 of 10 right gave 0.19999999999999996, "below" a threshold of 0.2)
        return (n - wrong) / n, wrong, int(n)

    def _decide(self, acc: float, wrong: int, n: int) -> bool:
        thr = self.threshold
        if self.decision == "threshold":
            return acc < thr
        if self.decision == "rolling_average":
            # in decimals, as the threshold decision: 0.6 after 0.9 is not below 0.9 - 0.3
            fired = bool(self._past) and above_mean(acc, self._past, -thr) < 0
            self._past.append(acc)
            return fired
        if self._expect is None:
            self._expect = acc
            return False
        expected_wrong = (1.0 - self._expect) * n
        whole = round(expected_wrong)
        if abs(expected_wrong - whole) <= 8.0 * n * 2.0**-53:
            # within the rounding of 1 - expect and the product, a whole number of misses is that
            # number: an accuracy of 0.9 on 10 rows expects 1 miss, not 0.9999999999999998 (which
            # made 1 miss "avoidable" by 2e-16, above a threshold of 0)
            expected_wrong = float(whole)
        self._avoidable += wrong - expected_wrong
        return self._avoidable > thr

    def _drop(self, gone: np.ndarray) -> None:
        """Take deleted or erased rows out of the rows waiting for the next evaluation (they hold
        rows live in the store; a restart reads them back by key, see :meth:`state`)."""
        if gone.size == 0 or not any(np.isin(p[2], gone).any() for p in self._pending):
            return
        kept = []
        for feats, labels, keys in self._pending:
            keep = ~np.isin(keys, gone)
            if keep.any():
                kept.append(({c: v[keep] for c, v in feats.items()}, labels[keep], keys[keep]))
        self._pending = kept
        self._pending_rows = sum(int(p[2].size) for p in self._pending)

    def state(self) -> dict[str, Any]:
        """The parameters (``"params"``: ``every``, ``decision``, ``threshold``, ``history``,
        ``expected`` and the others, which the counts below depend on), the labelled rows waiting
        for the next evaluation as their keys (never feature values
        or labels: a restart reads the rows back from the store, where erased ones are gone) with
        the last version fed, the samples fed, whether the bootstrap firing came, and the past
        evaluations as numbers: the accuracies of ``rolling_average``, the expected accuracy and
        the avoidable misclassifications so far of ``avoidable_misclassifications``."""
        return {PARAMS: self._state_params(), "version": int(self._version),
                "pending": [int(k) for p in self._pending for k in p[2]],
                "seen": int(self._seen), "bootstrapped": bool(self._bootstrapped),
                "past": [float(a) for a in self._past],
                "expect": None if self._expect is None else float(self._expect), "avoidable": float(self._avoidable)}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take :meth:`state`'s data; the pending rows, labels included, are read with ``rows`` as
        of the state's version (rows erased since are left out, as :meth:`fire` leaves out the
        rows a delta deletes or erases). A state saved by a trigger with other parameters (or
        without them) is refused, naming ``state.params.<name>`` (``state.params``)."""
        state = own_state(state, self._state_params(), "a performance trigger's state")
        if not _state_ok(state, int(self.every), int(self.history)):
            raise InvalidArgumentError("state", state, (
                f"a performance trigger's state: {{'params': its parameters, 'version', 'seen': int >= 0, "
                f"'pending': [key] (distinct, fewer "
                f"than every={self.every}), 'bootstrapped': bool, 'past': [accuracy in [0, 1]] (at most history="
                f"{self.history}), 'expect': accuracy in [0, 1] or None, 'avoidable': a finite number}}"))
        want = np.asarray(state["pending"], np.int64)
        if want.size and rows is None:
            raise InvalidArgumentError("rows", None, "a row source (policies.base.RowSource): the state names the "
                                                     "pending labelled rows by key")
        pending: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        if want.size and rows is not None:
            read = rows(want, self._columns, int(state["version"]))
            idx, hit = rows_by_key(read.keys, want)
            lab = None if read.labels is None else np.asarray(read.labels, np.float64)[idx]
            if idx.size and (lab is None or not (np.isfinite(lab) & (lab >= 0) & (lab == np.floor(lab))).all()):
                raise InvalidArgumentError("rows", "labels None" if lab is None else f"labels {lab[:5].tolist()}",
                                           "a row source that reads the labels of the pending rows (whole-number "
                                           "class indices: they were labelled)")
            if idx.size:
                pending = [({c: np.asarray(read.features[c])[idx] for c in self._columns},
                            np.asarray(lab).astype(np.int64), want[hit])]
        self._pending, self._pending_rows = pending, int(sum(p[2].size for p in pending))
        self._version, self._seen = int(state["version"]), int(state["seen"])
        self._bootstrapped = bool(state["bootstrapped"])
        self._past = deque((float(a) for a in state["past"]), maxlen=self.history)
        self._expect = None if state["expect"] is None else float(state["expect"])
        self._avoidable = float(state["avoidable"])

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        # a failing model (or bad input) leaves the trigger as it was: the rows it consumed so
        # far in this delta are given back
        with restored_on_error(self, "_pending", "_pending_rows", "_past", "_expect", "_avoidable", "_seen",
                               "_bootstrapped", "_version"):
            return self._consume(delta, model)

    def _consume(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        n = len(delta)
        if n and delta.labels is None:
            raise InvalidArgumentError("delta.labels", None, "labels for a performance trigger")
        if n and not np.issubdtype(np.asarray(delta.labels).dtype, np.number):
            raise InvalidArgumentError("delta.labels", np.asarray(delta.labels).dtype,
                                       "numeric class indices into the model's logits")
        out: list[Firing] = []
        labelled = np.zeros(n, dtype=bool)
        if n:
            lab = np.asarray(delta.labels, dtype=np.float64)
            labelled = np.isfinite(lab) & (lab >= 0)
            odd = np.flatnonzero(labelled & (lab != np.floor(lab)))
            if odd.size:  # checked before any state changes
                raise InvalidArgumentError(f"delta.labels[{int(odd[0])}]", float(lab[odd[0]]),
                                           "a whole-number class index (or a negative / NaN "
                                           "label for an unlabelled row)")
        gone = union_keys(delta.deleted, delta.erased)
        self._drop(gone)
        self._version = int(delta.version)
        cum = np.cumsum(labelled)
        pos = 0
        while pos < n:
            need = self.every - self._pending_rows
            hit = np.flatnonzero(cum[pos:] - (cum[pos - 1] if pos else 0) >= need)
            end = int(hit[0]) + pos + 1 if hit.size else n
            rows = np.flatnonzero(labelled[pos:end]) + pos
            self._pending.append(({c: delta.features[c][rows] for c in self._columns},
                                  np.asarray(delta.labels)[rows].astype(np.int64), delta.keys[rows]))
            self._pending_rows += rows.size
            pos = end
            if self._pending_rows < self.every:
                continue
            feats = {c: np.concatenate([p[0][c] for p in self._pending]) for c in self._columns}
            labels = np.concatenate([p[1] for p in self._pending])
            self._pending, self._pending_rows = [], 0
            if model is None:
                if self.bootstrap and not self._bootstrapped:
                    self._bootstrapped = True
                    out.append(delta.firing(end, "no model yet", trigger=self.name,
                                            seen=self._seen + end))
                continue
            acc, wrong, m = self._accuracy(model, feats, labels)
            if self._decide(acc, wrong, m):
                stat = self._avoidable if self.decision.startswith("avoidable") else acc
                out.append(delta.firing(end, f"accuracy {acc:.4f} ({self.decision})",
                                        trigger=self.name, seen=self._seen + end, statistic=stat))
                self._avoidable = 0.0
        # keys are never reused: a row this delta inserts and deletes (or erases) is not live
        if n:
            self._drop(np.intersect1d(gone, delta.keys))
        self._seen += n
        return out


def _state_ok(state: Any, every: int, history: int) -> bool:
    """Whether ``state`` has the shape :meth:`Performance.state` gives."""
    count, number = is_count, is_finite

    def accuracy(v: Any) -> bool:
        return number(v) and 0.0 <= v <= 1.0

    names = {"version", "pending", "seen", "bootstrapped", "past", "expect", "avoidable"}
    return (isinstance(state, Mapping) and set(state) == names and count(state["version"]) and count(state["seen"])
            and isinstance(state["pending"], list) and len(state["pending"]) < every
            and is_keys(state["pending"])
            and len(set(state["pending"])) == len(state["pending"]) and isinstance(state["bootstrapped"], bool)
            and isinstance(state["past"], list) and len(state["past"]) <= history
            and all(accuracy(a) for a in state["past"])
            and (state["expect"] is None or accuracy(state["expect"])) and number(state["avoidable"]))
