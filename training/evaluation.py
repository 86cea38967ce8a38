"""Evaluate every model on every evaluation slice (time windows of the stream).

The result is a model x slice x metric matrix (:class:`EvalMatrix`), stored with the trainings
in the catalog's ``evaluations`` table. Metrics: ``accuracy``, ``f1`` (macro over the classes
present in labels or predictions), ``roc_auc`` (binary: of ``p[:, 1]``; multi-class: macro
one-vs-rest over classes with both positives and negatives; NaN when undefined) and ``loss``
(mean cross entropy). ROC-AUC ranks rows by the log-odds of the probabilities (the same
order, without ties from rounding confident probabilities to 1). A row with a NaN logit
predicts no class: a miss for ``accuracy`` and ``f1``; ``roc_auc`` and ``loss`` are NaN. A row
whose largest logit is infinite (+inf, or -inf in every class) has no probabilities and is
refused (``InvalidArgumentError`` naming the model and the slice); -inf in some classes is a
probability of 0 (an infinite ``loss`` where it is the row's label). A null label on a row of a
slice is refused before any model runs, sampled or not.

Example
-------
>>> import numpy as np, pyarrow as pa, torch
>>> from modyn_store import Store
>>> from training.evaluation import evaluate, time_slices
>>> store = Store.open("memory://evaluation-doc", create=True)
>>> x = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
>>> _ = store.append(pa.table({"ts": np.arange(40), "label": (x[:, 0] > 0).astype(np.int64),
...                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))
>>> slices = time_slices(store, n=2)
>>> [(s.start, s.end) for s in slices]
[(0.0, 19.5), (19.5, 39.0)]
>>> m = evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, record=False)
>>> m.matrix("accuracy").shape
(1, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from modyn_store.core.trainings import Catalog
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training.auc import log_odds, roc_auc
from training.epochs import check_int
from training.eval_sample import EvalSample, event_times, margin, predictions, slice_keys
from training.loading import LoaderOptions, check_device, loader
from training.recorded import load_model
from training.trainer import LABEL_HINT, Prepare, check_inputs, check_label_column, model_inputs

__all__ = ["MAX_WINDOWS", "METRICS", "EvalMatrix", "Slice", "accuracy", "evaluate", "f1_macro", "log_odds", "roc_auc",
           "time_slices"]

METRICS = ("accuracy", "f1", "roc_auc", "loss")


@dataclass(frozen=True)
class Slice:
    """Samples with ``start <= ts < end`` (the last slice of :func:`time_slices` includes ``end``)."""

    name: str
    start: float
    end: float
    closed: bool = False

    def __post_init__(self) -> None:
        # a window whose end precedes its start holds no rows: it would evaluate nothing, silently
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgumentError("name", self.name, "a non-empty string")
        for arg in ("start", "end"):
            v = getattr(self, arg)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or math.isnan(v):
                raise InvalidArgumentError(arg, v, "a number (not NaN; -inf/inf for an open side)")
        if self.start > self.end:
            raise InvalidArgumentError("end", self.end, f"a value >= start ({self.start})")
        if not isinstance(self.closed, bool):
            raise InvalidArgumentError("closed", self.closed, "True or False")


@dataclass(frozen=True)
class EvalMatrix:
    """``values[m, s, k]``: metric ``metrics[k]`` of model ``models[m]`` on slice ``slices[s]``."""

    models: tuple[str, ...]
    slices: tuple[Slice, ...]
    metrics: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    counts: tuple[int, ...]
    data_version: int
    evaluation_id: str | None = None
    margins: np.ndarray | None = field(default=None, repr=False)
    population: tuple[int, ...] = ()

    def margin(self, metric: str) -> np.ndarray:
        """The model x slice half-widths of the 95% confidence intervals of one metric (0: the
        whole slice was evaluated; NaN: undefined)."""
        m = self.matrix(metric)
        if self.margins is None:
            return np.zeros_like(m)
        return self.margins[:, :, self.metrics.index(metric)]

    def matrix(self, metric: str) -> np.ndarray:
        """The model x slice matrix of one metric."""
        if metric not in self.metrics:
            raise InvalidArgumentError("metric", metric, f"one of {self.metrics}")
        return self.values[:, :, self.metrics.index(metric)]

    def to_table(self) -> pa.Table:
        """Long format: one row per (model, slice, metric); ``margin`` the cell's 95% half-width
        (null where undefined), ``population`` the slice's rows (``n`` those evaluated)."""
        rows = []
        for m, model in enumerate(self.models):
            for s, sl in enumerate(self.slices):
                for k, metric in enumerate(self.metrics):
                    half = float(self.margins[m, s, k]) if self.margins is not None else 0.0
                    rows.append(
                        {"model_id": model, "slice": sl.name, "slice_start": sl.start, "slice_end": sl.end,
                         "metric": metric, "value": float(self.values[m, s, k]), "n": self.counts[s],
                         "data_version": self.data_version, "margin": None if math.isnan(half) else half,
                         "population": self.population[s] if self.population else self.counts[s]}
                    )
        return pa.Table.from_pylist(rows)


