"""Scoring and selection on a Ray cluster: per-fragment work in Ray, one exact merge on the driver.

- :func:`score_on_ray`: Ray Data reads the snapshot's fragments (:meth:`Snapshot.to_ray`),
  Ray tasks run the model over them (fused with the reads) and computes the scores with the same code as the
  single-process pass (:func:`training.scoring.scores_from_logits`), and the driver writes all
  of them as **one** store version, keys ascending, exactly as :func:`training.scoring.score`.
- :func:`select_on_ray`: each block keeps its candidates with the engine's streaming
  accumulators (``UniformSampler``, ``TopK``, ``WeightedSampler``); their ranks depend only on
  ``(seed, key, value)``, so the driver's merge of the candidates is the single-process result:
  the same train set for the same seed, weights included. Class and interval quotas
  (``ClassBalanced``, ``TriggerBalanced``) run in two phases, counts then per-group candidates
  (:mod:`.ray_quota`). Strategies without a distributed plan (see :func:`supports`) run in the
  driver.
- :func:`connect`: ``ray.init(address=...)`` once per process (pipelines' ``ray: {address:}``
  and ``--ray ADDRESS``).

Example (needs the ``ray`` extra)::

    connect("auto")                                   # or "ray://head:10001", or "local"
    result = score_on_ray(store, model, inputs={"features": "x"}, scores=("loss",))
    ts = select_on_ray(Loss(ratio=0.1), store.as_of(), seed=0,
                       scores={"loss": (result.keys, result.values["loss"])})
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.app.pipeline._ray_data import raising_errors as _raising
from modyn_store.core.errors import ConflictError, InvalidArgumentError, ModynStoreError, engine_errors
from modyn_store.core.snapshot import Snapshot
from modyn_store.core.trainset import TrainSet

__all__ = ["connect", "score_on_ray", "select_on_ray", "supports"]

T = TypeVar("T")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("running on Ray needs the ray extra: pip install 'modyn-store[ray]'") from exc
    return ray


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``"auto"``, ``"ray://host:port"``, ``"host:port"``, or
    ``"local"`` for a cluster on this machine) unless this process already joined one."""
    from modyn_store.app.pipeline.checks import RAY_ADDRESSES, ray_address_problem

    if address is not None and ray_address_problem(address) is not None:
        raise InvalidArgumentError("ray.address", address, RAY_ADDRESSES)
    ray = _ray()
    if ray.is_initialized():
        return
    ray.init(address=None if address in (None, "local") else address, include_dashboard=False,
             log_to_driver=False)
    _quiet()


def _quiet() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def _typed_cause(exc: BaseException) -> BaseException | None:
    """The store's (or the engine's) typed error inside Ray's wrapping of a failed task, or None."""
    from engine.errors import EngineInputError

    ray = _ray()
    for _ in range(8):  # a task that failed on another task's failure nests the wrappings
        if not isinstance(exc, ray.exceptions.RayTaskError) or exc.cause is None or exc.cause is exc:
            break
        exc = exc.cause
    if isinstance(exc, ray.exceptions.RayTaskError):
        return None
    return exc if isinstance(exc, (ModynStoreError, EngineInputError)) else None


@contextmanager
def _unwrapped() -> Iterator[None]:
    """Raise the typed error a Ray task raised (``InvalidArgumentError``, ``ErasedKeysError``,
    ...) as itself, not inside Ray's ``RayTaskError``, so callers catch it as on the
    single-process path; Ray's error (with the task's traceback) becomes its ``__cause__``."""
    ray = _ray()
    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        cause = _typed_cause(exc)
        if cause is None:
            raise
        from engine.errors import EngineInputError

        if isinstance(cause, EngineInputError):  # as engine_errors() turns it in one process
            raise InvalidArgumentError(cause.name, cause.value, cause.expected) from exc
        raise cause from exc


def _reading(store: Any, run: Callable[[], T]) -> T:
    """``run()``, a Ray job over the store's samples, run again from the latest manifest when
    files of the one it planned on vanished (a compaction, erase or vacuum, here or in another
    process, deletes them at once), as the single-process reads do; the snapshot's key sets are
    refreshed by the new plan. A read task of :meth:`Snapshot.to_ray` reports such files as
    :class:`~modyn_store.core.errors.ConflictError` ("read again"): run again too, and raised on
    the last attempt. A failure that persists raises
    :class:`~modyn_store.core.errors.CorruptionError`; any other error reaches the caller."""
    from modyn_store.core._failures import READ_ATTEMPTS, READ_ERRORS

    for attempt in range(READ_ATTEMPTS):
        try:
            with _unwrapped():
                return run()
        except READ_ERRORS as exc:
            store._tables.retry_after("samples", exc, attempt)
        except ConflictError:
            if attempt + 1 == READ_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# -- scoring -------------------------------------------------------------------------------
