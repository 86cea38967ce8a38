"""Label maps: class codes ``0 .. n-1`` for string labels and gapped or negative integer labels.

A model with ``n`` outputs needs labels ``0 .. n-1``. Labels such as ``"no"/"yes"`` or the
integers ``2 .. 12`` are stored as codes, and the code -> value map is stored with the store (the
``label_map`` table), so that reports and ``modyn-store labels`` show the original values and a
later append gives the same value the same code. The number of classes is the length of the map,
never ``max(label) + 1``.

Boolean labels keep their kind (``"bool"``: ``False`` is code 0 and ``True`` code 1 when both
occur in the first file), so ``labels`` and ``export`` give back booleans; a store made before
booleans had a kind of their own holds them as the integers 0 and 1 and goes on taking them so.

A map only grows: a value seen for the first time gets the next code. The first map of a stream
orders its values (integers numerically, strings alphabetically), so labels that already are
``0 .. n-1`` keep their values as codes.

Example
-------
>>> import pyarrow as pa
>>> m = LabelMap.from_values(pa.array([12, 2, 5, 2]))
>>> m.values, m.n_classes
((2, 5, 12), 3)
>>> m.encode(pa.array([5, 12, 2])).tolist()
[1, 2, 0]
>>> m2 = m.extend(pa.array([7]))
>>> m2.values, m2.decode([3])
((2, 5, 12, 7), [7])
>>> LabelMap.from_values(pa.array(["yes", "no"])).encode(pa.array(["no", "yes"])).tolist()
[0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.core._catalog_tables import declare_table
from modyn_store.core.errors import InvalidArgumentError, ModynStoreError

__all__ = [
    "LABEL_MAP_TABLE",
    "LabelError",
    "LabelMap",
    "accepts",
    "describe_labels",
    "label_kind",
    "label_type",
    "new_label_rows",
    "read_label_map",
    "store_classes",
    "stored_code_map",
    "write_label_map",
]

LABEL_MAP_TABLE = "label_map"
_SCHEMA = pa.schema([("code", pa.int64()), ("value", pa.string()), ("kind", pa.string())])
declare_table(LABEL_MAP_TABLE, _SCHEMA, "label map")

Kind = Literal["int", "string", "bool"]
_TYPES: dict[str, pa.DataType] = {"int": pa.int64(), "string": pa.string(), "bool": pa.bool_()}


class LabelError(ModynStoreError, ValueError):
    """Labels that cannot become class codes (floats, nulls, a kind that does not match the store)."""


def label_kind(column: str, t: pa.DataType) -> Kind:
    """``"int"``, ``"string"`` or ``"bool"`` for a label column of type ``t``; raises :class:`LabelError`
    otherwise."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):
        raise LabelError(f"label column {column!r} has no values: every row's label is empty")
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    why = ""
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        why = (". A float column is a regression target, which pipelines do not train; if its values are "
               "class numbers (pandas writes an integer column with missing values as floats), convert it to "
               "integers first, e.g. pandas' df[c].astype('Int64'), whose missing labels stay missing")
    raise LabelError(f"label column {column!r} has type {t}; labels must be integers, booleans or strings "
                     f"(class names){why}")


def label_type(kind: str) -> pa.DataType:
    """The Arrow type of labels of ``kind`` (what ``export`` writes them back as)."""
    return _TYPES[kind]


def accepts(stored: str, kind: str, values: tuple[Any, ...] | None = None) -> bool:
    """True when labels of ``kind`` can extend a map of ``stored`` labels: the same kind, or
    booleans into an ``"int"`` map (stores made before booleans had a kind of their own map them
    to 0 and 1) whose ``values`` (when given) are only 0 and 1: booleans into a map of other
    integers would silently become the new classes 0 and 1."""
    if stored == kind:
        return True
    return stored == "int" and kind == "bool" and (values is None or set(values) <= {0, 1})


def _plain(values: pa.Array | pa.ChunkedArray, *, as_int: bool = False) -> pa.Array:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_boolean(arr.type) and as_int:
        arr = arr.cast(pa.int64())
    if pa.types.is_integer(arr.type) and not arr.type.equals(pa.int64()):
        try:
            arr = arr.cast(pa.int64())
        except pa.ArrowInvalid as exc:
            raise LabelError(f"integer labels must lie in the int64 range (-2**63 .. 2**63-1): {exc}") from None
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def _sorted_unique(arr: pa.Array) -> list[Any]:
    u = pc.unique(arr).drop_null()
    return sorted(u.to_pylist())


