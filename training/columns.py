"""Columnar in-memory layout of materialized rows.

A *fixed* column (numbers, timestamps, fixed-size tensors) is one contiguous NumPy array of
shape ``(rows, *shape)``. A *variable-length* column (binary such as encoded images, or
strings) is a :class:`VarColumn`: an ``offsets`` array of ``rows + 1`` int64 positions into a
contiguous ``data`` byte array.

Example
-------
>>> import pyarrow as pa
>>> from training.columns import spec_of, to_fixed
>>> arr = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 3.0, 4.0], pa.float32()), 2)
>>> spec = spec_of(pa.field("x", arr.type))
>>> spec.kind, spec.shape, to_fixed(arr, spec).tolist()
('fixed', (2,), [[1.0, 2.0], [3.0, 4.0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["ColumnSpec", "VarColumn", "spec_of", "to_fixed", "to_var"]

Kind = Literal["fixed", "binary", "string"]


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is held: ``kind``, NumPy ``dtype`` (fixed columns) and per-row ``shape``."""

    name: str
    kind: Kind
    dtype: str
    shape: tuple[int, ...]

    def row_nbytes(self) -> int:
        """Bytes per row of a fixed column (0 for variable-length columns)."""
        if self.kind != "fixed":
            return 0
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64)))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> ColumnSpec:
        shape = d["shape"]
        if not isinstance(shape, list):
            raise InvalidArgumentError("shape", shape, "a list of sizes")
        kind = d["kind"]
        if kind not in ("fixed", "binary", "string"):
            raise InvalidArgumentError("kind", kind, "'fixed', 'binary' or 'string'")
        return cls(str(d["name"]), kind, str(d["dtype"]), tuple(int(s) for s in shape))


@dataclass(frozen=True)
class VarColumn:
    """Variable-length rows: row ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.data.nbytes)

    def rows(self, index: np.ndarray, *, text: bool) -> list[bytes] | list[str]:
        """Rows at ``index`` as ``bytes`` (or ``str`` decoded as UTF-8 when ``text``)."""
        off, data = self.offsets, self.data
        buf = data.tobytes() if data.size < (1 << 16) else data.data
        out_b = [bytes(buf[off[i] : off[i + 1]]) for i in index.tolist()]
        if text:
            return [b.decode("utf-8") for b in out_b]
        return out_b


def _base_type(t: pa.DataType) -> pa.DataType:
    return t.storage_type if isinstance(t, pa.ExtensionType) else t


def spec_of(field: pa.Field) -> ColumnSpec:
    """The :class:`ColumnSpec` of an Arrow field; unsupported types raise ``InvalidArgumentError``."""
    t = _base_type(field.type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return ColumnSpec(field.name, "string", "uint8", ())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return ColumnSpec(field.name, "binary", "uint8", ())
    if pa.types.is_fixed_size_binary(t):
        return ColumnSpec(field.name, "fixed", "uint8", (t.byte_width,))
    shape: list[int] = []
    while pa.types.is_fixed_size_list(t):
        shape.append(t.list_size)
        t = _base_type(t.value_type)
    if pa.types.is_temporal(t):
        return ColumnSpec(field.name, "fixed", "int64", tuple(shape))
    if pa.types.is_unsigned_integer(t) and t.bit_width > 8:
        # torch gathers (index_select) no unsigned type but uint8: the next signed type holds
        # every value (uint64: int64, values above 2**63 - 1 are refused when read)
        return ColumnSpec(field.name, "fixed", "<i4" if t.bit_width == 16 else "<i8", tuple(shape))
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        return ColumnSpec(field.name, "fixed", np.dtype(t.to_pandas_dtype()).str, tuple(shape))
    raise InvalidArgumentError(
        f"columns[{field.name!r}]",
        str(field.type),
        "numbers, timestamps, fixed-size lists of numbers, binary or strings",
    )


def _check_nulls(arr: pa.Array, name: str) -> None:
    if arr.null_count:
        raise InvalidArgumentError(f"columns[{name!r}]", f"{arr.null_count} nulls", "a column without nulls")


def to_fixed(arr: pa.Array | pa.ChunkedArray, spec: ColumnSpec) -> np.ndarray:
    """A fixed column's rows as a NumPy array of shape ``(len(arr), *spec.shape)`` (zero-copy when possible)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    _check_nulls(arr, spec.name)
    n = len(arr)
    if pa.types.is_fixed_size_binary(arr.type):
        width = arr.type.byte_width
        buf = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
        return buf[arr.offset * width : (arr.offset + n) * width].reshape(n, width)
    values = arr
    while pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
        if isinstance(values.type, pa.ExtensionType):
            values = values.storage
        _check_nulls(values, spec.name)
    if pa.types.is_temporal(values.type):
        # int64 in the column's own unit (date32: days, time32: seconds or milliseconds)
        values = (values.view(pa.int64()) if values.type.bit_width == 64
                  else values.view(pa.int32()).cast(pa.int64()))
    if pa.types.is_boolean(values.type):
        out = values.to_numpy(zero_copy_only=False)
    else:
        out = values.to_numpy(zero_copy_only=True)
    if out.dtype != np.dtype(spec.dtype):  # a widened unsigned column (see spec_of)
        if out.dtype == np.uint64 and out.size and int(out.max()) > np.iinfo(np.int64).max:
            raise InvalidArgumentError(f"columns[{spec.name!r}]", int(out.max()),
                                       "uint64 values up to 2**63 - 1 (they are read as int64)")
        out = out.astype(spec.dtype)
    return out.reshape((n, *spec.shape))


def to_var(arr: pa.Array | pa.ChunkedArray, spec: ColumnSpec) -> VarColumn:
    """A variable-length column as a :class:`VarColumn` (one copy of the bytes)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    _check_nulls(arr, spec.name)
    arr = arr.cast(pa.large_binary())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    start = int(offsets[0]) if n else 0
    stop = int(offsets[-1]) if n else 0
    return VarColumn(offsets=(offsets - start).astype(np.int64), data=np.array(data[start:stop], dtype=np.uint8))