def _float_edge(v: Any, up: bool) -> float:
    """``v`` as a float edge on its side: the least float >= ``v`` (``up``) or the greatest
    <= ``v`` (an int64 time need not be a float64; the edge must still hold it)."""
    f = float(v)
    if up and f < v:
        return math.nextafter(f, math.inf)
    if not up and f > v:
        return math.nextafter(f, -math.inf)
    return f


#: the most windows :func:`time_slices` makes (an ``every`` in the wrong unit would make billions)
MAX_WINDOWS = 1_000_000


def _check_windows(lo: float, hi: float, n: int | None, width: float) -> None:
    """Refuse windows that float64 edges cannot draw (narrower than 2 float64 spacings at these
    times: edges would coincide, giving empty windows and others of twice the width) and more
    than :data:`MAX_WINDOWS` windows."""
    if not lo < hi:
        return  # one event time: a single closed window holds it
    arg, value = ("n", n) if n is not None else ("every", width)
    nominal = (hi - lo) / n if n is not None else width
    ulp = float(np.spacing(max(abs(lo), abs(hi))))
    if nominal < 2 * ulp:
        raise InvalidArgumentError(
            arg, value, f"windows at least {2 * ulp:g} wide: edges are float64, {ulp:g} apart at the event "
                        f"times {lo:g} .. {hi:g} (use fewer or wider windows, or Slice with exact bounds)")
    if n is None and (hi - lo) / width > MAX_WINDOWS:
        raise InvalidArgumentError(
            "every", width, f"a width giving at most {MAX_WINDOWS} windows over the event times {lo:g} .. {hi:g} "
                            f"(at least {(hi - lo) / MAX_WINDOWS:g}; check the unit of the timestamps)")


def time_slices(
    store: Any, *, n: int | None = None, every: float | None = None, version: int | None = None
) -> list[Slice]:
    """Split the event-time range of the live samples into ``n`` equal windows or windows of ``every``.

    Timestamps are compared as numbers (temporal columns as int64 microseconds for dates,
    their own unit otherwise); the edges are floats, and integer times are compared with them
    exactly (the first and last edges hold the earliest and latest time even where those are
    not float64 values). Windows narrower than two float64 spacings at these times (edges would
    coincide) and more than :data:`MAX_WINDOWS` windows are refused (``InvalidArgumentError``).
    """
    if (n is None) == (every is None):
        raise InvalidArgumentError("n/every", (n, every), "exactly one of n= or every=")
    # checked before the scan; a NaN or infinite width would fail inside NumPy
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidArgumentError("n", n, "an integer >= 1")
    if every is not None and (isinstance(every, bool) or not isinstance(every, (int, float))
                              or not math.isfinite(every) or every <= 0):
        raise InvalidArgumentError("every", every, "a finite window width > 0")
    if n is not None and n > MAX_WINDOWS:
        raise InvalidArgumentError("n", n, f"at most {MAX_WINDOWS} windows")
    width = float(every) if every is not None else 0.0
    snap = store.as_of(version)
    first: Any = None
    last: Any = None
    for b in snap.to_batches(["ts"], batch_size=1 << 20):  # streamed: bounded memory
        ts = event_times(b.column(0))
        if ts.size:
            t0, t1 = ts.min().item(), ts.max().item()  # Python ints for integer times: exact
            first = t0 if first is None else min(first, t0)
            last = t1 if last is None else max(last, t1)
    if first is None:
        return []
    lo, hi = _float_edge(first, up=False), _float_edge(last, up=True)
    _check_windows(lo, hi, n, width)
    if n is not None:
        edges = np.linspace(lo, hi, n + 1)
    else:
        edges = np.arange(lo, hi + width, width, dtype=np.float64)
        if edges[-1] < hi:
            edges = np.append(edges, hi)
        edges[-1] = max(edges[-1], hi)
        if edges.size < 2:
            edges = np.array([lo, hi])
    k = edges.size - 1
    return [
        Slice(f"slice-{i:04d}", float(edges[i]), float(edges[i + 1]), closed=(i == k - 1)) for i in range(k)
    ]


def accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """Share of correct predictions (NaN when empty)."""
    return float(np.mean(labels == pred)) if labels.size else math.nan


def f1_macro(labels: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the classes present in ``labels`` or ``pred`` (NaN when empty); a
    prediction of -1 (no class, see :func:`training.eval_sample.predictions`) is a miss of its
    row's label, not a class of its own."""
    if labels.size == 0:
        return math.nan
    f1s = []
    for c in np.union1d(labels, pred[pred >= 0]):
        tp = np.sum((pred == c) & (labels == c))
        fp = np.sum((pred == c) & (labels != c))
        fn = np.sum((pred != c) & (labels == c))
        f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
    return float(np.mean(f1s))


def _metrics(names: Sequence[str], labels: np.ndarray, logits: np.ndarray) -> list[float]:
    out = []
    if logits.size:
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    else:
        logp = logits
    pred = predictions(logits) if logits.size else labels
    for m in names:
        if m == "accuracy":
            out.append(accuracy(labels, pred))
        elif m == "f1":
            out.append(f1_macro(labels, pred))
        elif m == "roc_auc":
            out.append(roc_auc(labels, log_odds(logits) if logits.size else np.exp(logp)))
        else:
            out.append(float(-logp[np.arange(labels.size), labels].mean()) if labels.size else math.nan)
    return out


def _check_models(models: Any) -> None:
    """At least one model: a ``{name: module}`` mapping or a sequence of training ids."""
    if isinstance(models, Mapping):
        if not models:
            raise InvalidArgumentError("models", models, "at least one model: {name: module} or training ids")
        bad = [k for k, v in models.items() if not isinstance(k, str) or not isinstance(v, nn.Module)]
        if bad:
            raise InvalidArgumentError("models", bad, "{name: torch.nn.Module} with string names")
        return
    if isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        raise InvalidArgumentError("models", models, "a {name: module} mapping or a list of training ids")
    if not models:
        raise InvalidArgumentError("models", list(models), "at least one model: {name: module} or training ids")
    bad_ids = [t for t in models if not isinstance(t, str)]
    if bad_ids:
        raise InvalidArgumentError("models", bad_ids, "training ids (strings)")


def _check_slices(slices: Any) -> list[Slice]:
    """A non-empty list of :class:`Slice` (from :func:`time_slices`)."""
    if isinstance(slices, (str, bytes, Slice)) or not isinstance(slices, Iterable):
        raise InvalidArgumentError("slices", slices, "a non-empty list of Slice (see time_slices)")
    out = list(slices)
    if not out:
        raise InvalidArgumentError("slices", out, "a non-empty list of Slice (see time_slices)")
    bad = [s for s in out if not isinstance(s, Slice)]
    if bad:
        raise InvalidArgumentError("slices", bad[:3], "Slice items (see time_slices)")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise InvalidArgumentError("slices", sorted({n for n in names if names.count(n) > 1}),
                                   "slices with distinct names")
    # a row is evaluated in one slice only: overlapping windows would silently lose rows
    reach: Slice | None = None  # the nonempty slice seen so far that reaches furthest
    for b in sorted(out, key=lambda s: (s.start, s.end)):
        if not (b.start < b.end or b.closed):
            continue  # an empty half-open window holds no row
        if reach is not None and (b.start < reach.end or (b.start == reach.end and reach.closed)):
            raise InvalidArgumentError("slices", (reach.name, b.name),
                                       "windows that do not overlap (evaluate overlapping ones separately)")
        if reach is None or b.end > reach.end or (b.end == reach.end and b.closed):
            reach = b
    return out


def _check_label_column(store: Any, label: str) -> None:
    """The label column must hold integer class codes (as :func:`training.trainer.train` checks)."""
    if not isinstance(label, str):
        raise InvalidArgumentError("label", label, "the name of a column of integer class codes")
    check_label_column(store, label)


def _check_label_codes(label: str, y: np.ndarray, n_classes: int, model: str) -> None:
    """Class codes must index the model's outputs: ``0 <= y < n_classes``."""
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        codes = np.unique(y[bad])[:5].tolist()
        raise InvalidArgumentError(
            "label", f"{label!r} codes {codes}",
            f"integer class codes 0 .. {n_classes - 1} (model {model!r} outputs {n_classes} classes); {LABEL_HINT}")


def _logits_of(model: str, out: Any, rows: int, slice_name: str) -> np.ndarray:
    """A module's output on a batch of ``rows`` as float32 logits ``[rows, classes]``, refused
    (``InvalidArgumentError`` naming the model and the slice) when it is not a tensor of that
    shape (a tuple or a dict of outputs is not guessed from) or when a row's largest logit is
    infinite: a row with +inf (or only -inf) has no softmax probabilities, so its loss and
    ROC-AUC would be NaN while its argmax still counted for accuracy. A row with a NaN logit
    predicts no class (see :func:`training.eval_sample.predictions`)."""
    if not isinstance(out, torch.Tensor):
        raise InvalidArgumentError(
            "models", model, f"modules whose output is a tensor of logits [rows, classes] ({model!r} gave "
                             f"{type(out).__name__}; wrap it to return the logits tensor)")
    z = out.detach().float().cpu().numpy()
    if z.ndim != 2 or z.shape[0] != rows or z.shape[1] < 1:
        raise InvalidArgumentError(
            "models", model, f"modules whose output is logits of shape [rows, classes] "
                             f"([{rows}, classes] here; {model!r} gave {list(z.shape)})")
    with np.errstate(invalid="ignore"):
        top = z.max(axis=1) if rows else np.empty(0, np.float32)
    inf = np.isinf(top)  # a row with a NaN logit has a NaN max: left to predictions()
    if inf.any():
        first = z[np.flatnonzero(inf)[0]].tolist()
        raise InvalidArgumentError(
            "models", f"{model!r} on slice {slice_name!r}: {int(inf.sum())} rows whose largest logit is "
                      f"infinite (first: {first[:8]})",
            "finite logits (an output beyond float32's range is read as inf; a NaN row counts as no prediction)")
    return z


def evaluate(
    store: Any,
    models: Mapping[str, nn.Module] | Sequence[str],
    slices: Sequence[Slice],
    *,
    inputs: Mapping[str, str],
    label: str = "label",
    metrics: Sequence[str] = METRICS,
    version: int | None = None,
    batch_size: int = 4096,
    device: str = "cpu",
    record: bool = True,
    prepare: Prepare | None = None,
    loader_options: LoaderOptions | None = None,
    sample: EvalSample | None = None,
) -> EvalMatrix:
    """Every model on every slice; with ``record`` the matrix is stored in the catalog.

    The snapshot's keys and times are streamed once (bounded memory with ``sample``), and every
    slice is read once for all models. With ``sample`` (an :class:`EvalSample`) each slice is
    evaluated on a seeded (optionally label-stratified) sample and :attr:`EvalMatrix.margins`
    holds the 95% confidence half-widths; a sample that covers the slice gives exactly the full
    evaluation's values (and margin 0). ``counts`` are the rows evaluated, ``population`` the
    slice's rows.

    Parameters
    ----------
    models:
        ``{name: module}``, or training ids whose checkpoints are loaded from the catalog.
    slices:
        From :func:`time_slices` (or any :class:`Slice` list) over the snapshot at ``version``.
    inputs, label:
        Forward argument -> column, and the label column (integer classes).

    Raises
    ------
    InvalidArgumentError
        A bad argument (no models, no slices or a non-:class:`Slice` one, an unknown device, a
        label column that is not integer class codes ...), refused before any model is loaded or
        any row is read; a null label on a row of a slice, refused before any model runs; label
        codes outside ``0 .. n_classes-1`` of a model's outputs, outputs that are not a tensor of
        logits of shape ``[rows, classes]`` (a tuple is not guessed from), or a row whose largest
        logit is infinite, refused before anything is recorded.
    """
    # every argument is checked before any model is loaded or moved and before any read
    names = tuple(metrics)
    # a repeated name would store each of its cells twice in the evaluations table
    if not names or any(m not in METRICS for m in names) or len(set(names)) != len(names):
        raise InvalidArgumentError("metrics", list(names), f"distinct names from {METRICS}")
    check_inputs(inputs)
    _check_models(models)
    slices = _check_slices(slices)
    if sample is not None and not isinstance(sample, EvalSample):
        raise InvalidArgumentError("sample", sample, "an EvalSample or None")
    if loader_options is not None and not isinstance(loader_options, LoaderOptions):
        raise InvalidArgumentError("loader_options", loader_options, "a LoaderOptions or None")
    check_int("batch_size", batch_size, 1)
    dev = check_device(device)
    _check_label_column(store, label)
    catalog = Catalog(store)
    if isinstance(models, Mapping):
        named = dict(models)
    else:
        named = {tid: load_model(catalog.store, tid, name="models") for tid in models}
    snap = store.as_of(version)
    parts = slice_keys(snap, slices, sample, label=label)
    # the caller's modules get their mode back (as after score), also when a slice is refused
    was_training = [m.training for m in named.values()]
    for m in named.values():
        m.to(dev).eval()
    try:
        values = np.full((len(named), len(slices), len(names)), math.nan)
        margins = np.full_like(values, math.nan)
        counts = []
        cols = list(dict.fromkeys([*inputs.values(), label]))
        for s, part in enumerate(parts):
            sel = part.keys
            counts.append(int(sel.size))
            if sel.size == 0:
                continue
            dl = loader(store, TrainSet.uniform(sel, version=snap.version), columns=cols, batch_size=batch_size,
                        shuffle=False, device=device, options=loader_options)
            logits: list[list[np.ndarray]] = [[] for _ in named]
            labels: list[np.ndarray] = []
            with torch.no_grad():
                for batch in dl:
                    args = prepare(batch) if prepare is not None else model_inputs(batch, inputs)
                    args = {k: v.to(dev) for k, v in args.items()}
                    y_b = batch[label].cpu().numpy()
                    for i, (mid, m) in enumerate(named.items()):
                        z_b = _logits_of(mid, m(**args), y_b.shape[0], slices[s].name)
                        _check_label_codes(label, y_b, z_b.shape[1], mid)
                        logits[i].append(z_b)
                    labels.append(y_b)
            y = np.concatenate(labels).astype(np.int64)
            for i in range(len(named)):
                z = np.concatenate(logits[i])
                values[i, s] = _metrics(names, y, z)
                for k, metric in enumerate(names):
                    margins[i, s, k] = margin(metric, y, z, part, value=float(values[i, s, k]),
                                              seed=sample.seed if sample is not None else 0)
            del logits, labels
    finally:
        for m, flag in zip(named.values(), was_training):
            m.train(flag)
    population = tuple(p.population for p in parts)
    out = EvalMatrix(tuple(named), tuple(slices), names, values, tuple(counts), snap.version, None, margins, population)
    if record:
        eid = catalog.record_evaluation(out.to_table())
        out = EvalMatrix(out.models, out.slices, out.metrics, out.values, out.counts, out.data_version, eid, margins,
                         population)
    return out