@dataclass(frozen=True)
class LabelMap:
    """Code ``i`` stands for label ``values[i]``; ``kind`` is ``"int"``, ``"string"`` or ``"bool"``
    (``False`` is code 0, ``True`` code 1 when both occur in the first file)."""

    kind: Kind
    values: tuple[Any, ...]

    @property
    def n_classes(self) -> int:
        """The number of classes (codes ``0 .. n_classes - 1``)."""
        return len(self.values)

    @property
    def identity(self) -> bool:
        """True when every code equals its value (integer labels ``0 .. n-1``)."""
        return self.kind == "int" and self.values == tuple(range(len(self.values)))

    @classmethod
    def from_values(cls, values: pa.Array | pa.ChunkedArray, *, column: str = "label") -> LabelMap:
        """The map of the distinct values of a label column, in sorted order."""
        kind = label_kind(column, values.type)
        arr = _plain(values)
        _check_nulls(column, arr)
        return cls(kind, tuple(_sorted_unique(arr)))

    def extend(self, values: pa.Array | pa.ChunkedArray, *, column: str = "label") -> LabelMap:
        """This map plus the values not yet in it (sorted, with the next codes)."""
        kind = label_kind(column, values.type)
        if not accepts(self.kind, kind, self.values):
            raise LabelError(
                f"label column {column!r} holds {kind} labels, but the store's labels are {self.kind}s "
                f"({list(self.values[:5])}...); convert the column to match"
            )
        arr = _plain(values, as_int=self.kind == "int")
        _check_nulls(column, arr)
        known = set(self.values)
        new = [v for v in _sorted_unique(arr) if v not in known]
        return self if not new else LabelMap(self.kind, self.values + tuple(new))

    def encode(self, values: pa.Array | pa.ChunkedArray, *, column: str = "label") -> np.ndarray:
        """The int64 codes of ``values``; a value outside the map raises :class:`LabelError`."""
        arr = _plain(values, as_int=self.kind == "int")
        _check_nulls(column, arr)
        if len(arr) == 0:
            return np.zeros(0, np.int64)
        if self.identity and pa.types.is_integer(arr.type):
            codes = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)
            bad = (codes < 0) | (codes >= self.n_classes)
            if bad.any():
                raise LabelError(f"label {int(codes[bad][0])!r} of column {column!r} is not in the label map")
            return codes
        vocab = pa.array(list(self.values), type=label_type(self.kind))
        if not arr.type.equals(vocab.type):
            raise LabelError(f"label column {column!r} has type {arr.type}; the label map holds {self.kind}s")
        found = pc.index_in(arr, value_set=vocab)
        if found.null_count:
            missing = pc.filter(arr, pc.is_null(found))
            raise LabelError(f"label {missing[0].as_py()!r} of column {column!r} is not in the label map")
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)

    def decode(self, codes: Any) -> list[Any]:
        """The label values of ``codes``."""
        return [self.values[int(c)] for c in np.asarray(codes).ravel()]

    def to_table(self, start: int = 0) -> pa.Table:
        """Rows ``(code, value, kind)`` from code ``start`` on (what the store keeps)."""
        codes = list(range(start, self.n_classes))
        return pa.table({"code": pa.array(codes, pa.int64()),
                         "value": pa.array([str(self.values[c]) for c in codes], pa.string()),
                         "kind": pa.array([self.kind] * len(codes), pa.string())}, schema=_SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table) -> LabelMap:
        """The map the rows of :meth:`to_table` describe (codes must be ``0 .. n-1``)."""
        rows = sorted(table.select(["code", "value", "kind"]).to_pylist(), key=lambda r: r["code"])
        if [r["code"] for r in rows] != list(range(len(rows))):
            raise LabelError("the stored label map is damaged: its codes are not 0 .. n-1")
        kinds = {r["kind"] for r in rows}
        if len(kinds) != 1:
            raise LabelError(f"the stored label map mixes label kinds {sorted(kinds)}")
        kind = kinds.pop()
        if kind not in _TYPES:
            raise LabelError(f"the stored label map has labels of an unknown kind {kind!r}")
        vals = tuple(int(r["value"]) if kind == "int" else r["value"] == "True" if kind == "bool" else r["value"]
                     for r in rows)
        return cls(kind, vals)


def _check_nulls(column: str, arr: pa.Array) -> None:
    if arr.null_count:
        raise LabelError(
            f"label column {column!r} has rows without a label ({arr.null_count} in a block of {len(arr)} rows "
            "read; the check stops at the first such block; a pipeline trains on labelled rows only); skip them with drop_unlabeled (on the command line: --drop-unlabeled) "
            "or drop them before ingesting"
        )


def read_label_map(store: Any, version: int | None = None) -> LabelMap | None:
    """The label map stored with ``store`` (as of ``version``), or ``None`` if it has none."""
    t = store.read_table(LABEL_MAP_TABLE, version)
    if t is None or t.num_rows == 0:
        return None
    return LabelMap.from_table(t)


def new_label_rows(store: Any, labels: LabelMap) -> pa.Table | None:
    """The ``label_map`` rows for the codes of ``labels`` the store does not know yet (None if none).

    Raises :class:`LabelError` when ``labels`` does not extend the store's map.
    """
    old = read_label_map(store)
    start = 0
    if old is not None:
        if old.kind != labels.kind or labels.values[: old.n_classes] != old.values:
            raise LabelError(f"the new label map {list(labels.values[:5])} does not extend the store's "
                             f"{list(old.values[:5])}")
        start = old.n_classes
    if start == labels.n_classes:
        return None
    return labels.to_table(start)


