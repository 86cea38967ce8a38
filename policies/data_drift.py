"""``DataDrift``: fire when a current window of data differs from a reference window."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine._search import intersect_keys, union_keys
from modyn_store.core._validate import check_bool, check_choice, check_float, check_int
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._drift_stats import METRICS, P_VALUE_METRICS, two_sample
from policies._mean_gap import above_mean
from policies._options import only_with
from policies._records import check_seed
from policies._windows import (RowBuffer, check_span_unit, reached_span, restored_on_error, rows_by_key,
                               window_span)
from policies.base import (Firing, ModelLike, RowSource, Trigger, TriggerInput, check_count, register,
                           sub_triggers)
from policies.near_duplicates import embedding_matrix
from policies._state_shape import PARAMS, is_count, is_keys, is_number, own_state

__all__ = ["DataDrift"]

DECISIONS = ("p_value", "threshold", "quantile", "rolling_average")
#: The decisions that read each of the options ``threshold``, ``quantile`` and ``history``.
USES = {"threshold": ("p_value", "threshold", "rolling_average"), "quantile": ("quantile",),
        "history": ("quantile", "rolling_average")}


@register("data_drift")
class DataDrift(Trigger):
    """Two-sample drift detection between a reference and a current window.

    The first full window is the reference (a full window of fewer than ``min_samples`` rows
    without a missing value could never be compared: the next full window is taken instead,
    and so on). Then, every ``every`` samples, the current window
    (the last ``window`` samples, or with ``window_time`` the samples within that span of event
    time; without ``overlap`` only samples after the reference) is compared with the reference.
    On a firing the current window becomes the reference. Rows a delta deletes or erases leave
    both windows (the windows hold rows live in the store; see :meth:`state`); a reference left
    too small to compare is collected again from the current window on. The statistic is computed on the
    ``columns`` or, with ``embeddings``, on the current model's embeddings of them.

    Decisions: ``p_value`` fires when p < ``threshold`` (MMD, KS); ``threshold`` when the
    statistic > ``threshold``; ``quantile`` when it exceeds the ``quantile`` of the last
    ``history`` statistics; ``rolling_average`` when it exceeds their mean + ``threshold`` (compared
    as the decimals the numbers print as: 0.8 does not exceed ``0.7 + 0.1``, which float64 gives
    as 0.7999999999999999).
    During the first ``warmup`` evaluations it never fires on drift (dynamic decisions collect
    statistics); ``warmup_trigger`` (a trigger or config) may fire instead until then.

    Parameters
    ----------
    columns:
        Feature columns (numeric or fixed-size vectors).
    metric, decision, threshold, quantile, history:
        See above; ``metric`` in ``'mmd', 'ks', 'wasserstein', 'mean_shift'``; ``history`` in
        ``[1, 2**62]`` (``policies.base.MAX_COUNT``). An option the decision does not read
        (``threshold`` with ``quantile``; ``quantile`` with any other; ``history`` with ``p_value``
        and ``threshold``) given with another value than its default is refused
        (:class:`InvalidArgumentError` naming it and the decisions that read it).
    window, window_time, every, overlap:
        Window size in samples (``None``: 500, or none with ``window_time``); or a span of event
        time (``"1d"`` or a number), given instead of ``window`` (both given are refused, naming
        ``window``; ``window`` then reads ``None``); evaluation
        interval in samples; whether the current window may overlap the reference. A window of
        span ``s`` holds the samples with ``newest - ts < s`` (the reference: those with
        ``ts - first < s``), compared exactly for integer event times (datetimes are int64
        nanoseconds); a duration string is rounded to whole nanoseconds (at least 1ns), a
        number is used as given (``1.5`` on integer times: samples 0 or 1 before the newest).
    embeddings:
        Compare model embeddings (``model.embed``) instead of raw features.
    warmup, warmup_trigger:
        Evaluations before drift decisions; the trigger used until then (or ``None``), whose
        ``columns``, ``reads_labels`` and ``requires`` are part of this trigger's (it sees the
        same deltas).
    min_samples, max_samples, n_permutations, seed:
        Fewest samples per window to evaluate (rows with a missing or infinite value are left
        out, before subsampling unless ``embeddings``, whose values only the model gives);
        larger windows are subsampled (seeded) to ``max_samples``; MMD permutations (read with
        ``metric="mmd"`` only: another value than 200 with another metric is refused); seed (an
        integer in ``[0, 2**63 - 1]``, as a selection's).
        ``max_samples`` and a ``window`` in samples are at least ``min_samples`` (smaller ones
        could never be evaluated).
        With ``metric="mmd"`` and ``decision="p_value"`` the smallest p-value is
        ``1 / (n_permutations + 1)``; a ``threshold`` at or below it is refused (it could never
        fire), and one just above it (e.g. 100 permutations at 0.01) fires only when every
        permutation falls below the observed statistic: prefer ``n_permutations >= 10 / threshold``.

    Example
    -------
    >>> import numpy as np
    >>> from policies import DataDrift, TriggerInput
    >>> x = np.concatenate([np.zeros(300), np.ones(300)]) + np.random.default_rng(0).normal(0, .1, 600)
    >>> t = DataDrift(columns=["x"], metric="ks", window=100, every=100)
    >>> fs = t.fire(TriggerInput(version=1, keys=np.arange(600), ts=np.arange(600), features={"x": x}))
    >>> [f.position for f in fs]
    [400]
    """

    #: inserted rows seen when the warm-up ended (None before it ended)
    _warm_until: int | None = None

    def __init__(self, columns: Sequence[str] = (), *, metric: str = "mmd",
                 decision: str = "p_value", threshold: float = 0.05, quantile: float = 0.95,
                 history: int = 50, window: int | None = None, window_time: str | float | None = None,
                 every: int = 500, overlap: bool = False, embeddings: bool = False,
                 warmup: int = 0, warmup_trigger: Any = None, min_samples: int = 10,
                 max_samples: int = 1000, n_permutations: int = 200, seed: int = 0) -> None:
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise InvalidArgumentError("columns", columns, "a list of column names")
        if not columns:
            raise InvalidArgumentError("columns", columns, "at least one feature column")
        self._columns = tuple(columns)
        self.metric = check_choice("metric", metric, METRICS)
        self.decision = check_choice("decision", decision, DECISIONS)
        if decision == "p_value" and metric not in P_VALUE_METRICS:
            raise InvalidArgumentError("decision", decision,
                                       f"not 'p_value' for metric {metric!r} (no p-value)")
        lo_open = decision == "p_value"
        # an option the decision ignores is refused (unless it is the default, as configs list it)
        thr = check_float("threshold", threshold, 0.0, 1.0 if lo_open else None, lo_open=lo_open)
        own = DataDrift.__init__  # (whose signature holds the defaults)
        self.threshold = only_with(own, "threshold", thr, "decision", decision, USES["threshold"])
        self.quantile = only_with(own, "quantile", check_float("quantile", quantile, 0.0, 1.0), "decision",
                                  decision, USES["quantile"])
        self.history = only_with(own, "history", check_count("history", history, 1), "decision", decision,
                                 USES["history"])
        if window is not None and window_time is not None:
            raise InvalidArgumentError("window", window, f"None with window_time={window_time!r}: a window "
                                       "is either a number of samples (window) or a span of event time "
                                       "(window_time), not both")
        # the window in samples (None: a span of event time)
        self._size: int | None = None if window_time is not None else check_int(
            "window", 500 if window is None else window, 2)
        self.window = self._size
        self.window_time = window_time
        self._span = None if window_time is None else window_span(window_time)
        self.every = check_int("every", every, 1)
        self.overlap = check_bool("overlap", overlap)
        self.embeddings = check_bool("embeddings", embeddings)
        self.warmup = check_int("warmup", warmup, 0)
        self.min_samples = check_int("min_samples", min_samples, 2)
        self.max_samples = check_int("max_samples", max_samples, 2)
        if self.max_samples < self.min_samples:
            raise InvalidArgumentError("max_samples", max_samples, f"an integer >= min_samples="
                                       f"{self.min_samples}: windows are subsampled to it, and "
                                       "a window of fewer rows is never evaluated")
        if self._size is not None and self._size < self.min_samples:
            # a window of fewer rows than an evaluation needs: the trigger could never fire
            raise InvalidArgumentError("window", self._size, f"an integer >= min_samples="
                                       f"{self.min_samples} (or a smaller min_samples)")
        self.n_permutations = only_with(own, "n_permutations", check_count("n_permutations", n_permutations, 1),
                                        "metric", metric, ("mmd",))
        if decision == "p_value" and metric == "mmd" and 1.0 / (self.n_permutations + 1) >= self.threshold:
            # the smallest p-value a permutation test can return is 1 / (n_permutations + 1)
            need = int(np.floor(1.0 / self.threshold))
            raise InvalidArgumentError(
                "n_permutations", n_permutations,
                f"an integer >= {need} with threshold={self.threshold}: a permutation test with "
                f"n_permutations={n_permutations} never gives p < {1.0 / (self.n_permutations + 1):.4g}, "
                "so the trigger could never fire")
        self.seed = check_seed("seed", seed)  # (a policy's seed: 63 bits, as a selection's)
        self._buf = RowBuffer(size=self._size, span=self._span)
        self._ref: dict[str, np.ndarray] | None = None
        self._ref_keys = np.empty(0, np.int64)  # the reference's keys, for state() and erasures
        self._version = 0  # the last version fed: state() names the windows' rows as of it
        self._ref_start: int | float | None = None
        self._since = 0
        self._seen = 0
        self._evals = 0
        self._warm_until = None
        self._past: deque[float] = deque(maxlen=self.history)
        self.warmup_trigger = (None if warmup_trigger is None
                               else sub_triggers(self, [("warmup_trigger", warmup_trigger)])[0])

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"columns": ["x"], "metric": "ks", "window": 20, "every": 10},
                {"columns": ["x"], "metric": "mean_shift", "decision": "quantile",
                 "window": 16, "every": 8, "overlap": True, "warmup": 2,
                 "warmup_trigger": {"name": "data_amount", "every": 10}}]

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature columns compared, then those the ``warmup_trigger`` reads (it sees the
        same deltas)."""
        extra = () if self.warmup_trigger is None else self.warmup_trigger.columns
        return tuple(dict.fromkeys((*self._columns, *extra)))

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        own = frozenset({"model"}) if self.embeddings else frozenset()
        return own if self.warmup_trigger is None else own | self.warmup_trigger.requires

    @property
    def reads_labels(self) -> bool:  # type: ignore[override]
        """Only the ``warmup_trigger`` may read labels."""
        return self.warmup_trigger is not None and self.warmup_trigger.reads_labels

    def params(self) -> dict[str, Any]:
        """The constructor arguments (``columns``: the compared columns only)."""
        out = super().params()
        out["columns"] = self._columns
        return out

    @property
    def n_evaluations(self) -> int:
        """How many times the windows were compared so far."""
        return self._evals

    def _parts(self) -> list[Trigger]:
        return [] if self.warmup_trigger is None else [self.warmup_trigger]

    def on_training(self, train_set: TrainSet) -> None:
        if self.warmup_trigger is not None:
            self.warmup_trigger.on_training(train_set)

    def _features(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """The compared columns of a window as one ``[n, d]`` float64 matrix."""
        n = len(cols[self._columns[0]])
        return np.concatenate([np.asarray(cols[c], dtype=np.float64).reshape(n, -1)
                               for c in self._columns], axis=1)

    def _matrix(self, cols: Mapping[str, np.ndarray], model: ModelLike | None,
                salt: int) -> np.ndarray | None:
        from engine.sample import uniform_sample

        n = len(cols[self._columns[0]])
        if n < self.min_samples:  # e.g. a reference whose rows were deleted or erased since
            return None
        cap = int(self.max_samples)
        seed = int(self.seed) + salt
        if not self.embeddings:
            # rows with a missing value are left out first, then the rest is subsampled: a
            # window of enough usable rows is evaluated on max_samples of them
            m = self._features(cols)
            m = m[np.isfinite(m).all(axis=1)]
            if m.shape[0] > cap:
                m = m[uniform_sample(m.shape[0], cap, seed=seed)]
            return m if m.shape[0] >= self.min_samples else None
        if n > cap:  # embedded after subsampling: the model embeds at most max_samples rows
            idx = uniform_sample(n, cap, seed=seed)
            cols = {k: v[idx] for k, v in cols.items()}
            n = cap
        if model is None:
            return None
        m = embedding_matrix(model.embed(cols), n, "model.embed", np.float64)
        m = m[np.isfinite(m).all(axis=1)]  # rows with a missing value are left out
        return m if m.shape[0] >= self.min_samples else None

    def _decide(self, stat: float, p: float | None) -> bool:
        thr = float(self.threshold)
        if self.decision == "p_value":
            return p is not None and p < thr
        if self.decision == "threshold":
            return stat > thr
        if not self._past:
            return False
        past = np.fromiter(self._past, dtype=np.float64)
        if self.decision == "quantile":
            return stat > float(np.quantile(past, float(self.quantile)))
        return above_mean(stat, past, thr) > 0  # in decimals: 0.8 is not above 0.7 + 0.1

    def _evaluate(self, model: ModelLike | None) -> tuple[bool, float, float | None] | None:
        cols, _ = self._buf.window()
        if self._ref is None or not cols or len(cols[self._columns[0]]) < int(self.min_samples):
            return None
        ref = self._matrix(self._ref, model, 2 * self._evals)
        cur = self._matrix(cols, model, 2 * self._evals + 1)
        if ref is None or cur is None:
            return None
        stat, p = two_sample(str(self.metric), ref, cur,
                             n_permutations=int(self.n_permutations),
                             seed=int(self.seed) + self._evals)
        self._evals += 1
        fired = self._evals > int(self.warmup) and self._decide(stat, p)
        self._past.append(stat)
        return fired, stat, p

    def _usable_rows(self, cols: Mapping[str, np.ndarray]) -> int:
        """Rows of a window an evaluation can use: those without a missing or infinite value
        (all rows with ``embeddings``, whose values only the model gives)."""
        if not cols:
            return 0
        n = len(cols[self._columns[0]])
        if self.embeddings or n == 0:
            return n
        return int(np.isfinite(self._features(cols)).all(axis=1).sum())

    def _warming(self) -> bool:
        # once ended, the warm-up never comes back (a reference renewed after its rows were deleted)
        return self._warm_until is None and (self._ref is None or self._evals < int(self.warmup))

    def _set_reference(self, window: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]) -> None:
        self._ref, self._ref_keys = window[0], window[2]
        self._since = 0
        if not self.overlap:
            self._buf.clear()

    def _drop(self, gone: np.ndarray) -> None:
        """Take deleted or erased rows out of the reference and current windows (they hold the
        rows live in the store; a restart reads them back by key, see :meth:`state`)."""
        if gone.size == 0:
            return
        if np.isin(self._buf.window_keys(), gone).any():  # (keys only: no feature column copied)
            self._buf.remove(gone)
        if self._ref is not None and np.isin(self._ref_keys, gone).any():
            keep = ~np.isin(self._ref_keys, gone)
            self._ref = {c: v[keep] for c, v in self._ref.items()}
            self._ref_keys = self._ref_keys[keep]
            self._renew_reference()  # (only a reference that lost rows can have become too small)

    def _renew_reference(self) -> None:
        """A reference left with fewer usable rows than ``min_samples`` (its rows deleted or erased)
        can never be compared again: the rows collected from here on (starting with the current
        window's) make the next reference, as when the first window was not comparable."""
        if self._ref is None or self._usable_rows(self._ref) >= int(self.min_samples):
            return
        cols, ts, keys = self._buf.keyed_window()
        self._buf.restore(cols, ts, keys, self._buf.newest)  # the window only: a reference's rows
        self._ref, self._ref_keys, self._since = None, np.empty(0, np.int64), 0
        self._ref_start = ts[0].item() if self._span is not None and ts.size else None

    def state(self) -> dict[str, Any] | None:
        """The parameters (``"params"``: ``window``, ``window_time``, ``every`` and the others,
        which the windows and counters depend on), the windows as the keys of their rows (never feature values: a restart reads the rows
        back from the store, where erased ones are gone) with the last version fed, the counters,
        the past statistics, two event times (the newest one seen, and the first of a reference
        window being collected) and the ``warmup_trigger``'s state; ``None`` when that has none.
        """
        part = None if self.warmup_trigger is None else self.warmup_trigger.state()
        if self.warmup_trigger is not None and part is None:
            return None
        return {PARAMS: self._state_params(), "version": int(self._version), "seen": int(self._seen), "since": int(self._since),
                "evals": int(self._evals), "warm_until": self._warm_until, "past": [float(p) for p in self._past],
                "ref_start": _plain_time(self._ref_start), "newest": _plain_time(self._buf.newest),
                "window": self._buf.keyed_window()[2].tolist(),
                "reference": None if self._ref is None else self._ref_keys.tolist(), "warmup_trigger": part}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        """Take :meth:`state`'s data; the windows' rows are read with ``rows`` as of the state's
        version (rows erased since are left out, as :meth:`fire` leaves out the rows a delta
        deletes or erases). A state saved by a trigger with other parameters (or without them)
        is refused, naming ``state.params.<name>`` (``state.params``)."""
        state = own_state(state, self._state_params(), "a data_drift trigger's state")
        shape = ("a data_drift trigger's state: {'params': its parameters, 'version', 'seen', 'since', 'evals': int >= 0, 'warm_until': "
                 "int >= 0 or None, 'past': [number], 'ref_start', 'newest': number or None, 'window': [key], "
                 "'reference': [key] or None, 'warmup_trigger': its state or None}")
        if not _state_ok(state, self.warmup_trigger is not None, int(self.history)):
            raise InvalidArgumentError("state", state, shape)
        # a state of a trigger with another interval or window: rows past 'every' would be
        # taken back (a negative count left to take), a longer window cut without a word
        longest = max(len(state["window"]), len(state["reference"] or []))
        if state["since"] >= int(self.every) or (self._size is not None and longest > self._size):
            raise InvalidArgumentError("state", state, f"{shape}, with 'since' < every ({self.every})"
                                       + ("" if self._size is None else f" and at most window ({self._size}) keys "
                                                                f"in 'window' and 'reference'"))
        wanted = [*state["window"], *(state["reference"] or [])]
        if wanted and rows is None:
            raise InvalidArgumentError("rows", None, "a row source (policies.base.RowSource): the state names "
                                                     "the windows' rows by key")
        read = None if not wanted or rows is None else rows(np.asarray(wanted, np.int64), self._columns,
                                                            int(state["version"]))
        if self.warmup_trigger is not None:
            self.warmup_trigger.load_state(state["warmup_trigger"], rows)
        buf = RowBuffer(size=self._size, span=self._span)
        newest = -np.inf if state["newest"] is None else state["newest"]
        empty = ({c: np.empty(0) for c in self._columns}, np.empty(0), np.empty(0, np.int64))
        window = empty if read is None else _rows_of(read, state["window"], self._columns)
        ref = empty if read is None else _rows_of(read, state["reference"] or [], self._columns)
        buf.restore(window[0], window[1], window[2], newest)
        self._ref, self._ref_keys = (None if state["reference"] is None else ref[0]), ref[2]
        self._buf, self._version, self._seen = buf, int(state["version"]), int(state["seen"])
        self._since, self._evals, self._warm_until = int(state["since"]), int(state["evals"]), state["warm_until"]
        self._past = deque((float(p) for p in state["past"]), maxlen=self.history)
        self._ref_start = state["ref_start"]

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        # a failing model (or malformed embeddings) leaves the trigger as it was: the rows it
        # buffered from this delta are given back
        with restored_on_error(self, "_buf", "_ref", "_ref_keys", "_ref_start", "_since", "_seen", "_evals",
                               "_past", "_warm_until", "_version"):
            return self._consume(delta, model)

    def _consume(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        n = len(delta)
        if n and self.window_time is not None:
            check_span_unit(self.window_time, delta.ts_is_datetime)
        feats = {c: delta.features[c] for c in self._columns} if n else {}
        ts, keys = delta.ts, delta.keys
        gone = union_keys(delta.deleted, delta.erased)
        self._drop(gone)
        self._version = int(delta.version)
        out: list[tuple[int, Firing]] = []
        warming = self._warming()
        # the warm-up trigger's firings count up to the row where the warm-up ended: a firing at
        # its very end counts also when it comes with the next delta (position 0 there)
        warm_end = n if warming else (-1 if self._warm_until is None else self._warm_until - self._seen)
        pos = 0
        while pos < n:
            if warming and not self._warming():
                warming, warm_end = False, pos
            if self._ref is None:
                if self._size is not None:
                    take = min(self._size - len(self._buf), n - pos)
                    done = len(self._buf) + take >= self._size
                else:
                    assert self._span is not None
                    if self._ref_start is None:
                        self._ref_start = ts[pos].item()  # a Python int for integer times: exact
                    past = np.flatnonzero(reached_span(ts[pos:], self._ref_start, self._span))
                    take = int(past[0]) if past.size else n - pos
                    done = bool(past.size)
                self._buf.append({c: v[pos:pos + take] for c, v in feats.items()},
                                 ts[pos:pos + take], keys[pos:pos + take])
                pos += take
                if done:
                    ref = self._buf.keyed_window()
                    if self._usable_rows(ref[0]) >= int(self.min_samples):
                        self._set_reference(ref)
                    else:  # never comparable: the next full window is the reference instead
                        self._buf.clear()
                        self._ref_start = None
                continue
            take = min(int(self.every) - self._since, n - pos)
            self._buf.append({c: v[pos:pos + take] for c, v in feats.items()}, ts[pos:pos + take],
                             keys[pos:pos + take])
            pos += take
            self._since += take
            if self._since < int(self.every):
                continue
            self._since = 0
            res = self._evaluate(model)
            if res is None:
                continue
            fired, stat, p = res
            if fired:
                why = f"{self.metric}={stat:.4g}" + ("" if p is None else f", p={p:.3g}")
                out.append((pos, delta.firing(pos, f"drift: {why} ({self.decision})",
                                              trigger=self.name, seen=self._seen + pos,
                                              statistic=stat)))
                self._set_reference(self._buf.keyed_window())
        # keys are never reused: a row this delta inserts and deletes (or erases) is not live
        self._drop(intersect_keys(gone, keys))
        if warming and not self._warming():
            warm_end = pos
        if self._warm_until is None and not self._warming():  # the warm-up ended in this delta
            self._warm_until = self._seen + warm_end
        # the warm-up trigger sees the delta once this trigger has consumed it without error
        warm = [] if self.warmup_trigger is None else self.warmup_trigger.fire(delta, model)
        assert delta.versions is not None
        for f in warm:
            end = int(np.searchsorted(delta.versions, f.version, side="left")) + f.position
            if end <= warm_end:
                out.append((end, Firing(version=f.version, position=f.position, trigger=self.name,
                                        reason=f"warm-up: {f.reason}", seen=f.seen,
                                        statistic=None, causes=(f,), boundary=f.boundary)))
        self._seen += n
        return [f for _, f in sorted(out, key=lambda e: e[0])]


def _plain_time(t: Any) -> int | float | None:
    """An event time as JSON holds it: a Python number, ``None`` for none (or ``-inf``)."""
    t = t.item() if isinstance(t, np.generic) else t
    return None if t is None or (isinstance(t, float) and t == -np.inf) else t


def _state_ok(state: Any, has_warmup: bool, history: int) -> bool:
    """Whether ``state`` has the shape :meth:`DataDrift.state` gives."""
    count, number, keys = is_count, is_number, is_keys
    names = {"version", "seen", "since", "evals", "warm_until", "past", "ref_start", "newest", "window",
             "reference", "warmup_trigger"}
    return (isinstance(state, Mapping) and set(state) == names
            and all(count(state[k]) for k in ("version", "seen", "since", "evals"))
            and (state["warm_until"] is None or count(state["warm_until"]))
            and isinstance(state["past"], list) and len(state["past"]) <= history
            and all(number(p) for p in state["past"])
            and all(state[k] is None or (number(state[k]) and np.isfinite(state[k])) for k in ("ref_start", "newest"))
            and keys(state["window"]) and (state["reference"] is None or keys(state["reference"]))
            and (state["warmup_trigger"] is None) != has_warmup)


def _rows_of(read: TriggerInput, keys: Sequence[int], columns: Sequence[str]
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The rows of ``keys`` that ``read`` holds, in the order of ``keys`` (the others are gone)."""
    want = np.asarray(keys, np.int64)
    idx, hit = rows_by_key(read.keys, want)
    return {c: np.asarray(read.features[c])[idx] for c in columns}, read.ts[idx], want[hit]
