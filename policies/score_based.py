"""Score-based downsampling: keep the samples with the most informative per-sample score.

``loss``, ``gradnorm`` (last-layer gradient norm), ``el2n``, ``least_confidence``, ``entropy`` and
``margin`` share one implementation, :class:`ScoreDownsample`, and differ in the score they read
(and for ``margin``, that a small score is informative); what each score is comes from the one
score registry, :mod:`engine.score_registry`.

Two modes:

- ``sample_then_batch``: ``select`` reads the score of every eligible sample (from a scoring
  pass, ``ctx.computed_scores``, or the store's ``scores``) and returns the downsampled set.
  ``period`` = 0 scores once per trigger; ``period`` = p asks the training API to rescore every
  p epochs and call ``select`` again with the new scores.
- ``batch_then_sample``: ``select`` returns every eligible sample; the training API scores each
  large batch with :meth:`ScoreDownsample.score_batch` and trains on the positions and weights
  :meth:`ScoreDownsample.choose_in_batch` returns.

``method="top"`` keeps the ``k`` best scores (weight 1); ``method="importance"`` samples ``k``
without replacement with probability proportional to the score (successive sampling) and weights
each sample ``W / (N * w_i)`` (``W`` the sum of the weights, ``N`` every scored row, rows of weight
0 included): Katharopoulos & Fleuret's (2018) ``1 / (N p_i)``. That is the correction for draws
with replacement, so the weighted loss is an unbiased estimate of the mean loss only while ``k``
is a small share of ``N``.

``gradnorm`` is the exact norm of the loss gradient w.r.t. the last linear layer's weight and
bias; Katharopoulos & Fleuret rank by its upper bound, the norm of the gradient w.r.t. the
logits ``|p - onehot(y)|``, which is the ``el2n`` score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from engine.errors import EngineInputError
from engine.score_registry import ScoreSpec
from engine.score_registry import compute as compute_score
from engine.score_registry import get as get_score
from modyn_store.core._validate import check_choice, check_int
from modyn_store.core.errors import InvalidArgumentError, engine_errors
from modyn_store.core.trainset import TrainSet
from policies._options import only_with
from policies._pick import check_size, derive_seed, pick, score_source, target_size, trainset
from policies._stream import count_rows
from policies.base import SelectionContext, SelectionStrategy

__all__ = [
    "EL2N",
    "Entropy",
    "GradNorm",
    "LeastConfidence",
    "Loss",
    "Margin",
    "ScoreDownsample",
]

MODES = ("sample_then_batch", "batch_then_sample")

_EXACT = 2**53  # every integer up to this magnitude is exact in float64

_WEIGHT_AT = re.compile(r"^weights\[(-?\d+)\]$")


class ScoreDownsample(SelectionStrategy):
    """Keep ``round(ratio * n)`` samples (capped by ``limit``) by score (see the module notes).

    Parameters
    ----------
    ratio, limit:
        Share of the eligible samples (per batch in ``batch_then_sample``) and global limit.
    method:
        ``"top"`` or ``"importance"``.
    mode:
        ``"sample_then_batch"`` or ``"batch_then_sample"``.
    period:
        Epochs between rescoring passes in ``sample_then_batch`` (0: once per trigger); another
        value than 0 with ``batch_then_sample`` (which scores every batch) is refused.

    Example
    -------
    >>> import numpy as np, pyarrow as pa
    >>> from policies import Loss, SelectionContext
    >>> from modyn_store import Store
    >>> store = Store.open("memory://score-based-doc", create=True)
    >>> snap = store.as_of(store.append(pa.table({"key": [1, 2, 3, 4], "ts": [0, 1, 2, 3]})).version)
    >>> loss = (np.array([1, 2, 3, 4]), np.array([0.3, 2.5, 0.1, 0.9]))
    >>> Loss(ratio=0.5).select(SelectionContext(snapshot=snap, computed_scores={"loss": loss})).keys.tolist()
    [2, 4]
    """

    score: ClassVar[str] = ""

    def __init__(self, ratio: float = 0.25, limit: int | None = None, method: str = "top",
                 mode: str = "sample_then_batch", period: int = 0) -> None:
        self.ratio, self.limit = check_size(ratio, limit)
        self.method = check_choice("method", method, ("top", "importance"))
        self.mode = check_choice("mode", mode, MODES)
        # read by mode='sample_then_batch' only: another value with the other mode is refused
        self.period = only_with(ScoreDownsample.__init__, "period", check_int("period", period, 0), "mode", mode,
                                ("sample_then_batch",))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"ratio": 0.25}, {"ratio": 0.5, "limit": 20, "method": "importance"}]

    @classmethod
    def spec(cls) -> ScoreSpec:
        """The registry entry of the score this strategy reads (``engine.score_registry``)."""
        return get_score(cls.score)

    @property
    def largest(self) -> bool:
        """Whether a larger score is more informative (from the score registry)."""
        return self.spec().largest is not False

    @property
    def needs_labels(self) -> bool:
        """Whether :meth:`score_batch` needs labels."""
        return self.spec().needs_labels

    @property
    def needs_hidden(self) -> bool:
        """Whether :meth:`score_batch` needs the input of the model's last linear layer."""
        return self.spec().needs_hidden

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        if self.mode == "batch_then_sample":
            return frozenset({"model"})
        return frozenset({f"score:{self.score}"})

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible (scored) samples."""
        return n if self.mode == "batch_then_sample" else target_size(n, self.ratio, self.limit)

    def _weights(self, values: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """Sampling weights from scores: the score, or ``1 - score`` when small is informative.

        A non-finite weight (an ``inf`` or NaN loss of a diverged model) cannot be sampled
        proportionally; it raises :class:`InvalidArgumentError` naming the score and the row
        (its key when ``keys`` are given, else its position in ``values``).
        """
        v = np.asarray(values, dtype=np.float64)
        w = v if self.largest else 1.0 - v
        bad = np.flatnonzero(~np.isfinite(w))
        if bad.size:
            row = f"key {int(keys[bad[0]])}" if keys is not None else str(int(bad[0]))
            raise InvalidArgumentError(
                f"scores[{self.score!r}][{row}]", float(v[bad[0]]),
                "finite scores (method='importance' samples proportionally to the score; "
                "use method='top' or fix the model)")
        return w

    def score_batch(self, logits: np.ndarray, labels: np.ndarray | None = None, *,
                    hidden: np.ndarray | None = None,
                    keys: np.ndarray | None = None) -> np.ndarray:
        """This strategy's score of one batch (``engine.score_registry.compute``).

        ``hidden`` is the input of the model's last linear layer (needed by ``gradnorm``);
        ``keys`` are the batch's sample keys (unused here; scores that depend on stored values,
        such as RHO-LOSS, read them).
        """
        with engine_errors():
            return np.asarray(compute_score(self.score, logits=logits, labels=labels,
                                            hidden=hidden))

    def choose_in_batch(self, scores: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions (ascending) and weights of the samples to train on in one batch.

        A NaN score (``top``), or a non-finite one (``importance``), raises
        :class:`InvalidArgumentError` naming the score and the batch position, as in ``select``.
        """
        scores = self._as_float(scores, lambda i: f"batch position {i}")
        k = target_size(scores.size, self.ratio, None)
        with engine_errors():
            if self.method == "top":
                from engine.select import top_k

                # never ranked: the step would train on fewer rows than the ratio
                self._refuse_nan(scores, lambda i: f"batch position {i}", "")
                pos = np.sort(np.asarray(top_k(scores, k, largest=self.largest), dtype=np.int64))
                return pos, np.ones(pos.size)
            from engine.sample import weighted_sample

            w = self._weights(scores)
            ok = np.flatnonzero(w > 0)
            try:
                idx, importance = weighted_sample(w[ok], min(k, ok.size), seed=seed,
                                                  return_importance=True)
            except EngineInputError as exc:
                raise self._importance_error(exc, lambda i: int(ok[i]), "batch position") from exc
            order = np.argsort(ok[idx])
            # W / (N w_i) with N every row of the batch (the sampler's N counts those it was fed)
            return ok[idx][order], importance_of_all(importance, ok.size, scores.size)[order]

    def _as_float(self, values: Any, row: Callable[[int], str], score: str | None = None) -> np.ndarray:
        """Scores as float64, the type they are ranked in. Integer scores beyond ``2**53`` would
        round (``2**53 + 1`` ties with ``2**53``, and the smaller key, not the larger score,
        would win): they raise :class:`InvalidArgumentError` naming the score (``score``, else
        the strategy's) and the row."""
        v = np.asarray(values)
        if v.dtype.kind in "iu" and v.size:
            big = np.flatnonzero(v > _EXACT) if v.dtype.kind == "u" else np.flatnonzero((v > _EXACT) | (v < -_EXACT))
            if big.size:
                raise InvalidArgumentError(
                    f"scores[{score or self.score!r}][{row(int(big[0]))}]", int(v[big[0]]),
                    "integer scores within 2**53 (scores are ranked as float64, where larger "
                    "integers round and tie; pass them as floats)")
        return np.asarray(v, dtype=np.float64)

    def _refuse_nan(self, scores: np.ndarray, row: Callable[[int], str], advice: str) -> None:
        """Raise if a score is NaN (``method='top'`` ranks the scores: a NaN is never ranked),
        naming the score and ``row(position)`` of the first."""
        nan = np.flatnonzero(np.isnan(scores))
        if nan.size:
            raise InvalidArgumentError(
                f"scores[{self.score!r}][{row(int(nan[0]))}]", float("nan"),
                f"a score that is not NaN (method='top' ranks the scores; {nan.size} rows of this "
                f"batch have none: a diverged model's scores{advice})")

    def _select(self, ctx: SelectionContext) -> TrainSet:
        if self.mode == "batch_then_sample":
            return trainset(pick(ctx, target_size(count_rows(ctx), None, self.limit), "uniform",
                                 seed=derive_seed(ctx.seed, 9)), ctx)
        if self.method == "top":
            from engine.select import TopK

            src = score_source(ctx, self.score)
            n = sum(keys.size for keys, _ in src())
            top = TopK(self.expected_size(n), largest=self.largest)
            for keys, values in src():
                v = self._as_float(values, lambda i: f"key {int(keys[i])}")
                # never ranked: the train set would hold fewer rows than asked for
                self._refuse_nan(v, lambda i: f"key {int(keys[i])}", "; score again with a working model")
                top.update(v, keys=keys)
            return trainset(np.sort(np.asarray(top.result()[0], dtype=np.int64)), ctx)
        return self._importance(ctx)

    def _importance(self, ctx: SelectionContext) -> TrainSet:
        from engine.sample import WeightedSampler

        src = score_source(ctx, self.score)
        # the size is a share of every scored row, as with method="top" and in choose_in_batch;
        # rows of weight 0 are never drawn, so fewer rows come back when too few are positive
        n = sum(int(np.size(values)) for _, values in src())
        sampler = WeightedSampler(self.expected_size(n), seed=derive_seed(ctx.seed, 10))
        n_pos = 0
        for keys, values in src():
            w = self._weights(values, keys)
            ok = w > 0
            n_pos += int(np.count_nonzero(ok))
            sampler.update(w[ok], keys=keys[ok])
        try:
            chosen, weights = sampler.result(return_importance=True)
        except EngineInputError as exc:  # the sampler names the row by its key
            raise self._importance_error(exc, lambda key: key, "key") from exc
        # W / (N w_i) with N every scored row, rows of weight 0 included (the sampler's N counts
        # the rows it was fed, those of positive weight)
        return trainset(np.asarray(chosen, dtype=np.int64), ctx,
                        weights=importance_of_all(weights, n_pos, n))

    def _importance_error(self, exc: EngineInputError, row_of: Callable[[int], int],
                          what: str) -> InvalidArgumentError:
        """The engine's error about a chosen row's importance weight, naming the score and row."""
        m = _WEIGHT_AT.match(exc.name)
        if m is None:
            return InvalidArgumentError(exc.name, exc.value, exc.expected)
        row = row_of(int(m.group(1)))
        w = float(exc.value)
        return InvalidArgumentError(
            f"scores[{self.score!r}][{row}]", w if self.largest else 1.0 - w,
            f"a score (of the row of {what} {row}) whose sampling weight "
            f"{'' if self.largest else '1 - score '}is {exc.expected} (method='importance'; "
            "use method='top' for such scores)")