def _score_block(block: pa.Table, model: Any, inputs: dict[str, str], label: str, names: list[str],
                 need_label: bool, embedding_layer: str | None) -> dict[str, np.ndarray]:
    """A Ray task: the model over one block of a snapshot (fused with the fragment read)."""
    import torch

    from training.columns import spec_of, to_fixed
    from training.scoring import scores_from_logits
    from training.trainer import model_inputs

    torch.set_num_threads(1)
    model.eval()
    captured: list[Any] = []
    hook = None
    if embedding_layer is not None:
        hook = model.get_submodule(embedding_layer).register_forward_hook(
            lambda mod, args, out: captured.append(args[0].detach()))
    try:
        batch: dict[str, Any] = {"key": torch.from_numpy(block.column("key").to_numpy().copy())}
        for col in {*inputs.values(), *([label] if need_label else [])}:
            spec = spec_of(block.schema.field(col))
            batch[col] = torch.from_numpy(np.array(to_fixed(block.column(col), spec)))
        with torch.no_grad():
            logits = model(**model_inputs(batch, inputs))
            values = scores_from_logits(names, logits, batch[label] if need_label else None,
                                        captured[-1] if captured else None)
    finally:
        if hook is not None:
            hook.remove()
    out = {"key": batch["key"].numpy()}
    out.update({n: v.numpy() for n, v in values.items()})
    return out


