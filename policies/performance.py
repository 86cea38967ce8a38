"""``Performance``: fire when the current model does badly on newly arrived labelled data."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from modyn_store.core._validate import check_bool, check_choice, check_float, check_float_or_none, check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._windows import restored_on_error
from policies.base import Firing, ModelLike, Trigger, TriggerInput, check_count, register

__all__ = ["Performance"]

DECISIONS = ("threshold", "rolling_average", "avoidable_misclassifications")


@register("performance")
class Performance(Trigger):
    """Evaluate the current model on every ``every`` newly arrived labelled samples.

    ``threshold``: fire when accuracy < ``threshold``. ``rolling_average``: fire when accuracy
    < mean of the last ``history`` accuracies - ``threshold`` (the allowed deviation).
    ``avoidable_misclassifications``: expect the accuracy ``expected`` (``None``: the first
    evaluation after each training) and fire when the cumulative misclassifications beyond the
    expected ones, ``sum(wrong - (1 - expected) * n)`` over evaluations since the last training,
    exceed ``threshold``. Labels are class indices into the model's logits (a fractional label is
    refused); rows without a label (negative or NaN) are skipped. A label beyond the logits (a
    class the model has not seen) and a row whose logits hold a NaN count as misclassified. With no model yet and ``bootstrap``, the first evaluation point
    fires (so a pipeline gets its first model); without ``bootstrap`` it stays quiet.

    Parameters
    ----------
    columns:
        Feature columns the model reads (``model.logits({column: rows})``).
    every:
        Labelled samples per evaluation.
    decision, threshold, history, expected, bootstrap:
        See above; ``history`` in ``[1, 2**62]`` (``policies.base.MAX_COUNT``).

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
        self.history = check_count("history", history, 1)
        self.expected = check_float_or_none("expected", expected, 0.0, 1.0)
        self.bootstrap = check_bool("bootstrap", bootstrap)
        self._pending: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        self._pending_rows = 0
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
        return 1.0 - wrong / labels.size, wrong, int(labels.size)

    def _decide(self, acc: float, wrong: int, n: int) -> bool:
        thr = self.threshold
        if self.decision == "threshold":
            return acc < thr
        if self.decision == "rolling_average":
            fired = bool(self._past) and acc < float(np.mean(self._past)) - thr
            self._past.append(acc)
            return fired
        if self._expect is None:
            self._expect = acc
            return False
        self._avoidable += wrong - (1.0 - self._expect) * n
        return self._avoidable > thr

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        # a failing model (or bad input) leaves the trigger as it was: the rows it consumed so
        # far in this delta are given back
        with restored_on_error(self, "_pending", "_pending_rows", "_past", "_expect", "_avoidable", "_seen",
                               "_bootstrapped"):
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
        cum = np.cumsum(labelled)
        pos = 0
        while pos < n:
            need = self.every - self._pending_rows
            hit = np.flatnonzero(cum[pos:] - (cum[pos - 1] if pos else 0) >= need)
            end = int(hit[0]) + pos + 1 if hit.size else n
            rows = np.flatnonzero(labelled[pos:end]) + pos
            self._pending.append(({c: delta.features[c][rows] for c in self._columns},
                                  np.asarray(delta.labels)[rows].astype(np.int64)))
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
        self._seen += n
        return out
