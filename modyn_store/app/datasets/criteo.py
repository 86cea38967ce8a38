"""Criteo 1TB click logs: download of the day files and a streaming parser.

Each day file ``day_<N>.gz`` (N = 0 .. 23) is gzip-compressed TSV, one impression per line in
chronological order: ``label``, 13 integer features, 26 categorical features as 32-bit hex
hashes; a missing value is an empty field. The parser yields record batches with the schema
of :func:`modyn_store.app.datasets.synthetic.click_schema`:

- ``key`` = ``key_offset`` + line number; ``ts`` = the day index (int64);
- ``i1 .. i13``: int64, missing -> 0 (negative values are kept as they are);
- ``c1 .. c26``: the hex hash as int64 (``0 .. 2**32 - 1``), missing -> -1 (so it differs from
  the hash ``00000000``);
- ``label`` must be 0 or 1: an empty or other label (never seen in the published files) is
  refused naming the file and row, rather than read as "no click" or as a third class.

Example
-------
>>> criteo_url(3)
'https://storage.googleapis.com/criteo-cail-datasets/day_3.gz'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from modyn_store.app.datasets.download import default_cache_dir, fetch, safe_filename
from modyn_store.app.datasets.synthetic import N_DENSE, N_SPARSE, click_schema
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["CRITEO_HOMEPAGE", "CRITEO_URL", "criteo_day_file", "criteo_url", "iter_criteo_day", "load_criteo"]

CRITEO_HOMEPAGE = "https://ailab.criteo.com/download-criteo-1tb-click-logs-dataset/"
CRITEO_URL = "https://storage.googleapis.com/criteo-cail-datasets/day_{day}.gz"
N_DAYS = 24

_INT_COLS = [f"i{k + 1}" for k in range(N_DENSE)]
_CAT_COLS = [f"c{k + 1}" for k in range(N_SPARSE)]
_HEX = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _day(day: int) -> int:
    if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day < N_DAYS:
        raise InvalidArgumentError("day", day, f"an integer in [0, {N_DAYS - 1}]")
    return day


def criteo_url(day: int, template: str = CRITEO_URL) -> str:
    """The download URL of day ``day``."""
    return template.format(day=_day(day))


def criteo_day_file(
    day: int,
    *,
    cache_dir: str | Path | None = None,
    url_template: str = CRITEO_URL,
    sha256: str | None = None,
    download: bool = True,
) -> Path:
    """Path of ``day_<day>.gz`` in ``cache_dir``, downloaded (and verified) when missing.

    Criteo publishes no checksums; pass ``sha256`` to have the file verified.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "criteo_1tb"
    dest = folder / safe_filename(f"day_{_day(day)}.gz")
    if dest.is_file() and sha256 is None:
        return dest
    if not download:
        raise InvalidArgumentError("cache_dir", str(folder), f"a folder holding {dest.name} (or download=True)")
    return fetch(criteo_url(day, url_template), dest, sha256=sha256)


def _hex_to_int(col: pa.Array) -> np.ndarray:
    """Hex strings (up to 15 digits) -> int64; null or empty -> -1."""
    arr = col.cast(pa.string())
    n = len(arr)
    out = np.full(n, -1, dtype=np.int64)
    lengths = pc.utf8_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    valid = lengths > 0
    if not valid.any():
        return out
    if lengths.max() > 15:
        raise InvalidArgumentError("categorical", int(lengths.max()), "hex strings of at most 15 digits")
    width = int(lengths.max())
    padded = pc.utf8_lpad(arr.filter(pa.array(valid)), width=width, padding="0")
    buffers = padded.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[padded.offset : padded.offset + len(padded) + 1]
    raw = np.frombuffer(buffers[2], dtype=np.uint8)
    chars = raw[offsets[0] : offsets[-1]].reshape(len(padded), width)
    nibbles = _HEX[chars]
    if (nibbles < 0).any():
        raise InvalidArgumentError("categorical", "non-hex value", "hexadecimal strings")
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64) * 4
    out[valid] = (nibbles << shifts).sum(axis=1)
    return out


def _unreadable(path: Path, exc: Exception) -> InvalidArgumentError:
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    hint = "; a download cut short gives this: fetch it again" if isinstance(exc, OSError) else ""
    return InvalidArgumentError("path", str(path), "a complete Criteo day file: tab-separated lines of a label, 13 "
                                                   f"integers and 26 hex ids ({reason}){hint}")