def score_on_ray(
    store: Any,
    model: Any,
    *,
    inputs: Mapping[str, str],
    version: int | None = None,
    label: str = "label",
    scores: Sequence[str] = ("loss", "least_confidence", "entropy", "margin", "el2n"),
    embedding_layer: str | None = None,
    batch_size: int = 4096,
    training_id: str | None = None,
    write: bool = True,
    workers: int = 2,
) -> Any:
    """The scoring pass of :func:`training.scoring.score` over every live sample at ``version``,
    run by ``workers`` parallel Ray tasks (fused with the fragment reads); returns the same :class:`~training.scoring.ScoreResult`
    (keys ascending) and writes every score as one store version."""
    from training.scoring import _NEED_EMBEDDING, _NEED_LABEL, SCORES, ScoreResult, check_writable, last_linear

    names = list(scores)
    if not names or len(set(names)) != len(names) or any(n not in SCORES for n in names):
        raise InvalidArgumentError("scores", names, f"distinct names from {SCORES}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError("workers", workers, "an integer >= 1")
    if any(n in _NEED_EMBEDDING for n in names) and embedding_layer is None:
        embedding_layer = last_linear(model)
    need_label = any(n in _NEED_LABEL for n in names)
    snap = store.as_of(version)
    if write:  # keys deleted since ``version`` are refused before any task runs, as score() does
        check_writable(store, snap.version, snap.keys)
    cols = list(dict.fromkeys([*inputs.values(), *([label] if need_label else [])]))
    ray = _ray()
    _quiet()
    kwargs = {"model": model.cpu(), "inputs": dict(inputs), "label": label,
              "names": names, "need_label": need_label, "embedding_layer": embedding_layer}

    def run() -> list[Any]:
        # a few large blocks per worker: each task pays for the model once, not once per small block
        ds = _raising(snap.to_ray(cols, override_num_blocks=4 * workers).map_batches(
            _score_block, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=batch_size,
            compute=ray.data.TaskPoolStrategy(size=workers),
        ))
        return list(ds.iter_batches(batch_format="numpy", batch_size=None))

    parts = _reading(store, run)
    keys = np.concatenate([p["key"] for p in parts]) if parts else np.empty(0, np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    values = {n: (np.concatenate([np.asarray(p[n]) for p in parts]) if parts else np.empty(0))[order] for n in names}
    versions: dict[str, int] = {}
    if write and keys.size:
        v = store.scores.write_many(keys, values, training_id=training_id).version
        versions = {n: v for n in names}
    return ScoreResult(keys, values, versions)


# -- selection -----------------------------------------------------------------------------
def supports(strategy: Any) -> bool:
    """Whether :func:`select_on_ray` has a distributed plan for ``strategy``: ``Uniform``,
    ``ClassBalanced``, ``TriggerBalanced`` and score-based ``sample_then_batch`` downsampling.
    Not ``GDumb``: its memory follows from a sequential greedy process (docs/scale-out.md)."""
    from policies.rho_loss import RhoLoss
    from policies.score_based import ScoreDownsample
    from policies.uniform import Uniform

    if isinstance(strategy, Uniform) or _quota_plan(strategy) is not None:
        return True
    # not RhoLoss: its score is derived from two others on the non-holdout rows, not read
    return (isinstance(strategy, ScoreDownsample) and not isinstance(strategy, RhoLoss)
            and strategy.mode == "sample_then_batch")


def _quota_plan(strategy: Any) -> Any:
    """The two-phase plan of a class/interval quota strategy (:mod:`.ray_quota`), or None."""
    from policies.class_balanced import ClassBalanced
    from policies.trigger_balanced import TriggerBalanced

    from . import ray_quota

    if isinstance(strategy, ClassBalanced):
        return ray_quota.class_balanced_on_ray
    if isinstance(strategy, TriggerBalanced):
        return ray_quota.trigger_balanced_on_ray
    return None


def _uniform_block(block: pa.Table, k: int, seed: int, excluded: np.ndarray) -> dict[str, np.ndarray]:
    from engine.sample import UniformSampler

    keys = block.column("key").to_numpy()
    if excluded.size:  # the pipeline's keys past the firing position
        keys = keys[~np.isin(keys, excluded)]
    s = UniformSampler(k, seed=seed)
    s.update(keys)
    return {"key": s.result()}


def _top_block(block: pa.Table, k: int, largest: bool) -> dict[str, np.ndarray]:
    from engine.select import TopK

    top = TopK(k, largest=largest)
    top.update(block.column("value").to_numpy().astype(np.float64), keys=block.column("key").to_numpy())
    keys, values = top.result()
    return {"key": np.asarray(keys, np.int64), "value": np.asarray(values, np.float64)}


def _weighted_block(block: pa.Table, k: int, seed: int, strategy: Any) -> dict[str, np.ndarray]:
    from engine.sample import WeightedSampler

    keys = block.column("key").to_numpy()
    w = strategy._weights(block.column("value").to_numpy())
    ok = w > 0
    s = WeightedSampler(k, seed=seed)
    s.update(w[ok], keys=keys[ok])
    chosen = np.asarray(s.result(), dtype=np.int64)
    order = np.argsort(keys[ok], kind="stable")
    picked = order[np.searchsorted(keys[ok], chosen, sorter=order)]
    return {"key": chosen, "weight": w[ok][picked]}


def _collect(ds: Any) -> dict[str, np.ndarray]:
    parts = list(ds.iter_batches(batch_format="numpy", batch_size=None))
    if not parts:
        return {}
    return {c: np.concatenate([np.asarray(p[c]) for p in parts]) for c in parts[0]}


def select_on_ray(
    strategy: Any,
    snapshot: Snapshot | Any,
    *,
    seed: int | None = None,
    scores: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    scores_version: int | None = None,
) -> TrainSet:
    """The train set ``strategy.select(SelectionContext(snapshot=snapshot, seed=seed, ...))``
    gives, computed from per-block candidates in Ray (see the module docstring).

    ``seed`` defaults to 0. ``scores`` (``name -> (keys, values)``, e.g. from
    :func:`score_on_ray`) play the part of ``computed_scores``; without them score-based
    strategies read the store's latest scores at ``scores_version`` (default: the snapshot's
    version). ``snapshot`` may also be a full ``SelectionContext`` (a pipeline's), which holds
    its own seed and scores: ``seed``, ``scores`` and ``scores_version`` must then be left unset.
    """
    from policies._pick import derive_seed, trainset
    from policies.base import SelectionContext
    from policies.score_based import ScoreDownsample
    from policies.uniform import Uniform

    if isinstance(snapshot, SelectionContext):  # a pipeline's full context
        given = {"seed": seed, "scores": scores, "scores_version": scores_version}
        for name, value in given.items():
            if value is not None:  # the context's own would silently win
                raise InvalidArgumentError(name, value, "None with a SelectionContext (set it in the context)")
        ctx = snapshot
        snapshot = cast(Any, ctx.snapshot)
    else:
        ctx = SelectionContext(snapshot=snapshot, scores=snapshot._store.scores, seed=0 if seed is None else seed,
                               computed_scores=dict(scores or {}), scores_version=scores_version)
    seed = ctx.seed
    quota_plan = _quota_plan(strategy)
    if not supports(strategy) or (ctx.candidates is not None and quota_plan is None):
        return strategy.select(ctx)  # no distributed plan: the driver runs it as is
    ray = _ray()
    _quiet()
    if quota_plan is not None:
        with engine_errors():
            return _reading(snapshot._store, lambda: quota_plan(strategy, ctx))  # type: ignore[no-any-return]
    if isinstance(strategy, Uniform):
        from policies._pick import all_keys
        from policies._stream import count_rows

        n = count_rows(ctx)
        k = strategy.expected_size(n)
        if k >= n:
            return trainset(all_keys(ctx), ctx)
        s = derive_seed(seed, 3)
        excluded = sorted_unique(np.asarray(ctx.excluded, dtype=np.int64))
        cand = _reading(snapshot._store, lambda: _collect(_raising(snapshot.to_ray(["key"]).map_batches(
            _uniform_block, fn_kwargs={"k": k, "seed": s, "excluded": excluded}, batch_format="pyarrow",
            batch_size=None))))
        from engine.sample import UniformSampler

        uniform = UniformSampler(k, seed=s)
        uniform.update(cand.get("key", np.empty(0, np.int64)))
        return trainset(np.sort(np.asarray(uniform.result(), dtype=np.int64)), ctx)
    assert isinstance(strategy, ScoreDownsample)
    keys, values = _score_arrays(strategy, ctx)
    table = pa.table({"key": pa.array(keys, pa.int64()), "value": pa.array(values, pa.float64())})
    blocks = ray.data.from_arrow(table).repartition(max(1, int(ray.available_resources().get("CPU", 1))))
    if strategy.method == "top":
        k = strategy.expected_size(int(keys.size))
        with _unwrapped():
            cand = _collect(_raising(blocks.map_batches(_top_block, fn_kwargs={"k": k, "largest": strategy.largest},
                                                        batch_format="pyarrow", batch_size=None)))
        from engine.select import TopK

        top = TopK(k, largest=strategy.largest)
        if cand:
            top.update(cand["value"], keys=cand["key"])
        return trainset(np.sort(np.asarray(top.result()[0], dtype=np.int64)), ctx)
    from engine.errors import EngineInputError
    from engine.sample import _add_total, _importance
    from policies._pick import score_source
    from policies.score_based import importance_of_all

    # the weight total and count as the single-process sampler sums them (same batches, same
    # order), the total kept as (largest weight, sum of weights / largest) like WeightedSampler
    # keeps it: a total beyond float64 (scores near its maximum) gives the same finite weights
    largest, scaled, n_pos, n_all = 0.0, 0.0, 0, 0
    for batch_keys, vals in score_source(ctx, strategy.score)():
        w = strategy._weights(vals, batch_keys)  # a non-finite score named by its key, as in one process
        largest, scaled = _add_total(largest, scaled, w[w > 0])
        n_pos += int(np.count_nonzero(w > 0))
        n_all += int(w.size)
    k = strategy.expected_size(n_all)  # a share of every scored row, as in one process
    s = derive_seed(seed, 10)
    with _unwrapped():
        cand = _collect(_raising(blocks.map_batches(
            _weighted_block, fn_kwargs={"k": k, "seed": s, "strategy": strategy}, batch_format="pyarrow",
            batch_size=None)))
    from engine.sample import WeightedSampler

    merged = WeightedSampler(k, seed=s)
    if cand:
        merged.update(cand["weight"], keys=cand["key"])
    chosen = np.asarray(merged.result(), dtype=np.int64)
    order = np.argsort(cand["key"], kind="stable") if cand else np.empty(0, np.int64)
    w_sel = cand["weight"][order[np.searchsorted(cand["key"], chosen, sorter=order)]] if chosen.size else np.empty(0)
    try:
        importance = importance_of_all(
            _importance(np.asarray(w_sel, dtype=np.float64), largest, scaled, n_pos, chosen), n_pos, n_all)
    except EngineInputError as exc:  # named by key, as the single-process sampler names it
        raise strategy._importance_error(exc, lambda key: key, "key") from exc
    return trainset(chosen, ctx, weights=importance)


def _score_arrays(strategy: Any, ctx: Any) -> tuple[np.ndarray, np.ndarray]:
    """All eligible ``(keys, values)`` of the strategy's score as the single-process source reads
    them, refused where it refuses them: integers beyond ``2**53`` and, for ``method="top"``, NaN
    (a block's ``TopK`` would skip it and fill the train set with other rows)."""
    from policies._pick import score_source

    parts = list(score_source(ctx, strategy.score)())
    if not parts:
        return np.empty(0, np.int64), np.empty(0)
    keys = np.concatenate([k for k, _ in parts])
    values = np.concatenate([strategy._as_float(v, lambda i, k=k: f"key {int(k[i])}") for k, v in parts])
    if strategy.method == "top":
        strategy._refuse_nan(values, lambda i: f"key {int(keys[i])}", "; score again with a working model")
    return keys, values