def write_label_map(store: Any, labels: LabelMap, *, message: str = "") -> bool:
    """Store the codes of ``labels`` the store does not know yet (one version); False if none."""
    rows = new_label_rows(store, labels)
    if rows is None:
        return False
    with store.transaction("labels", message or f"label map: {labels.n_classes} classes") as txn:
        txn.append(LABEL_MAP_TABLE, rows)
    return True


def store_classes(store: Any, version: int | None = None) -> tuple[int, LabelMap | None]:
    """The number of classes of the labels in ``store``: its label map's size, else from the labels.

    Without a map, the stored labels must be the integers ``0 .. n-1`` (each appearing), since a
    model's outputs are indexed by label; anything else raises :class:`LabelError`, which says how
    to ingest with a map.
    """
    labels = read_label_map(store, version)
    if labels is not None:
        return labels.n_classes, labels
    schema = store.schema
    if schema is None or "label" not in schema.names:
        raise LabelError(f"the store {store.uri} has no 'label' column; a pipeline needs labelled rows")
    kind = label_kind("label", schema.field("label").type)
    if kind == "string":
        raise LabelError(
            f"the store {store.uri} holds string labels without a label map; ingest them with "
            "`modyn-store append STORE FILE --label COLUMN` (which stores class codes and the map)"
        )
    values: set[int] = set()
    for batch in store.as_of(version).to_batches(["label"], on_unavailable="skip"):
        values.update(pc.unique(batch.column(0)).drop_null().to_pylist())
    ordered = sorted(values)
    if ordered != list(range(len(ordered))):
        shown: list[Any] = ordered if len(ordered) <= 8 else [*ordered[:4], "...", *ordered[-2:]]
        raise LabelError(
            f"the store {store.uri} holds integer labels {shown}, which are not 0 .. n-1, and no label map: "
            "a model would get outputs for classes that never occur. Ingest with `modyn-store append` "
            "(which stores a label map) or give model.params.n_classes"
        )
    if not ordered:
        raise InvalidArgumentError("store", store.uri, "a store with labelled rows")
    return len(ordered), None


def _stored_labels(store: Any) -> tuple[list[int], bool]:
    """The distinct labels of every row the samples table holds (deleted rows included), and
    whether those rows are every row ever appended (False once an erase or vacuum removed some:
    their labels are gone with them).

    One scan of the ``label`` column of the rows written by committed versions.
    """
    committed = store.version
    inserted = sum(r.inserted for r in store.log())
    ds = store.samples_dataset()
    values: set[int] = set()
    rows = 0
    if ds is not None:
        if "label" not in ds.schema.names:
            raise LabelError(f"the store {store.uri} has no 'label' column")
        kind = label_kind("label", ds.schema.field("label").type)
        if kind == "string":
            raise LabelError(
                f"the store {store.uri} holds string labels without a label map; ingest them with "
                "`modyn-store append STORE FILE --label COLUMN` (which stores class codes and the map)"
            )
        scanner = ds.scanner(columns=["label"], filter=f"_version <= {committed}")
        for batch in scanner.to_reader():
            rows += batch.num_rows
            col = _plain(batch.column(0), as_int=True)
            values.update(int(v) for v in pc.unique(col).drop_null().to_pylist())
    return sorted(values), rows >= inserted


def stored_code_map(store: Any) -> tuple[LabelMap, bool]:
    """The map of a store that holds integer labels without a label map: code ``i`` is label ``i``
    for every label any stored row holds, at any version (deleted rows included), so that a map
    made now never gives a code another meaning than it had.

    Returns the map and whether it is known complete: False when an erase or vacuum removed rows
    (their labels are unknown, so codes past the map's may have been used). Raises
    :class:`LabelError` for labels that cannot be codes (negative, or not ``0 .. n-1`` in a store
    whose every row is still stored).
    """
    values, complete = _stored_labels(store)
    shown: list[Any] = values if len(values) <= 8 else [*values[:4], "...", *values[-2:]]
    n = values[-1] + 1 if values else 0
    gaps = n - len(values)  # codes no stored row holds (rows removed, or labels that never occurred)
    if (values and values[0] < 0) or (complete and gaps) or gaps > max(1000, len(values)):
        raise LabelError(
            f"the store {store.uri} holds integer labels {shown} (deleted rows included) and no label map; "
            "they are not the class codes 0 .. n-1, so the codes of other labels are not defined. Give the "
            "store a label map first (modyn_store.app.datasets.labels.write_label_map) or ingest into a new store"
        )
    return LabelMap("int", tuple(range(n))), complete


def describe_labels(store: Any, *, limit: int = 20) -> str | None:
    """``"3 classes: 0 = 'broken', 1 = 'ok', 2 = 'worn'"`` for a store with a label map (else ``None``)."""
    labels = read_label_map(store)
    if labels is None or labels.identity:
        return None
    shown = ", ".join(f"{i} = {v!r}" for i, v in enumerate(labels.values[:limit]))
    more = f", ... ({labels.n_classes - limit} more)" if labels.n_classes > limit else ""
    return f"{labels.n_classes} classes (class codes in the store and in the metrics): {shown}{more}"
