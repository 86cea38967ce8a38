"""A snapshot as a Ray Dataset: the samples table's fragments read in parallel by Ray Data.

:func:`to_ray` uses Ray Data's Lance reader (the datasource of ``ray.data.read_lance``): one
read task per Lance fragment, pinned to the Lance version of the samples table when it is called, with the
snapshot's version bound (``_version <= N``) pushed down to Lance. Deleted and erased keys are
removed by a ``map_batches`` step that holds the snapshot's sorted dead keys; rows that
``vacuum`` purged raise :class:`~modyn_store.core.errors.DataUnavailableError` up front
(or are skipped with ``on_unavailable="skip"``), exactly as :meth:`Snapshot.to_table`.
A compaction, erase or vacuum that removes the planned files before the Dataset reads them
makes the read raise the store's typed error (:class:`Overtaken`), never erased rows.

Ray is imported only here, on first use (``pip install 'modyn-store[ray]'``).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store import Store
>>> store = Store.open("memory://ray-io-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
>>> _ = store.delete(keys=[1])
>>> ds = store.as_of().to_ray(["ts"])  # doctest: +SKIP
>>> sorted(ds.to_pandas()["key"].tolist())  # doctest: +SKIP
[0, 2]
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from engine._search import isin_sorted_numpy, setdiff_keys, union_keys
from modyn_store.core._validate import check_filter, check_zoned_times, filter_error
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError

if TYPE_CHECKING:
    from modyn_store.core.snapshot import Snapshot

__all__ = ["Overtaken", "drop_keys", "to_ray"]


def drop_keys(batch: pa.Table, dead: np.ndarray) -> pa.Table:
    """Rows of ``batch`` whose ``key`` is not in the sorted array ``dead`` (a Ray Data step)."""
    if dead.size == 0 or batch.num_rows == 0:
        return batch
    keep = ~isin_sorted_numpy(batch.column("key").to_numpy(), dead)
    return batch if keep.all() else batch.filter(pa.array(keep))


def to_ray(
    snapshot: Snapshot,
    columns: list[str] | None = None,
    filter: str | None = None,
    *,
    on_unavailable: str = "error",
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    ray_remote_args: dict[str, Any] | None = None,
) -> Any:
    """A ``ray.data.Dataset`` of the snapshot's live rows (always with the ``key`` column).

    Parameters
    ----------
    columns:
        Columns to read (default: all user columns); ``key`` is always included.
    filter:
        A Lance SQL expression over the store's columns, pushed down to every fragment read.
    on_unavailable:
        ``"error"`` (default) or ``"skip"`` for rows that ``vacuum`` purged.
    concurrency, override_num_blocks, ray_remote_args:
        Passed to Ray Data's Lance read (parallel read tasks, output blocks, task resources);
        ``concurrency`` and ``override_num_blocks`` are ``None`` or integers >= 1,
        ``ray_remote_args`` ``None`` or a dict of options Ray accepts for a task (checked here,
        :class:`~modyn_store.core.errors.InvalidArgumentError` otherwise).

    The Dataset is lazy and reads the files of the samples table as of this call. A
    compaction, erase or vacuum that deletes them before the Dataset reads them makes its read
    raise a store error (see :class:`Overtaken`), never Lance's, and never return the rows of
    the deleted files (so no row erased meanwhile):
    :class:`~modyn_store.core.errors.DataUnavailableError` naming the keys, as
    :meth:`Snapshot.to_table` raises, where a vacuum purged rows of the version (with
    ``on_unavailable="error"``); else :class:`~modyn_store.core.errors.ConflictError`
    naming the version and the keys erased since: call ``to_ray`` again, which plans on the
    current files (``score_on_ray`` and ``select_on_ray`` do so themselves). Ray raises either
    wrapped in its ``RayTaskError``, an instance of the store's error class too (``except
    ConflictError`` catches it; ``.cause`` is the store's error itself). A filter over unknown
    columns raises :class:`~modyn_store.core.errors.InvalidFilterError` here.
    """
    try:
        import ray.data
    except ImportError as exc:
        raise ImportError("Snapshot.to_ray needs Ray Data: pip install 'modyn-store[ray]'") from exc
    for name, value in (("concurrency", concurrency), ("override_num_blocks", override_num_blocks)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise InvalidArgumentError(name, value, "None or an integer >= 1")
    _check_remote_args(ray, ray_remote_args)
    cols = snapshot._check_columns(columns)
    snapshot._check_unavailable(on_unavailable)  # type: ignore[arg-type]
    bound = f"_version <= {snapshot.version}"
    flt = bound if filter is None else f"{bound} AND {check_filter(filter)}"
    store = snapshot._store
    read = list(dict.fromkeys(["key", *cols]))
    ds = store._tables.open("samples")
    # again on the manifest read: a vacuum may have purged rows since the check above
    snapshot._check_unavailable(on_unavailable)  # type: ignore[arg-type]
    if ds is None:  # nothing appended yet: no rows, as Snapshot.to_table answers
        return ray.data.from_arrow(snapshot.to_table(read, filter, on_unavailable="skip"))
    _check_plan(ds, read, flt, filter)
    dead = snapshot._dead()
    if on_unavailable == "skip":
        dead = union_keys(dead, snapshot.unavailable())
    opts = store._location.storage_options
    plan = Overtaken(snapshot, ds.version, on_unavailable)
    out = _read(ray, store, ds, read, flt, opts, concurrency, override_num_blocks, ray_remote_args, plan)
    if dead.size:
        out = out.map_batches(
            drop_keys, fn_kwargs={"dead": np.ascontiguousarray(dead, dtype=np.int64)},
            batch_format="pyarrow", batch_size=None,
        )
    return out


def _check_remote_args(ray: Any, args: Any) -> None:
    """Refuse task options Ray would refuse only when the Dataset is consumed (in a read task),
    with :class:`~modyn_store.core.errors.InvalidArgumentError` naming ``ray_remote_args`` now."""
    if args is None:
        return
    expected = "None or a dict of Ray task options, e.g. {'num_cpus': 1}"
    if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
        raise InvalidArgumentError("ray_remote_args", args, expected)
    if not args:
        return
    try:
        ray.remote(**args)(drop_keys)  # Ray's own check of task options; starts nothing
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError("ray_remote_args", args, f"{expected} ({exc})") from exc


def _check_plan(ds: Any, read: list[str], flt: str, user_filter: str | None) -> None:
    """Plan the scan here, so a filter over unknown columns or of the wrong type raises
    :class:`~modyn_store.core.errors.InvalidFilterError` now, not inside a Ray task later."""
    if user_filter is None:
        return
    check_zoned_times(user_filter, ds.schema)
    from modyn_store.core._failures import vanished

    try:
        ds.scanner(columns=read, filter=flt).explain_plan()
    except ValueError as exc:
        if vanished(exc):  # a file gone, not a bad filter: the caller's retry rules apply
            raise
        raise filter_error(user_filter, exc) from exc


def _read(ray: Any, store: Any, ds: Any, read: list[str], flt: str, opts: dict[str, Any],
          concurrency: int | None, blocks: int | None, ray_remote_args: dict[str, Any] | None,
          plan: Overtaken) -> Any:
    """Ray Data's Lance reader of the samples table at ``ds.version``, each read task guarded
    by ``plan`` (see :class:`Overtaken`).

    Lance's reader describes each read task by its whole fragments: all the table's columns
    (``_version`` included) and all their rows. The tasks here say what they return instead:
    the ``read`` columns, and an unknown row count (``flt`` drops rows of later versions and
    the user filter's), so ``Dataset.schema()`` names the read columns and ``Dataset.count()``
    counts the rows read, not the rows of the fragments."""
    from dataclasses import replace

    from ray.data import ReadTask
    from ray.data._internal.datasource.lance_datasource import LanceDatasource

    schema = pa.schema([ds.schema.field(c) for c in read])

    class GuardedLance(LanceDatasource):  # type: ignore[misc]
        def get_read_tasks(self, *args: Any, **kwargs: Any) -> list[Any]:
            return [
                ReadTask(_GuardedRead(task.read_fn, plan), replace(task.metadata, num_rows=None),
                         schema=schema, per_task_row_limit=task.per_task_row_limit)
                for task in super().get_read_tasks(*args, **kwargs)
            ]

    source = GuardedLance(
        store._tables.uri("samples"),
        version=ds.version,
        columns=read,
        scanner_options={"filter": flt},  # Lance SQL, pushed down to every fragment's scan
        storage_options={str(k): str(v) for k, v in opts.items()} or None,
    )
    named, rest = _task_options(ray, ray_remote_args or {})
    with warnings.catch_warnings():  # the options Ray names no parameter for go the deprecated way
        if rest:
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        return ray.data.read_datasource(
            source, concurrency=concurrency, override_num_blocks=blocks, **named,
            **({"ray_remote_args": rest} if rest else {}),
        )


# task options that Ray Data's reads take as parameters of their own (Ray >= 2.60)
_NAMED_OPTIONS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env", "accelerator_type",
                  "label_selector", "fallback_strategy", "max_calls")


def _task_options(ray: Any, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``args`` split into the options ``ray.data.read_datasource`` of this Ray takes as its own
    parameters and the rest, for its ``ray_remote_args`` (deprecated since Ray 2.60)."""
    params = inspect.signature(ray.data.read_datasource).parameters
    named = {k: v for k, v in args.items() if k in _NAMED_OPTIONS and k in params}
    return named, {k: v for k, v in args.items() if k not in named}


class Overtaken:
    """What a read task of a :func:`to_ray` Dataset raises when files it planned on are gone.

    The Dataset is lazy: a compaction, erase or vacuum committed between :func:`to_ray` and the
    Dataset's consumption deletes the files of the samples table's Lance version it was planned
    on (``lance``). A read task that finds a data file gone which the table's latest version no
    longer uses opens the store and raises its error instead of Lance's: rows live at
    ``version`` that a vacuum purged meanwhile raise
    :class:`~modyn_store.core.errors.DataUnavailableError` (its ``keys`` name them) with
    ``on_unavailable="error"``, as :meth:`Snapshot.to_table` does; otherwise
    :class:`~modyn_store.core.errors.ConflictError` ("read again"), naming the version and the
    keys erased since the plan (``committed``: the latest version the plan knew). No read task
    returns rows of the gone files, so no row erased meanwhile is returned. A file gone that the
    latest version still uses is damage: Lance's error is raised as it is.
    """

    def __init__(self, snapshot: Snapshot, lance: int, on_unavailable: str) -> None:
        store = snapshot._store
        # the classes travel with the plan (by name): this module imports neither
        self.store_class, self.snapshot_class = type(store), type(snapshot)
        # ``root``: where the store is (an absolute path: a task's working folder may differ)
        self.uri, self.root = store.uri, store._location.root
        self.storage_options = dict(store._location.storage_options)
        self.version, self.committed, self.lance = snapshot.version, snapshot._committed, lance
        self.on_unavailable = on_unavailable

    def error(self, exc: BaseException) -> Exception | None:
        """The store's error for this plan's failed read ``exc``, as the store is now, or
        ``None`` where maintenance did not remove the file (damage, or not a missing file)."""
        from modyn_store.core._failures import overtaken
        from modyn_store.core.errors import ConflictError

        store = self.store_class.open(self.root, storage_options=self.storage_options or None)
        if overtaken(store._location, "samples", exc) is None:
            return None
        if self.on_unavailable == "error":
            try:  # rows of the version purged since the plan: to_table's error and message
                self.snapshot_class(store, self.version, committed=self.committed)._check_unavailable("error")
            except DataUnavailableError as unavailable:
                return unavailable
        erased = setdiff_keys(store._erased_keys(), store._erased_keys(self.committed))
        since = f"; {erased.size} keys were erased since (e.g. {erased[:5].tolist()})" if erased.size else ""
        return ConflictError(
            f"version {self.version} of {self.uri!r}: a compaction, erase or vacuum removed the files "
            f"of the samples table (Lance version {self.lance}) this Ray Dataset was planned on before "
            f"it read them{since}; call Snapshot.to_ray again to read the version from the current files"
        )


class _GuardedRead:
    """A read task's function: Lance's error for a data file that maintenance removed becomes
    :meth:`Overtaken.error`; any other failure is raised as it is."""

    def __init__(self, read: Callable[[], Iterable[Any]], plan: Overtaken) -> None:
        self._read, self._plan = read, plan

    def __call__(self) -> Iterator[Any]:
        from modyn_store.core._failures import READ_ERRORS, vanished

        try:
            yield from self._read()
        except READ_ERRORS as exc:
            typed = self._plan.error(exc) if vanished(exc) else None
            if typed is None:
                raise
            raise typed from exc
