"""Column mapping of a user's data: which columns are event time, label, features and key.

:class:`ColumnMap` names the columns; :class:`Encoder` checks a source schema against it (before
any row is read) and turns each record batch into the canonical columns a store and a pipeline
use:

- ``key`` (int64): the mapped key column, or none (the store assigns keys; a replay numbers rows).
- ``ts``: the mapped column (integer, float, date or timestamp; ISO date strings are parsed: without
  zone offsets as ``timestamp[us]``, with offsets (``Z``, ``+02:00``) as ``timestamp[us, UTC]``;
  digits below a microsecond must be zero), or the row number when no event-time column is named
  (the stream is in row order).
- ``label`` (int64 class codes, see :mod:`~modyn_store.app.datasets.labels`). Rows without a
  label are an error, or skipped with ``drop_unlabeled`` (counted in :attr:`Encoder.dropped`).
- ``features`` (fixed-size list of float32): the feature columns packed side by side; numbers and
  booleans give one value, fixed-size lists / tensors / equal-length lists give their values.
  Missing values (null or NaN) become 0 in the feature's own units by default
  (``ColumnMap.missing``: ``"zero"``); ``"drop_row"`` skips a row with any missing feature value
  (counted in :attr:`Encoder.incomplete`) and ``"error"`` refuses it, naming the column and the
  row. An infinite value (or one beyond the float32 range) is refused, naming the column and the
  row. Without a ``features`` list, a ``features`` column is
  used as it is, else every numeric column that has no other role is a feature.
- every other column, unchanged (payload for filters and reports).

Example
-------
>>> import pyarrow as pa
>>> from modyn_store.app.datasets.labels import LabelMap
>>> t = pa.table({"when": [3, 1], "y": ["b", "a"], "x1": [1.0, 2.0], "x2": [0, 1]})
>>> enc = Encoder(t.schema, ColumnMap(ts="when", label="y"), labels=LabelMap.from_values(t.column("y")))
>>> out = enc.encode(t.to_batches()[0])
>>> out.schema.names, out.column("label").to_pylist(), enc.width
(['ts', 'label', 'features', 'x1', 'x2'], [1, 0], 2)
>>> out.column("features").to_pylist()
[[1.0, 0.0], [2.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.app.datasets.labels import LabelMap, label_kind
from modyn_store.core.errors import ModynStoreError

__all__ = ["MISSING", "ColumnMap", "Encoder", "SourceError", "text_times"]

ROLES = ("key", "ts", "label", "features")
#: what a missing (null or NaN) feature value becomes: 0, its row skipped, or an error
MISSING = ("zero", "drop_row", "error")


class SourceError(ModynStoreError, ValueError):
    """A user source cannot be read as asked.

    ``key`` names the setting at fault (``"ts"``, ``"features[1]"``, ``"path"`` ...), so each entry
    point can name it its own way (``source.ts`` in YAML, ``--ts`` on the command line).
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (type(self), (self.key, self.message), self.__dict__)


@dataclass(frozen=True)
class ColumnMap:
    """The columns of a source that play each role (``None``: the default, see the module docstring)."""

    ts: str | None = None
    label: str | None = None
    features: tuple[str, ...] | None = None
    key: str | None = None
    drop_unlabeled: bool = False
    missing: str = "zero"

    def resolved(self, names: Sequence[str]) -> ColumnMap:
        """Defaults filled in from the column names: ``ts``, ``label``, ``key`` when present."""
        pick = lambda given, role: given if given is not None else (role if role in names else None)  # noqa: E731
        feats = self.features if self.features is not None or "features" not in names else ("features",)
        return ColumnMap(pick(self.ts, "ts"), pick(self.label, "label"), feats, pick(self.key, "key"),
                         self.drop_unlabeled, self.missing)


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _width(name: str, t: pa.DataType) -> int | None:
    """Values a feature column contributes (``None``: a variable list, width found in the data)."""
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    if _numeric(t):
        return 1
    if pa.types.is_fixed_size_list(t) and _numeric(t.value_type):
        return int(t.list_size)
    if pa.types.is_fixed_size_list(t) and pa.types.is_fixed_size_list(t.value_type):
        inner = _width(name, t.value_type)
        return None if inner is None else int(t.list_size) * inner
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _numeric(t.value_type):
        return None
    raise SourceError("features", f"column {name!r} has type {t}; features must be numbers, booleans or "
                                  "fixed-size lists of numbers (encode text and categories as numbers first)")


