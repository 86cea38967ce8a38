"""A train set checked live and materialized into the store's cache: :func:`materialize_entry`.

:class:`LoaderOptions` are the read and cache knobs the loader passes down;
:func:`selection_digest` names the cache entry of a key set (order and weights do not matter).

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store
>>> from modyn_store.core.trainset import TrainSet
>>> from training.entries import materialize_entry
>>> store = Store.open("memory://entries-doc", create=True)
>>> _ = store.append(pa.table({"ts": np.arange(4), "x": np.arange(4) * 10}))
>>> entry = materialize_entry(store, TrainSet.uniform(np.array([3, 1]), version=1), ["x"])
>>> entry.keys.tolist()
[1, 3]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modyn_store.core._keyscan import increasing
from modyn_store.core._validate import check_choice, check_int, check_int_or_none
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from training.cache import DEFAULT_MAX_BYTES, Cache, CacheEntry, cache_for
from training.errors import ErasedKeysError
from training.building import Building
from training.materialize import KeyLookup, Strategy, materialize, plan, specs_for
from training.prefetch import host_budget

__all__ = ["LoaderOptions", "live_check", "materialize_entry", "selection_digest", "start_entry"]

@dataclass(frozen=True)
class LoaderOptions:
    """Tuning knobs of :func:`loader`.

    Parameters
    ----------
    strategy:
        Read path for materialization: ``"auto"`` (takes by row id on a local disk; on object
        storage by selectivity, see :func:`training.materialize.choose_strategy`), ``"scan"``
        or ``"take"``.
    threads:
        Parallel readers: fragments scanned at once, or chunks taken at once (default: 1 for
        masked scans, which Lance decodes on its own thread pool, in storage order so that the
        first epoch's first rows land first; twice the number of CPUs for takes, at most 16).
    max_cache_bytes:
        Bound of the store's on-disk cache (least recently used entries are evicted).
    device_memory_budget:
        Bytes of device memory the train set may occupy to be held on the GPU (default: half
        of the free device memory). ``0`` always streams from host memory.
    prefetch:
        Batches prepared ahead of the consumer by a background thread on CPU (default 0: each
        batch is gathered in the iterating thread when it is asked for, like a plain
        ``index_select`` loop). A thread pays a hand-off per batch and competes with the
        training step for the cores; it pays off only when the step leaves a core idle for the
        gathers (docs/PERFORMANCE.md, "Training data path").
    pin_memory:
        Use pinned host buffers for host-to-device copies (default: when the device is CUDA).
    host_memory_budget:
        Bytes of fixed-size columns (plus keys) a loader may hold in process memory when batches
        are gathered on the host (default: a quarter of the machine's available memory; ``0``
        always serves from the mapped file). A loader that builds the entry fills it in process
        memory within this budget (then writes each file once) and serves from that memory; one
        that opens an existing entry copies it from the mapping before its second epoch. Random
        gathers from anonymous memory were up to 2-3x faster than from the file mapping on the
        machine measured (docs/PERFORMANCE.md); the copy is one sequential read per loader.
    shared_cache:
        ``True`` (default): serve an entry of the store's cache, built once and shared by every
        loader of the same key set and columns. ``False``: read the rows from the store into
        an entry of this loader's own, in process memory, that no other loader opens; an entry
        of the store's cache is neither opened nor published. :func:`training.reproduce` uses
        it, so that a reproduction compares the training with the store's rows rather than with
        the copy the training itself read.

    Every field is checked when the options are built: ``threads`` an integer >= 1 or ``None``,
    the byte counts and ``prefetch`` integers >= 0 (the budgets also ``None``), ``pin_memory``
    a bool or ``None``, ``shared_cache`` a bool; anything else raises
    :class:`~modyn_store.core.errors.InvalidArgumentError` naming the field.
    """

    strategy: Strategy = "auto"
    threads: int | None = None
    max_cache_bytes: int = DEFAULT_MAX_BYTES
    device_memory_budget: int | None = None
    prefetch: int = 0
    pin_memory: bool | None = None
    host_memory_budget: int | None = None
    shared_cache: bool = True

    def __post_init__(self) -> None:
        # checked when the options are built, so a bad value never reaches a read or an epoch;
        # integers are stored as Python ints (NumPy integers accepted, bools refused)
        check_choice("LoaderOptions.strategy", self.strategy, ("auto", "scan", "take"))
        ints = {
            "threads": check_int_or_none("LoaderOptions.threads", self.threads, 1),
            "max_cache_bytes": check_int("LoaderOptions.max_cache_bytes", self.max_cache_bytes, 0),
            "device_memory_budget": check_int_or_none(
                "LoaderOptions.device_memory_budget", self.device_memory_budget, 0),
            "prefetch": check_int("LoaderOptions.prefetch", self.prefetch, 0),
            "host_memory_budget": check_int_or_none("LoaderOptions.host_memory_budget", self.host_memory_budget, 0),
        }
        if self.pin_memory is not None and not isinstance(self.pin_memory, bool):
            raise InvalidArgumentError("LoaderOptions.pin_memory", self.pin_memory, "True, False or None")
        if not isinstance(self.shared_cache, bool):
            raise InvalidArgumentError("LoaderOptions.shared_cache", self.shared_cache, "True or False")
        for name, value in ints.items():
            object.__setattr__(self, name, value)


def selection_digest(version: int, keys: np.ndarray, columns: Sequence[str]) -> str:
    """The cache entry name of the key set ``keys`` and ``columns`` at store ``version``.

    The order of ``keys`` does not matter: train sets with the same keys share an entry.
    """
    h = hashlib.sha256()
    h.update(b"modyn-store-materialized-v2|")
    h.update(np.int64(version).tobytes())
    k = np.asarray(keys, dtype=np.int64)
    h.update((k if increasing(k) else np.sort(k)).tobytes())
    h.update(json.dumps(list(columns)).encode())
    return f"v{int(version)}-{h.hexdigest()[:40]}"


def live_check(store: Any, train_set: TrainSet, sorted_keys: np.ndarray | None = None) -> Any:
    """The snapshot of ``train_set.version``; raises if some of its keys are no longer live."""
    snap = store.as_of(train_set.version)
    keys = np.sort(train_set.keys) if sorted_keys is None else sorted_keys
    ok = np.zeros(keys.size, bool)
    if keys.size:
        # streamed over the live keys: memory follows the train set, not the store
        lookup = KeyLookup(keys)
        for live in snap.iter_keys():
            pos = lookup(live)
            ok[pos[pos >= 0]] = True
    unavailable = snap.unavailable()
    if unavailable.size:
        ok &= ~np.isin(keys, unavailable)
    if not ok.all():
        raise ErasedKeysError(f"train set at version {train_set.version}", keys[~ok])
    return snap


def materialize_entry(
    store: Any, train_set: TrainSet, columns: Sequence[str], options: LoaderOptions = LoaderOptions()
) -> CacheEntry:
    """Materialize ``train_set``'s ``columns`` into the store's cache (or open the entry).

    Raises :class:`~training.errors.ErasedKeysError` when some keys are no longer live.
    """
    got = start_entry(store, train_set, columns, options)
    return got if isinstance(got, CacheEntry) else got.result()[0]


def start_entry(
    store: Any,
    train_set: TrainSet,
    columns: Sequence[str],
    options: LoaderOptions = LoaderOptions(),
    *,
    head_rows: int = 0,
) -> CacheEntry | Building:
    """The cache entry of ``train_set``'s ``columns``, or a :class:`~training.building.Building`
    that builds it in a background thread (its rows readable as they land; the first
    ``head_rows`` entry rows are read first, see :func:`~training.materialize.materialize`).

    The live check and the location of the rows (one scan of the version's keys) happen here,
    so :class:`~training.errors.ErasedKeysError` for keys that are not live is raised before
    this returns; errors of the read itself come from ``Building.result()``.
    """
    checked_at = store.version
    sorted_keys = np.sort(train_set.keys)
    snap = store.as_of(train_set.version)
    try:
        rows = snap.row_reader()
    except DataUnavailableError as exc:
        if not train_set.size:
            raise  # no key to name: the snapshot's own reason (e.g. no samples yet)
        raise ErasedKeysError(f"train set at version {train_set.version}", train_set.keys) from exc
    specs = specs_for(rows.schema, columns)
    name = selection_digest(train_set.version, sorted_keys, list(columns))
    # an entry of this loader's own is read from the store, never from a copy another loader made
    cache = cache_for(store, max_bytes=options.max_cache_bytes) if options.shared_cache else \
        Cache(None, max_bytes=options.max_cache_bytes)
    entry = cache.open(name, specs)
    if entry is not None:
        live_check(store, train_set, sorted_keys)  # served from the cache: its keys must still be live
        return entry
    what = f"train set at version {train_set.version}"
    # liveness and row ids in one scan of the version's keys
    located = snap.locate(sorted_keys)
    layout = plan(rows, sorted_keys, strategy=options.strategy, threads=options.threads, what=what, located=located)
    nbytes = int(layout.keys.size) * sum(s.row_nbytes() for s in specs.values() if s.kind == "fixed")
    # fill process memory and write each file once, when the loader may keep that memory
    stage = nbytes <= host_budget(options.host_memory_budget)
    building = Building(layout.keys, layout.jobs)

    def build(b: Building) -> tuple[CacheEntry | None, dict[str, np.ndarray] | None]:
        built = {"now": False}

        def fill(alloc: Callable[..., np.ndarray]) -> tuple[np.ndarray, dict[str, Any]]:
            built["now"] = True

            def allocate(spec: Any, n: int) -> np.ndarray:
                arr = alloc(spec, n)
                b.allocated(spec.name, arr)
                return arr

            for spec in specs.values():
                if spec.kind == "fixed":
                    allocate(spec, int(layout.keys.size))
            b.reading()
            out = materialize(
                rows,
                sorted_keys,
                list(columns),
                strategy=options.strategy,
                threads=options.threads,
                allocate=lambda spec, n: b.fixed[spec.name],
                what=what,
                layout=layout,
                progress=b.progress,
                head_rows=head_rows,
            )
            return out.keys, out.var

        try:
            entry = cache.build(name, sorted_keys, specs, fill, stage=stage)
        except Exception:
            if store.version != checked_at:
                # an erasure meanwhile removes the folder being built: name the erased keys
                live_check(store, train_set, sorted_keys)
            raise
        if built["now"] and store.version != checked_at:
            # a version (perhaps an erasure) committed while the entry was being built: check
            # again, so that an entry holding erased rows never outlives the build
            try:
                live_check(store, train_set, sorted_keys)
            except ErasedKeysError:
                cache.discard(name)
                raise
        staged = dict(b.fixed) if built["now"] and (stage or entry is not None) else None
        return entry, staged

    def opener() -> CacheEntry:
        # gone already (erased or evicted since it was published): build it again, which
        # raises ErasedKeysError for erased keys
        return cache.open(name, specs) or materialize_entry(store, train_set, columns, options)

    building.run(build, opener)
    return building