def _read(reader: Any, path: Path) -> Iterator[pa.RecordBatch]:
    """The reader's batches; a parse or decompression error names the file."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(path, exc) from exc
        yield batch


def _labels(label: pa.Array, path: Path, first_line: int) -> pa.Array:
    """``label`` when every value is 0 or 1, else an error naming the first bad row (1-based)."""
    ok = pc.fill_null(pc.is_in(label, value_set=pa.array([0, 1], type=label.type)), False)
    ok_np = ok.to_numpy(zero_copy_only=False)
    if not ok_np.all():
        row = int(np.argmin(ok_np))
        raise InvalidArgumentError("path", str(path), f"click labels of 0 or 1 (row {first_line + row + 1} "
                                                      f"has label {label[row].as_py()!r})")
    return label


def iter_criteo_day(
    path: str | Path, *, day: int = 0, key_offset: int = 0, block_bytes: int = 16 << 20, max_rows: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Parse one Criteo day file (gzip or plain TSV) into record batches, in bounded memory.

    Parameters
    ----------
    path:
        ``day_<N>.gz`` (compression is detected from the ``.gz`` suffix) or an uncompressed file.
    day:
        The day index written to ``ts``.
    key_offset:
        ``key`` of the first line.
    block_bytes:
        Bytes of text parsed per batch.
    max_rows:
        Stop after this many rows (``None``: the whole file).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError("path", str(path), "an existing Criteo day file")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0):
        raise InvalidArgumentError("max_rows", max_rows, "None or an integer >= 0")
    names = ["label", *_INT_COLS, *_CAT_COLS]
    types = {"label": pa.int64(), **{c: pa.int64() for c in _INT_COLS}, **{c: pa.string() for c in _CAT_COLS}}
    stream = pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None)
    try:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(column_names=names, block_size=block_bytes),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False, double_quote=False),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        raise _unreadable(path, exc) from exc
    schema = click_schema("day")
    key = key_offset
    try:
        for batch in _read(reader, path):
            if max_rows is not None:
                if key - key_offset >= max_rows:
                    break
                batch = batch.slice(0, max_rows - (key - key_offset))
            n = batch.num_rows
            arrays = [
                pa.array(np.arange(key, key + n, dtype=np.int64)),
                pa.array(np.full(n, day, dtype=np.int64)),
                _labels(batch.column("label"), path, key - key_offset),
            ]
            arrays += [batch.column(c).fill_null(0) for c in _INT_COLS]
            arrays += [pa.array(_hex_to_int(batch.column(c))) for c in _CAT_COLS]
            key += n
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    finally:
        reader.close()
        stream.close()


def load_criteo(
    path: str | Path | None = None,
    *,
    days: Iterable[int] = (0,),
    cache_dir: str | Path | None = None,
    url_template: str = CRITEO_URL,
    sha256: Mapping[int, str] | None = None,
    download: bool = True,
    max_rows_per_day: int | None = None,
) -> pa.Table:
    """Load Criteo 1TB days as one time-ordered table (use :func:`iter_criteo_day` to stream).

    ``path`` is a day file (read as day ``days[0]``) or a folder of ``day_<N>.gz`` files; with
    ``path=None`` the days are fetched into ``cache_dir``. ``key`` numbers the rows across the
    requested days in order. A full day has about 195 million rows: pass
    ``max_rows_per_day`` unless that fits in memory.

    Examples
    --------
    >>> t = load_criteo("day_0.gz", days=[0], max_rows_per_day=1000)  # doctest: +SKIP
    """
    day_list = [_day(d) for d in days]
    if not day_list:
        raise InvalidArgumentError("days", days, "at least one day")
    batches: list[pa.RecordBatch] = []
    key = 0
    for i, d in enumerate(day_list):
        if path is not None and Path(path).is_file():
            if i > 0:
                raise InvalidArgumentError("days", list(days), "one day when path is a single file")
            file = Path(path)
        elif path is not None:
            file = Path(path) / safe_filename(f"day_{d}.gz")
        else:
            digest = (sha256 or {}).get(d)
            file = criteo_day_file(d, cache_dir=cache_dir, url_template=url_template, sha256=digest, download=download)
        for batch in iter_criteo_day(file, day=d, key_offset=key, max_rows=max_rows_per_day):
            batches.append(batch)
            key += batch.num_rows
    return pa.Table.from_batches(batches, schema=click_schema("day"))