def _flat(col: pa.Array, rows: int) -> np.ndarray:
    """A feature column as a float32 matrix of ``rows`` rows (missing values 0)."""
    if isinstance(col.type, pa.BaseExtensionType):
        col = col.storage
    t = col.type
    if _numeric(t):
        # unchecked: an integer beyond 2**53 (a uint64 count, an int64 id) rounds, as it would to float32 anyway
        arr = pc.cast(col, pa.float64(), safe=False) if not pa.types.is_boolean(t) \
            else col.cast(pa.int8()).cast(pa.float64())
        with np.errstate(over="ignore"):  # beyond float32: inf, refused by the encoder naming the row
            out = np.asarray(arr.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float32).reshape(rows, 1)
        out[np.isnan(out)] = 0.0  # NaN is a missing value too (Parquet written from NumPy keeps NaN)
        return out
    if col.null_count:
        col = col.fill_null(pa.scalar([0] * int(t.list_size), type=t)) if pa.types.is_fixed_size_list(t) else col
    values = col.flatten()
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type):
        values = values.flatten()
    flat = _flat(values, len(values))
    return flat.reshape(rows, -1) if rows else flat.reshape(0, 0)


def _missing_rows(col: pa.Array) -> np.ndarray:
    """Whether each row of the feature column ``col`` has a missing (null or NaN) value."""
    if isinstance(col.type, pa.BaseExtensionType):
        col = col.storage
    out = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if _numeric(col.type):
        if pa.types.is_floating(col.type):
            out |= np.asarray(pc.is_nan(col).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        return out
    values = col.flatten()  # the values of the rows that are not null, with each one's row below
    inner = _missing_rows(values)
    parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
    out[parents[inner]] = True
    return out


def _infinite(name: str, col: pa.Array, m: np.ndarray, rows: np.ndarray) -> None:
    """Refuse the feature column ``name``, whose float32 matrix ``m`` holds an infinite value."""
    bad = int(np.flatnonzero(~np.isfinite(m).all(axis=1))[0])
    scalar = m.shape[1] == 1 and not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type)
                                      or pa.types.is_large_list(col.type))
    value = col[bad].as_py() if scalar else None
    try:
        big = value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError, OverflowError):
        big = False
    what = f"the value {value}, beyond the float32 range of features (about +-3.4e38)" if big else "an infinite value"
    raise SourceError("features", f"column {name!r} holds {what} at row {int(rows[bad])} (data rows counted from "
                                  f"0 across the source); missing values and NaN are allowed (see missing), but "
                                  "a feature that is infinite as a float32 would make every training's loss NaN: "
                                  "replace it with a finite value or an empty cell, or drop the row")


_TEXT_TIME_TYPES = {"naive": pa.timestamp("us"), "utc": pa.timestamp("us", tz="UTC")}


def text_times(col: pa.Array, name: str, zone: str | None = None) -> tuple[pa.Array, str]:
    """ISO date/time text as timestamps and how they were read: ``"naive"`` (no zone offset) or
    ``"utc"`` (every value has an offset or ``Z``, converted to UTC).

    ``zone`` is the reading of earlier batches of the column, which every batch must share.
    Raises :class:`SourceError` naming the first value that cannot be read that way.
    """
    tried = [zone] if zone is not None else list(_TEXT_TIME_TYPES)
    for z in tried:
        out = _cast_text(col, z)
        if out is not None:
            return out, z
    bad = next((v for v in col.drop_null().to_pylist()[:100_000] if not _reads(v, tried)), col[0].as_py())
    if _reads(bad, list(_TEXT_TIME_TYPES), exact=False):
        mixed = zone is not None and _reads(bad, [z for z in _TEXT_TIME_TYPES if z != zone])
        raise SourceError("ts", f"column {name!r} " + (
            f"mixes times with and without a zone offset (e.g. {bad!r}); give every value an offset or none"
            if mixed or _reads(bad, list(_TEXT_TIME_TYPES)) else
            f"holds a time finer than a microsecond, e.g. {bad!r}; times are kept to the microsecond: "
            "round them first"))
    raise SourceError("ts", f"column {name!r} holds text that is not an ISO date or time, e.g. {bad!r}")


