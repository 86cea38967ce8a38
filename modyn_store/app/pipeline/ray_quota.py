"""Class and interval quotas on a Ray cluster, in two exact phases (``ClassBalanced``,
``TriggerBalanced``); :func:`~modyn_store.app.pipeline.ray_exec.select_on_ray` calls them.

A quota selection is water-filled quotas from the eligible rows per group, then per group the
``q`` best rows by a rank that depends only on the row (``engine.quota``). One Ray Data read
keeps each block's eligible ``(key, label)`` or ``(key, interval)`` rows in Ray's object store
(16 bytes a row for integer labels), and two rounds of Ray tasks, one task per block, work on them:

1. **counts**: each task counts the eligible rows per group of its block; the driver sums
   them and allocates the quotas exactly as the single-process strategy does (same budget, same
   group order, same redistribution of a short group's share);
2. **candidates**: each task keeps, per group, its block's best ``q`` rows under the *global*
   quota (any row of the result is among its own block's best ``q``); the driver runs the same
   kernel once more over the union of the candidates.

Ranks: ``ClassBalanced`` ranks a row by ``SplitMix64(seed, key)`` (``engine.quota.select_quotas``,
the kernel of its ``BalancedSelector``), ``TriggerBalanced`` by the same hash with each
interval's own seed (``engine.sample.UniformSampler``, its own sampler); ties go to the smaller
key. The rows a task sees are filtered with :func:`policies._stream.eligible_mask`, the mask of
the single-process reads (``excluded``, ``candidates``, cutoffs inside a version).

Example (needs the ``ray`` extra)::

    ts = select_on_ray(ClassBalanced(ratio=0.1), store.as_of(), seed=0)   # via ray_exec
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline._ray_data import raising_errors
from modyn_store.core.trainset import TrainSet

__all__ = ["class_balanced_on_ray", "trigger_balanced_on_ray"]

_EMPTY = np.empty(0, dtype=np.int64)


def _parts(ds: Any) -> list[Any]:
    """Run ``ds`` once; its blocks stay in Ray's object store for both phases (refs returned).
    Its map steps raise their own errors (the caller unwraps the store's typed ones)."""
    return list(raising_errors(ds).to_arrow_refs())


def _read(ray: Any, snapshot: Any, columns: list[str], filter: str | None = None, *, share: int = 1) -> Any:
    """A snapshot read in about two blocks per CPU of the cluster, divided among ``share`` reads:
    each block costs a task in both phases, so Ray Data's default of up to 200 small blocks per
    read would cost more than the work."""
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    return snapshot.to_ray(columns, filter, override_num_blocks=max(1, 2 * cpus // share))


def _run(ray: Any, fn: Any, refs: list[Any], **kwargs: Any) -> list[Any]:
    """``fn(block, **kwargs)`` as one Ray task per block; the results, in block order."""
    task = ray.remote(num_cpus=1)(fn)
    shared = {k: ray.put(v) for k, v in kwargs.items()}  # one copy per node, not one per task
    return list(ray.get([task.remote(r, **shared) for r in refs]))


def _eligible(block: pa.Table, col: str | None, excluded: np.ndarray, candidates: np.ndarray | None,
              after: Any = None, within: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The eligible rows' keys (and ``col`` values) of one block, as the single-process read masks them."""
    from policies._columns import column_to_numpy
    from policies._stream import eligible_mask

    keys = column_to_numpy(block.column("key"))
    ts = column_to_numpy(block.column("ts")) if after is not None or within is not None else None
    values = None if col is None else column_to_numpy(block.column(col))
    mask = eligible_mask(keys, ts, after=after, within=within, excluded=excluded, candidates=candidates)
    if mask is not None:
        keys = keys[mask]
        values = None if values is None else values[mask]
    return keys, values


# -- ClassBalanced -------------------------------------------------------------------------------
def _class_rows(block: pa.Table, col: str, excluded: np.ndarray, candidates: np.ndarray | None) -> pa.Table:
    """The read: a block's eligible ``(key, label)`` rows; an integer label column stays the
    Arrow column it is (exact, nulls kept), never read through float64."""
    from policies._columns import column_to_numpy
    from policies._stream import eligible_mask

    keys = column_to_numpy(block.column("key"))
    labels = block.column(col)
    mask = eligible_mask(keys, None, excluded=excluded, candidates=candidates)
    if mask is not None:
        keys, labels = keys[mask], labels.filter(pa.array(mask))
    if not pa.types.is_integer(labels.type):
        labels = pa.array(column_to_numpy(labels))
    return pa.table({"key": pa.array(keys, pa.int64()), "label": labels})


def _label_counts(block: pa.Table, integer: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Phase 1 task: eligible rows per label value of one block (present labels), and for an
    integer column the number of missing labels."""
    from policies._columns import column_to_numpy, integer_column
    from policies._pick import fill_missing_labels

    if block.num_rows == 0:  # an empty block may come without columns
        return _EMPTY, _EMPTY, 0
    if integer:  # exact integers (int64, or uint64 for a uint64 column) and their validity
        values, valid = integer_column(block.column("label"))
        present = values if valid is None else values[valid]
        labels, counts = np.unique(present, return_counts=True)
        return labels, counts, 0 if valid is None else int(values.size - present.size)
    labels, counts = np.unique(fill_missing_labels(column_to_numpy(block.column("label"))), return_counts=True)
    return labels, counts, 0


def _class_candidates(block: pa.Table, labels: np.ndarray, integer: bool, groups: np.ndarray,
                      quotas: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Phase 2 task: per class, the block's best ``quota`` rows (their keys and groups)."""
    from engine.quota import select_quotas
    from policies._columns import column_to_numpy, integer_column
    from policies.class_balanced import label_groups

    if block.num_rows == 0:
        return _EMPTY, _EMPTY
    keys = column_to_numpy(block.column("key"))
    if integer:
        values, valid = integer_column(block.column("label"))
        g = label_groups(values, labels, valid)
    else:
        g = label_groups(column_to_numpy(block.column("label")), labels)
    g = np.asarray(g, dtype=np.int64)
    pos = select_quotas(g, groups, quotas, rule="uniform", keys=keys, seed=seed)
    return keys[pos], g[pos]


def class_balanced_on_ray(strategy: Any, ctx: Any) -> TrainSet:
    """``strategy.select(ctx)`` for a ``ClassBalanced`` strategy, in the two phases above.

    The groups are positions in the sorted distinct labels, a missing label the one after them:
    the groups of the single-process strategy (integer labels compared exactly, as it reads them)."""
    import ray

    from engine.quota import allocate_quotas, select_quotas
    from policies._pick import add_label_counts, sorted_counts, trainset
    from policies.class_balanced import _integer_column, check_label_type

    check_label_type(ctx)  # a nested label column is refused, as in the single-process strategy
    col = ctx.label_column
    integer = _integer_column(ctx)  # the Arrow type, as the single-process strategy decides
    refs = _parts(_read(ray, ctx.snapshot, [col]).map_batches(
        _class_rows, fn_kwargs={"col": col, "excluded": ctx.excluded, "candidates": ctx.candidates},
        batch_format="pyarrow", batch_size=None))
    counted = [c for c in _run(ray, _label_counts, refs, integer=integer) if c[0].size or c[2]]
    if not counted:
        return trainset(_EMPTY, ctx)
    if integer:  # the sorted distinct present labels, exactly; the missing ones after them
        present = [c for c in counted if c[0].size]
        labels = np.unique(np.concatenate([c[0] for c in present])) if present else _EMPTY
        counts = np.zeros(labels.size + 1, dtype=np.int64)
        for values, n, _ in present:
            np.add.at(counts, np.searchsorted(labels, values), n)
        counts[-1] = sum(c[2] for c in counted)
        if counts[-1] == 0:
            counts = counts[:-1]
    else:  # the groups are positions in the sorted label values, as in label_counts
        merged: dict[Any, int] = {}
        for values, n, _ in counted:
            add_label_counts(merged, values, n)
        ordered = sorted_counts(merged)
        labels = np.array(list(ordered))
        counts = np.array(list(ordered.values()), dtype=np.int64)
    groups = np.arange(counts.size, dtype=np.int64)
    quotas = allocate_quotas(counts, strategy.expected_size(int(counts.sum())))
    seed = strategy.rank_seed(ctx)
    cand = _run(ray, _class_candidates, refs, labels=labels, integer=integer, groups=groups, quotas=quotas,
                seed=seed)
    keys = np.concatenate([c[0] for c in cand]).astype(np.int64)
    pos = select_quotas(np.concatenate([c[1] for c in cand]), groups, quotas, rule="uniform", keys=keys,
                        seed=seed)
    return trainset(np.sort(keys[pos]), ctx)


# -- TriggerBalanced -----------------------------------------------------------------------------
def _interval_rows(block: pa.Table, group: int, after: Any, within: Any, excluded: np.ndarray,
                   candidates: np.ndarray | None) -> pa.Table:
    """The read: the eligible keys of one block of one interval's scan, tagged with the interval."""
    keys, _ = _eligible(block, None, excluded, candidates, after, within)
    return pa.table({"key": pa.array(keys, pa.int64()),
                     "group": pa.array(np.full(keys.size, group, dtype=np.int64))})


def _interval_counts(block: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Phase 1 task: eligible rows per interval of one block."""
    from engine.quota import group_counts

    if block.num_rows == 0:  # an empty block may come without columns
        return _EMPTY, _EMPTY
    return group_counts(block.column("group").to_numpy())


def _interval_candidates(block: pa.Table, quotas: np.ndarray, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Phase 2 task: per interval, the block's best ``quota`` rows by the interval's uniform rank."""
    from engine.sample import UniformSampler

    out_k, out_g = [_EMPTY], [_EMPTY]
    if block.num_rows == 0:
        return _EMPTY, _EMPTY
    keys = block.column("key").to_numpy()
    g = block.column("group").to_numpy()
    for i in np.unique(g).tolist():
        if quotas[i] > 0:
            sampler = UniformSampler(int(quotas[i]), seed=seeds[i])
            sampler.update(keys[g == i])
            kept = np.asarray(sampler.result(), dtype=np.int64)
            out_k.append(kept)
            out_g.append(np.full(kept.size, i, dtype=np.int64))
    return np.concatenate(out_k), np.concatenate(out_g)


def trigger_balanced_on_ray(strategy: Any, ctx: Any) -> TrainSet:
    """``strategy.select(ctx)`` for a ``TriggerBalanced`` strategy, in the two phases above."""
    import ray

    from engine.quota import allocate_quotas
    from engine.sample import UniformSampler
    from policies._pick import trainset
    from policies._stream import segments

    ranges = strategy.intervals(ctx)
    seeds = strategy.interval_seeds(ctx)
    scans = [(i, seg) for i, (since, until) in enumerate(ranges) for seg in segments(since, until)]
    reads = []
    for i, (filt, after, within) in scans:
        cols = ["ts"] if after is not None or within is not None else []
        reads.append(_read(ray, ctx.snapshot, cols, filt, share=len(scans)).map_batches(
            _interval_rows, fn_kwargs={"group": i, "after": after, "within": within,
                                       "excluded": ctx.excluded, "candidates": ctx.candidates},
            batch_format="pyarrow", batch_size=None))
    refs = _parts(reads[0].union(*reads[1:]) if len(reads) > 1 else reads[0]) if reads else []
    counts = np.zeros(len(ranges), dtype=np.int64)
    for groups, n in _run(ray, _interval_counts, refs):
        counts[groups] += n
    sizes = allocate_quotas(counts, strategy.expected_size(int(counts.sum())))
    cand = _run(ray, _interval_candidates, refs, quotas=sizes, seeds=seeds)
    keys = np.concatenate([_EMPTY, *[c[0] for c in cand]])
    groups = np.concatenate([_EMPTY, *[c[1] for c in cand]])
    parts = []
    for i, s in enumerate(sizes):
        if s > 0:
            merged = UniformSampler(int(s), seed=seeds[i])
            merged.update(keys[groups == i])
            parts.append(np.asarray(merged.result(), dtype=np.int64))
    return trainset(np.sort(np.concatenate(parts)) if parts else _EMPTY, ctx)
