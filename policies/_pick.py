"""Streaming building blocks of selection strategies (bounded memory, engine kernels).

All functions read the eligible rows of a :class:`~policies.base.SelectionContext` through
:func:`policies._stream.iter_rows` and keep ``O(k)`` state.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import numpy as np

from modyn_store.core._validate import as_array, as_keys, check_float_or_none, check_int_or_none
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies._columns import column_to_numpy
from policies._records import SelectionContext, check_seed
from policies._stream import Bound, _isin, count_rows, iter_rows

__all__ = [
    "RatioOrLimit",
    "add_label_counts",
    "all_keys",
    "check_size",
    "derive_seed",
    "label_counts",
    "newest_keys",
    "pick",
    "pick_share",
    "score_source",
    "sorted_counts",
    "target_size",
    "trainset",
    "uniform_keys",
]

_EMPTY = np.empty(0, dtype=np.int64)


def derive_seed(seed: int, *salt: int) -> int:
    """An independent 63-bit seed for ``(seed, *salt)``; each must be an integer in
    ``[0, 2**63 - 1]`` (:class:`InvalidArgumentError` otherwise: out-of-range values are
    refused, not wrapped, so no two seeds give the same selections)."""
    parts = [check_seed("seed", seed), *[check_seed("salt", s) for s in salt]]
    state = np.random.SeedSequence(parts)
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def check_size(ratio: Any, limit: Any) -> tuple[float | None, int | None]:
    """Validate the size parameters shared by strategies: ``ratio`` in (0, 1], ``limit`` >= 1."""
    return (check_float_or_none("ratio", ratio, 0.0, 1.0, lo_open=True),
            check_int_or_none("limit", limit, 1))


def target_size(n: int, ratio: float | None, limit: int | None) -> int:
    """Rows to select out of ``n``: ``round(ratio * n)`` (or ``n``), capped by ``limit``."""
    k = n if ratio is None else int(round(ratio * n))
    return min(k, limit) if limit is not None else k


class RatioOrLimit:
    """Mixin of strategies sized by a ``ratio`` of the eligible rows, a ``limit``, or both
    (neither: every eligible row); it owns the constructor and :meth:`expected_size`."""

    ratio: float | None
    limit: int | None

    def __init__(self, ratio: float | None = None, limit: int | None = None) -> None:
        self.ratio, self.limit = check_size(ratio, limit)

    def expected_size(self, n: int) -> int:
        """The train set size for ``n`` eligible samples."""
        return target_size(n, self.ratio, self.limit)


def all_keys(ctx: SelectionContext, *, since: Bound = None,
             until: Bound = None) -> np.ndarray:
    """Every eligible key, sorted."""
    parts = [b["key"] for b in iter_rows(ctx, since=since, until=until)]
    return np.sort(np.concatenate(parts)) if parts else _EMPTY


def uniform_keys(ctx: SelectionContext, k: int, *, seed: int, since: Bound = None,
                 until: Bound = None) -> np.ndarray:
    """A uniform sample of ``k`` eligible keys without replacement, sorted (streaming)."""
    from engine.sample import UniformSampler

    sampler = UniformSampler(k, seed=seed)
    for b in iter_rows(ctx, since=since, until=until):
        sampler.update(b["key"])
    return np.sort(np.asarray(sampler.result(), dtype=np.int64))


def newest_keys(ctx: SelectionContext, k: int, *, since: Bound = None,
                until: Bound = None) -> np.ndarray:
    """The ``k`` eligible keys of the latest event time (ties: smaller key), sorted."""
    from engine.select import TopK

    top = TopK(k, largest=True)
    for b in iter_rows(ctx, ["ts"], since=since, until=until):
        top.update(_event_times(np.asarray(b["ts"])), keys=b["key"])
    return np.sort(np.asarray(top.result()[0], dtype=np.int64))


def _event_times(ts: np.ndarray) -> np.ndarray:
    """Event times as ranked by :func:`newest_keys`: signed integers (int64 nanoseconds for
    datetimes) stay exact as int64 (as float64, present-day times 256 ns apart would tie);
    uint64, which may not fit in int64, is shifted by ``-2**63`` into int64 (same order, exact:
    as float64, ``2**53`` and ``2**53 + 1`` would tie); other types (floats) as float64. A
    column has one type, so every batch is ranked the same way."""
    if ts.dtype == np.uint64:
        return (ts ^ np.uint64(1 << 63)).view(np.int64)
    if ts.dtype.kind == "i" or (ts.dtype.kind == "u" and ts.dtype.itemsize < 8):
        return ts.astype(np.int64, copy=False)
    return ts.astype(np.float64)


def pick(ctx: SelectionContext, k: int, how: str, *, seed: int, n: int | None = None,
         since: Bound = None, until: Bound = None) -> np.ndarray:
    """``k`` eligible keys chosen ``how`` (``"uniform"`` or ``"newest"``); all when ``k >= n``."""
    n = count_rows(ctx, since=since, until=until) if n is None else n
    if k >= n:
        return all_keys(ctx, since=since, until=until)
    if how == "uniform":
        return uniform_keys(ctx, k, seed=seed, since=since, until=until)
    if how == "newest":
        return newest_keys(ctx, k, since=since, until=until)
    raise InvalidArgumentError("sample", how, "one of 'uniform', 'newest'")


#: a one-pass uniform sample keeps up to this many (rank, key) pairs (16 bytes each); a larger
#: bound on the sample size counts first and samples in a second pass
ONE_PASS_MAX_ROWS = 1 << 23


def _count_bound(ctx: SelectionContext) -> int | None:
    """An upper bound of the eligible rows known without a scan (``None``: unknown)."""
    bound_of = getattr(ctx.snapshot, "count_bound", None)
    if bound_of is None:
        return None
    bound = int(bound_of())
    if ctx.candidates is not None:
        bound = min(bound, int(ctx.candidates.size))
    return bound


def pick_share(ctx: SelectionContext, size_of: Callable[[int], int], how: str, *, seed: int,
               since: Bound = None, until: Bound = None) -> np.ndarray:
    """``pick(ctx, size_of(n), how)`` for the ``n`` eligible rows, counted in the same pass.

    A uniform sample keyed by hash is the same whatever the chunking, and a sampler of a
    larger size holds every smaller sample (:meth:`engine.sample.UniformSampler.result`), so
    with a bound of ``n`` from the snapshot's metadata one streamed pass counts and samples.
    Without a bound (or when the bounded sample would be large) it counts, then picks.
    ``size_of`` must not decrease with ``n``.
    """
    bound = _count_bound(ctx) if how == "uniform" else None
    if bound is not None:
        k_max = size_of(bound)
        if k_max <= ONE_PASS_MAX_ROWS:
            from engine.sample import UniformSampler

            sampler = UniformSampler(k_max, seed=seed)
            n = 0
            for b in iter_rows(ctx, since=since, until=until):
                n += int(b["key"].size)
                sampler.update(b["key"])
            k = size_of(n)
            if k <= k_max:  # always, for a size that grows with n
                return np.asarray(sampler.result(k), dtype=np.int64)
    n = count_rows(ctx, since=since, until=until)
    return pick(ctx, size_of(n), how, seed=seed, n=n, since=since, until=until)


class _MissingLabel:
    """The one missing label (null) of a non-numeric label column (strings, booleans), ordered
    after every present label, as NaN is after the numbers (a null does not compare with a
    string, so it cannot be sorted as it is read)."""

    _one: _MissingLabel | None = None

    def __new__(cls) -> _MissingLabel:
        if cls._one is None:
            cls._one = super().__new__(cls)
        return cls._one

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return other is self

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __ge__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return hash("modyn_store.missing_label")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_MissingLabel, ())

    def __repr__(self) -> str:
        return "<missing label>"


MISSING_LABEL = _MissingLabel()


def fill_missing_labels(values: Any) -> np.ndarray:
    """``values`` with each null (``None``) of an object array (a string or boolean label column
    holding nulls) replaced by :data:`MISSING_LABEL`, so the labels sort and compare."""
    v = np.asarray(values)
    if v.dtype == object and v.size:
        miss = np.equal(v, np.array(None, dtype=object))  # one pass in C, no list of the labels
        if miss.any():
            v = v.copy()
            v[miss] = MISSING_LABEL
    return v


def label_counts(ctx: SelectionContext, *, since: Bound = None,
                 until: Bound = None) -> dict[Hashable, int]:
    """Eligible rows per label value, in sorted label order (a missing label last)."""
    counts: dict[Hashable, int] = {}
    for b in iter_rows(ctx, [ctx.label_column], since=since, until=until):
        add_label_counts(counts, *np.unique(fill_missing_labels(b[ctx.label_column]),
                                            return_counts=True))
    return sorted_counts(counts)


_NAN = float("nan")  # the one key of missing labels (every NaN object hashes apart)


def add_label_counts(counts: dict[Hashable, int], values: np.ndarray, n: np.ndarray) -> None:
    """Add the counts ``n`` of the distinct label ``values`` of one batch to ``counts``.

    A nullable integer column reads as float64 (NaN for null) in a batch holding a null and as
    int64 in one without: ``2.0`` and ``2`` are one label, and every NaN is the one label ``nan``.
    """
    for v, c in zip(values.tolist(), n.tolist()):
        if isinstance(v, float) and v != v:
            v = _NAN
        counts[v] = counts.get(v, 0) + int(c)


def _label_order(label: Hashable) -> tuple[Any, ...]:
    """Numbers (ints and floats alike) by value, NaN after them; other types by type, then value;
    a missing label of a non-numeric column last."""
    if label is MISSING_LABEL:
        return ("\U0010ffff", True, 0)
    if isinstance(label, (int, float, np.integer, np.floating)) and not isinstance(label, bool):
        nan = label != label
        return ("", nan, 0 if nan else label)
    return (str(type(label)), False, label)


def sorted_counts(counts: dict[Hashable, int]) -> dict[Hashable, int]:
    """``counts`` in the label order of :func:`label_counts`: ascending, NaN (missing) last,
    which is the order of ``np.sort`` and ``np.searchsorted`` on the label values."""
    return dict(sorted(counts.items(), key=lambda kv: _label_order(kv[0])))


def score_source(ctx: SelectionContext, name: str) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A re-iterable source of ``(keys, values)`` batches of score ``name`` for eligible keys.

    ``ctx.computed_scores[name]`` (from a scoring pass) comes first: a ``(keys, values)`` pair,
    or a zero-argument callable that returns an iterator of such batches (streaming scores).
    Otherwise the store's latest scores at ``ctx.scores_version`` (default: the snapshot's
    version) are streamed (``Scores.batches``, bounded memory) on each pass. Keys not eligible
    are dropped: ``ctx.excluded`` keys, keys outside ``ctx.candidates``, and keys not live in
    the snapshot (deleted, erased, or not yet inserted at its version) of a computed
    ``(keys, values)`` pair (one vectorized ``snapshot.contains`` call) or of stored scores read
    at another version. A streamed source (a callable) is trusted to yield keys of the snapshot,
    as a scoring pass over it does: checking each of its batches would read the whole key set
    (or look up every key) and undo its bounded memory; a key erased since is refused later by
    the loader (``ErasedKeysError``).
    """
    raw: Callable[[], Iterable[tuple[Any, Any]]]
    live = _live_mask(ctx)
    computed = name in ctx.computed_scores
    if computed:
        src = ctx.computed_scores[name]
        if callable(src):
            raw = src
        else:
            # keys by the store's rules: a float, string or out-of-range uint64 key is refused
            # (a cast would truncate 1.5 to 1, or wrap 2**64 - 1 to -1: another row's key)
            keys = as_keys(src[0], name=f"computed_scores[{name!r}]")
            # a masked value refused: NumPy would drop the mask and select on the value behind it
            values = as_array(src[1], name=f"computed_scores[{name!r}]", expected="numeric values")
            if keys.shape[0] != values.shape[0]:
                raise InvalidArgumentError(f"computed_scores[{name!r}]",
                                           (keys.shape, values.shape),
                                           "keys and values of the same length")
            _check_pair(name, keys, values)
            keep = live(keys)  # once, not on every pass
            if not keep.all():
                keys, values = keys[keep], values[keep]
            step = ctx.batch_size
            raw = lambda: ((keys[i:i + step], values[i:i + step])  # noqa: E731
                           for i in range(0, keys.shape[0], step))
    elif ctx.scores is not None:
        at = ctx.version if ctx.scores_version is None else ctx.scores_version
        store_scores = ctx.scores
        if hasattr(store_scores, "batches"):  # the store streams the latest score per key
            store_scores.batches(at, name)  # checked here: an unknown name fails now, not mid-pass
            raw = lambda: ((column_to_numpy(b.column(0)), column_to_numpy(b.column(1)))  # noqa: E731
                           for b in store_scores.batches(at, name, batch_size=ctx.batch_size))
        else:
            table = store_scores.as_of(at, name).select(["key", "value"])
            raw = lambda: ((column_to_numpy(b.column(0)), column_to_numpy(b.column(1)))  # noqa: E731
                           for b in table.to_batches(max_chunksize=ctx.batch_size))
    else:
        raise InvalidArgumentError("ctx.scores", None,
                                   f"store scores or computed_scores holding {name!r}")

    # keep the snapshot's live keys only of stored scores read at another version (a computed
    # pair was filtered above; stored scores read at the snapshot's version hold only its keys)
    check_live = not computed and ctx.scores_version is not None and ctx.scores_version != ctx.version

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for keys, values in raw():
            keys = as_keys(keys, name=f"computed_scores[{name!r}]")
            values = as_array(values, name=f"computed_scores[{name!r}]", expected="numeric values")
            if keys.shape[0] != values.shape[0]:
                raise InvalidArgumentError(f"computed_scores[{name!r}]",
                                           (keys.shape, values.shape),
                                           "batches of keys and values of the same length")
            mask = live(keys) if check_live else np.ones(keys.shape[0], dtype=bool)
            if ctx.excluded.size:
                mask &= ~_isin(keys, ctx.excluded)
            if ctx.candidates is not None:
                mask &= _isin(keys, ctx.candidates)
            if mask.all():
                yield keys, values
            elif mask.any():
                yield keys[mask], values[mask]

    return batches