def _cast_text(col: pa.Array, zone: str, exact: bool = True) -> pa.Array | None:
    """``col`` as microsecond timestamps read with ``zone``, or ``None``. Text with nanosecond
    digits is read through nanoseconds and kept when they are zero (``exact=False``: even if not)."""
    kind = _TEXT_TIME_TYPES[zone]
    try:
        return pc.cast(col, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:  # the nanosecond type only spans the years 1677-2262, hence microseconds first
        return pc.cast(pc.cast(col, pa.timestamp("ns", tz=kind.tz)), kind, safe=exact)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _reads(value: Any, zones: list[str], exact: bool = True) -> bool:
    return any(_cast_text(pa.array([value], pa.string()), z, exact) is not None for z in zones)


class Encoder:
    """Check ``schema`` against ``columns`` and encode batches (see the module docstring).

    Parameters
    ----------
    schema:
        The source's schema.
    columns:
        The column roles.
    labels:
        The label map used to encode the label column (required when a label column is mapped).
    assign_keys:
        Number rows (from ``row_offset``) as keys when no key column is mapped; otherwise the
        output has no ``key`` column and the store assigns keys.
    require_label:
        A missing label column is an error (pipelines train on labels).

    Raises
    ------
    SourceError
        A named column does not exist or has a type that cannot play its role.
    """

    def __init__(self, schema: pa.Schema, columns: ColumnMap, *, labels: LabelMap | None = None,
                 assign_keys: bool = False, require_label: bool = False, row_offset: int = 0) -> None:
        names = schema.names
        self.columns = cm = columns.resolved(names)
        self.labels = labels
        self.assign_keys = assign_keys
        self.rows = row_offset
        self.dropped = 0
        self.incomplete = 0  # rows skipped for a missing feature value (missing="drop_row")
        if cm.missing not in MISSING:
            raise SourceError("missing", f"{cm.missing!r} is not a choice; expected one of {list(MISSING)}")
        for role in ("ts", "label", "key"):
            col = getattr(cm, role)
            if col is not None and col not in names:
                raise SourceError(role, f"no column {col!r}; the data has {names}")
        if require_label and cm.label is None:
            raise SourceError("label", f"no label column: name one (the data has {names})")
        if cm.key is not None and not pa.types.is_integer(schema.field(cm.key).type):
            raise SourceError("key", f"column {cm.key!r} has type {schema.field(cm.key).type}; keys must be integers "
                                     "(leave the key out and the store assigns keys)")
        if cm.ts is not None:
            t = schema.field(cm.ts).type
            if not (_numeric(t) and not pa.types.is_boolean(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
                    or pa.types.is_string(t) or pa.types.is_large_string(t)):
                raise SourceError("ts", f"column {cm.ts!r} has type {t}; event time must be an integer, float, date, "
                                        "timestamp or ISO date string (or leave ts out: rows are in time order)")
        if cm.label is not None:
            try:
                label_kind(cm.label, schema.field(cm.label).type)
            except ModynStoreError as exc:
                raise SourceError("label", str(exc)) from exc
            if labels is None:
                raise SourceError("label", "a label map is required to encode labels")
        if cm.label is not None and cm.label in (cm.ts, cm.key):
            role = "event-time" if cm.label == cm.ts else "key"
            raise SourceError("label", f"column {cm.label!r} is already the {role} column; a label needs a column of its own")
        used = {c for c in (cm.ts, cm.label, cm.key) if c is not None}
        if cm.features is None:
            feats = []
            for f in schema:
                if f.name in used:
                    continue
                try:
                    _width(f.name, f.type)
                except SourceError:
                    continue
                feats.append(f.name)
            if not feats:
                raise SourceError("features", f"no numeric column to use as features; the data has {names} "
                                              "(encode text or categories as numbers first, e.g. a text embedding "
                                              "as a fixed-size list column, and name it in features)")
            self.features = tuple(feats)
        else:
            if not cm.features:
                raise SourceError("features", "an empty list; name at least one column")
            for i, c in enumerate(cm.features):
                if c not in names:
                    raise SourceError(f"features[{i}]", f"no column {c!r}; the data has {names}")
                if c in used:
                    raise SourceError(f"features[{i}]", f"column {c!r} is already the {self._role_of(c)} column")
                if c in cm.features[:i]:  # a typo for another column, most likely: never packed once silently
                    raise SourceError(f"features[{i}]", f"column {c!r} is listed twice (also features"
                                                        f"[{cm.features.index(c)}]); name each feature column once")
            self.features = tuple(cm.features)
        widths = []
        for i, c in enumerate(self.features):
            try:
                widths.append(_width(c, schema.field(c).type))
            except SourceError as exc:
                key = f"features[{i}]" if cm.features is not None else "features"
                raise SourceError(key, exc.message) from exc
        self._widths = widths
        self._fixed: dict[str, int] = {}
        self._ts_zone: str | None = None  # "naive" or "utc" once the first text event times are read
        self.width: int | None = sum(w for w in widths if w is not None) if all(w is not None for w in widths) else None
        self.others = []
        for f in schema:
            if f.name in used or (f.name == "features" and "features" in self.features):
                continue
            if f.name in ROLES:
                mapped: Any = list(self.features) if f.name == "features" else getattr(cm, f.name)
                which = f"the {f.name} column is {mapped!r}" if mapped else f"no column is mapped as {f.name}"
                raise SourceError(f.name, f"the data has a column {f.name!r} that is not the {f.name} column "
                                          f"({which}); rename it or map it as {f.name}")
            if f.name.startswith("_"):
                raise SourceError("columns", f"column {f.name!r}: names starting with '_' are reserved; rename it")
            self.others.append(f.name)

    @property
    def widths(self) -> tuple[int | None, ...]:
        """Values each feature column contributes (``None``: a list column, see :meth:`list_width`)."""
        return tuple(self._widths)

    def list_width(self, column: str) -> int:
        """Values per row of the list feature column ``column`` (known once a row was encoded)."""
        return self._fixed[column]

    def incomplete_rows(self, batch: pa.RecordBatch) -> np.ndarray:
        """Whether each row of ``batch`` (which holds the feature columns) has a missing (null or
        NaN) feature value: the rows ``missing="drop_row"`` skips."""
        gaps = np.zeros(batch.num_rows, dtype=bool)
        for c in self.features:
            gaps |= _missing_rows(batch.column(c))
        return gaps

    def _role_of(self, col: str) -> str:
        cm = self.columns
        return next(r for r in ("ts", "label", "key") if getattr(cm, r) == col)

    def encode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The canonical columns of one source batch (see the module docstring)."""
        cm = self.columns
        src_rows = batch.num_rows
        rows = np.arange(self.rows, self.rows + src_rows, dtype=np.int64)  # source row numbers
        if cm.label is not None and cm.drop_unlabeled and batch.column(cm.label).null_count:
            valid = pc.is_valid(batch.column(cm.label))
            rows = rows[np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)]
            self.dropped += src_rows - rows.size
            batch = batch.filter(valid)
        if cm.missing == "drop_row" and batch.num_rows:
            gaps = self.incomplete_rows(batch)
            if gaps.any():
                rows = rows[~gaps]
                self.incomplete += int(gaps.sum())
                batch = batch.filter(pa.array(~gaps))
        n = batch.num_rows
        cols: dict[str, pa.Array] = {}
        if cm.key is not None:
            k = batch.column(cm.key)
            if k.null_count:
                raise SourceError("key", f"column {cm.key!r} has {k.null_count} missing keys")
            try:
                cols["key"] = k.cast(pa.int64())
            except pa.ArrowInvalid as exc:
                raise SourceError("key", f"column {cm.key!r} holds keys outside the int64 range "
                                         f"(-2**63 .. 2**63-1): {exc}") from None
        elif self.assign_keys:
            cols["key"] = pa.array(rows)
        if cm.ts is not None:
            cols["ts"] = self._ts(batch.column(cm.ts))
        else:
            cols["ts"] = pa.array(rows)
        if cm.label is not None:
            assert self.labels is not None
            try:
                cols["label"] = pa.array(self.labels.encode(batch.column(cm.label), column=cm.label))
            except ModynStoreError as exc:
                raise SourceError("label", str(exc)) from exc
        cols["features"] = self._features(batch, n, rows)
        for c in self.others:
            cols[c] = batch.column(c)
        self.rows += src_rows
        return pa.RecordBatch.from_pydict(cols)

    def _ts(self, col: pa.Array) -> pa.Array:
        name = self.columns.ts
        if col.null_count:
            raise SourceError("ts", f"column {name!r} has {col.null_count} rows without an event time")
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            out, self._ts_zone = text_times(col, str(name), self._ts_zone)
            return out
        if pa.types.is_decimal(col.type):
            if col.type.scale <= 0:  # whole numbers (SQL's NUMBER(38,0)): exact as int64, where float64 rounds
                try:
                    return col.cast(pa.int64())
                except pa.ArrowInvalid:
                    raise SourceError("ts", f"column {name!r} ({col.type}) holds event times outside the int64 "
                                            "range (-2**63 .. 2**63-1)") from None
            return col.cast(pa.float64())
        if pa.types.is_uint64(col.type) and len(col) and pc.max(col).as_py() > (1 << 63) - 1:
            # every reader of event times takes them as int64, where such a time turns negative
            raise SourceError("ts", f"column {name!r} ({col.type}) holds event times outside the int64 range "
                                    "(-2**63 .. 2**63-1)")
        return col

    def _features(self, batch: pa.RecordBatch, n: int, rows: np.ndarray) -> pa.FixedSizeListArray:
        blocks = []
        for i, (c, w) in enumerate(zip(self.features, self._widths)):
            col = batch.column(c)
            # missing values first: a null row of a list column is a missing value, not a length
            if self.columns.missing == "error" and n and (gaps := _missing_rows(col)).any():
                raise SourceError("missing", f"feature column {c!r} has a missing value (empty, null or NaN) at row "
                                             f"{int(rows[np.flatnonzero(gaps)[0]])} (data rows counted from 0 across "
                                             f"the source), and missing is 'error'; fill it, or choose missing "
                                             f"'zero' (it becomes 0) or 'drop_row' (the row is skipped)")
            if w is None and n:
                col = self._list_rows(c, col, rows)
            m = _flat(col, n)
            if n and not np.isfinite(m).all():
                _infinite(c, col, m, rows)
            blocks.append(m)
        full = np.ascontiguousarray(np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0)), dtype=np.float32)
        width = full.shape[1] if n else int(self.width or 0)
        if n and self.width is None:
            self.width = width
        return pa.FixedSizeListArray.from_arrays(pa.array(full.ravel(), type=pa.float32()), width)

    def _list_rows(self, name: str, col: pa.Array, rows: np.ndarray) -> pa.Array:
        """The variable-length list feature column ``name`` checked for one length per row (the
        same as earlier batches'), its null rows (missing values, ``missing="zero"``) as zeros."""
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)  # NaN where a row is null
        present = np.flatnonzero(~np.isnan(lengths)) if lengths.dtype.kind == "f" else np.arange(len(lengths))
        if present.size:
            first = int(lengths[present[0]])
            off = present[lengths[present] != first]
            if off.size:
                raise SourceError("features", f"list column {name!r} has rows of different lengths: {first} values "
                                              f"at row {int(rows[present[0]])} but {int(lengths[off[0]])} at row "
                                              f"{int(rows[off[0]])} (data rows counted from 0 across the source); "
                                              "every row needs the same number of values (tensors have one shape)")
            if self._fixed.get(name, first) != first:
                raise SourceError("features", f"list column {name!r} has {first} values per row from row "
                                              f"{int(rows[present[0]])}, earlier rows {self._fixed[name]}")
            self._fixed[name] = first
        elif name not in self._fixed:
            raise SourceError("features", f"list column {name!r} has no values in its first rows (up to row "
                                          f"{int(rows[-1])}, data rows counted from 0 across the source), so its "
                                          "width is unknown; fill them, or choose missing 'drop_row'")
        if col.null_count:
            # (built as integers and cast: a zero of every value type, booleans and decimals too)
            zeros = pa.scalar([0] * self._fixed[name], type=pa.list_(pa.int64())).cast(col.type)
            col = col.fill_null(zeros)
        return col

    def describe(self) -> dict[str, Any]:
        """The mapping in words (for progress lines and reports)."""
        cm = self.columns
        return {"ts": cm.ts or "(row order)", "label": cm.label or "-", "key": cm.key or "(assigned)",
                "features": list(self.features), "width": self.width}