def importance_of_all(importance: np.ndarray, n_pos: int, n: int) -> np.ndarray:
    """Importance weights ``W / (n_pos w_i)`` of a sampler fed the ``n_pos`` rows of positive
    weight, turned into ``W / (n w_i)`` for all ``n`` scored rows (Katharopoulos & Fleuret's
    ``1 / (N p_i)``: rows of weight 0 are part of the mean the weighted loss estimates)."""
    return np.asarray(importance, dtype=np.float64) * (n_pos / n if n else 1.0)


def _make(name: str, cls_name: str, doc: str) -> type[ScoreDownsample]:
    from policies.base import register

    spec = get_score(name)
    assert name in spec.read_by, name  # the registry lists every strategy reading a score
    cls = type(cls_name, (ScoreDownsample,), {
        "__doc__": f"{doc}\n\n    Score ``{name}``: {spec.definition}.", "__module__": __name__,
        "score": name, "__init__": ScoreDownsample.__init__,
    })
    return register(name)(cls)  # type: ignore[no-any-return]


Loss = _make("loss", "Loss", "Keep the samples of highest loss (score ``loss``).")
GradNorm = _make("gradnorm", "GradNorm",
                 "Keep the samples of largest last-layer gradient norm (score ``gradnorm``).")
EL2N = _make("el2n", "EL2N", "Keep the samples of largest EL2N score (score ``el2n``).")
LeastConfidence = _make("least_confidence", "LeastConfidence",
                        "Keep the least confident samples (score ``least_confidence``).")
Entropy = _make("entropy", "Entropy", "Keep the samples of highest predictive entropy.")
Margin = _make("margin", "Margin",
               "Keep the samples of smallest top-1 minus top-2 probability margin.")