def _check_pair(name: str, keys: np.ndarray, values: np.ndarray) -> None:
    """A computed ``(keys, values)`` pair holds numbers, one value a key: a key given twice
    would be scored twice (and picked by whichever value wins). Keys in ascending order (a
    scoring pass in key order) are checked in one pass, others through a sorted copy."""
    if values.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"computed_scores[{name!r}]", values.dtype,
                                   "numeric values (bool, integer or float)")
    if keys.size > 1 and not bool((keys[1:] > keys[:-1]).all()):
        ordered = np.sort(keys)
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        if same.size:
            raise InvalidArgumentError(f"computed_scores[{name!r}]", int(ordered[same[0]]),
                                       "each key once (this key has several values)")


def _live_mask(ctx: SelectionContext) -> Callable[[np.ndarray], np.ndarray]:
    """``keys -> bool mask``: which keys are live in the context's snapshot, one vectorized
    ``snapshot.contains`` call (or a search in ``snapshot.keys()``, read once, for a snapshot
    without ``contains``)."""
    contains = getattr(ctx.snapshot, "contains", None)
    if contains is not None:
        return lambda keys: np.asarray(contains(keys), dtype=bool)
    cache: list[np.ndarray] = []

    def mask(keys: np.ndarray) -> np.ndarray:
        if not cache:
            cache.append(np.sort(np.asarray(ctx.snapshot.keys(), dtype=np.int64)))
        return _isin(keys, cache[0])

    return mask


def trainset(keys: np.ndarray, ctx: SelectionContext, weights: np.ndarray | None = None,
             per_epoch: tuple[np.ndarray, ...] | None = None) -> TrainSet:
    """A ``TrainSet`` of ``keys`` at the context's version (weights 1 by default)."""
    keys = np.asarray(keys, dtype=np.int64)
    w = np.ones(keys.size) if weights is None else weights
    return TrainSet(keys=keys, weights=w, version=ctx.version, per_epoch=per_epoch)
