"""Loaders of the Wild-Time benchmarks from their original public sources (no pickles).

Wild-Time distributes its prepared splits as Python pickles, which this library never loads;
these loaders read the original formats instead:

- **Yearbook** (Ginosar et al. 2015): a folder or ``.tar.gz`` of aligned portrait PNGs in
  ``F/`` and ``M/`` sub-folders, file names starting with the year (``1950_...png``). The task
  is gender (``label`` 0 = F, 1 = M), ``ts`` the year, ``image`` the grayscale portrait resized
  to ``size x size`` as float32 in [0, 1] (row-major), like Wild-Time's 32 x 32 version.
- **HuffPost** (Misra 2022, News Category Dataset): JSON lines with ``headline``, ``category``,
  ``short_description``, ``date`` (exactly ``YYYY-MM-DD``, a calendar date; anything else, such
  as ``2022-09-23T10:00`` or ``2022-02-30``, is refused naming the file and line).
- **arXiv** (Cornell's metadata snapshot): JSON lines with ``title``, ``categories`` (space
  separated, primary first) and ``versions`` (``created`` dates in RFC 2822 form); ``ts`` is the
  first version's creation time and ``label`` the primary category.

For the text sets, ``label`` indexes ``categories`` (by default the sorted categories of the
file; pass a list to fix the classes across files).

Example
-------
>>> from modyn_store.app.datasets.wildtime import category_codes
>>> category_codes(["b", "a", "b"], None)
(['a', 'b'], [1, 0, 1])
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from modyn_store.app.datasets._encode import finish, time_order
from modyn_store.core.errors import InvalidArgumentError

__all__ = [
    "ARXIV_SOURCE",
    "HUFFPOST_SOURCE",
    "YEARBOOK_SOURCE",
    "category_codes",
    "load_arxiv",
    "load_huffpost",
    "load_yearbook",
]

YEARBOOK_SOURCE = "https://people.eecs.berkeley.edu/~shiry/projects/yearbooks/yearbooks.html"
HUFFPOST_SOURCE = "https://www.kaggle.com/datasets/rmisra/news-category-dataset"
ARXIV_SOURCE = "https://www.kaggle.com/datasets/Cornell-University/arxiv"

T = TypeVar("T")
MAX_PORTRAIT_BYTES = 16 << 20
_YEAR = re.compile(r"^(\d{4})_")
_SPACE = re.compile(r"\s+")


def category_codes(values: Sequence[str], categories: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """Class list and the code of each value; a value outside a given list raises."""
    if isinstance(categories, str):
        raise InvalidArgumentError("categories", categories, "a list of category names, not one string")
    vocab = sorted(set(values)) if categories is None else list(categories)
    repeated = sorted({c for c in vocab if vocab.count(c) > 1}) if len(set(vocab)) < len(vocab) else []
    if repeated:  # a repeated name would take its last position and leave a class code unused
        raise InvalidArgumentError("categories", repeated[:5], "each category named once")
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise InvalidArgumentError("categories", unknown[:5], "a list holding every category of the file")
    return vocab, [index[v] for v in values]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of every non-blank line; a line that is not a JSON object raises."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArgumentError("path", f"{path}:{number}", f"UTF-8 text ({exc.reason})") from exc
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError("path", f"{path}:{number}", f"JSON lines ({exc.msg})") from exc
            except RecursionError:
                raise InvalidArgumentError("path", f"{path}:{number}", "JSON lines whose values are not nested "
                                                                       "too deeply to read") from None
            if not isinstance(rec, dict):
                raise InvalidArgumentError("path", f"{path}:{number}", "JSON lines of objects")
            yield number, rec


def _field(path: Path, number: int, rec: dict[str, Any], name: str, parse: Callable[[Any], T]) -> T:
    """``parse(rec[name])``; a missing or malformed field raises naming the file, line and field."""
    if rec.get(name) is None:
        raise InvalidArgumentError(name, f"{path}:{number}", f"a record with a {name!r} field")
    try:
        return parse(rec[name])
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise InvalidArgumentError(name, f"{path}:{number}: {rec[name]!r}"[:300],
                                   f"a valid {name!r} field ({type(exc).__name__}: {exc})") from exc


def _category(value: Any) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("an empty category")
    return text


def _iso_day(value: Any) -> str:
    """``value`` if it is exactly a ``YYYY-MM-DD`` calendar date (no time, no trailing text)."""
    if not isinstance(value, str):
        raise TypeError(f"a date is YYYY-MM-DD text, not {type(value).__name__}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("not a YYYY-MM-DD date")
    date.fromisoformat(value)  # a day that no month has (2022-02-30) raises ValueError
    return value


def _first_version_time(versions: list[Any]) -> int:
    """Seconds (UTC) of the first version's RFC 2822 ``created`` date (a date without zone is UTC)."""
    created = parsedate_to_datetime(str(versions[0]["created"]))
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return int(created.astimezone(timezone.utc).timestamp())


def _file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InvalidArgumentError("path", str(path), f"an existing {what} file")
    return p


def load_huffpost(
    path: str | Path, *, categories: Sequence[str] | None = None, with_description: bool = False
) -> pa.Table:
    """Load the HuffPost news category stream (``News_Category_Dataset_v3.json``).

    Columns: ``key`` (line order), ``ts`` (``timestamp[s]``, the publication day), ``label``,
    ``category`` and ``text`` (the headline, plus a blank line and the short description when
    ``with_description``).

    Examples
    --------
    >>> load_huffpost("News_Category_Dataset_v3.json").num_rows  # doctest: +SKIP
    209527
    """
    texts, cats, dates = [], [], []
    file = _file(path, "HuffPost JSON lines")
    for number, rec in _json_lines(file):
        headline = _SPACE.sub(" ", str(rec.get("headline") or "")).strip()
        if with_description:
            headline = f"{headline}\n\n{str(rec.get('short_description') or '').strip()}"
        texts.append(headline)
        cats.append(_field(file, number, rec, "category", _category))
        dates.append(_field(file, number, rec, "date", lambda v: np.datetime64(_iso_day(v), "s")))
    vocab, codes = category_codes(cats, categories)
    key = np.arange(len(texts), dtype=np.int64)
    ts = pa.array(np.array(dates, dtype="datetime64[s]"), type=pa.timestamp("s"))
    cols = {"key": key, "ts": ts, "label": np.array(codes, dtype=np.int64),
            "category": pa.array(cats, pa.string()), "text": pa.array(texts, pa.string())}  # fmt: skip
    return finish(cols, time_order(ts, key))


def load_arxiv(path: str | Path, *, categories: Sequence[str] | None = None) -> pa.Table:
    """Load the arXiv title stream (``arxiv-metadata-oai-snapshot.json``).

    Columns: ``key`` (line order), ``ts`` (``timestamp[s]`` UTC, first version), ``label``
    (primary category), ``category``, ``text`` (the title, whitespace collapsed) and ``id``.

    Examples
    --------
    >>> load_arxiv("arxiv-metadata-oai-snapshot.json").column_names[:3]  # doctest: +SKIP
    ['key', 'ts', 'label']
    """
    texts, cats, times, ids = [], [], [], []
    file = _file(path, "arXiv metadata JSON lines")
    for number, rec in _json_lines(file):
        versions = rec.get("versions") or []
        if not isinstance(versions, list) or not versions:
            raise InvalidArgumentError("versions", rec.get("id"), "a non-empty list of versions")
        times.append(_field(file, number, rec, "versions", _first_version_time))
        cats.append(_field(file, number, rec, "categories", lambda v: _category(str(v).split()[0])))
        texts.append(_SPACE.sub(" ", str(rec.get("title") or "")).strip())
        ids.append(str(rec.get("id", "")))
    vocab, codes = category_codes(cats, categories)
    key = np.arange(len(texts), dtype=np.int64)
    ts = pa.array(np.array(times, dtype=np.int64), type=pa.int64()).cast(pa.timestamp("s"))
    cols = {"key": key, "ts": ts, "label": np.array(codes, dtype=np.int64), "category": pa.array(cats, pa.string()),
            "text": pa.array(texts, pa.string()), "id": pa.array(ids, pa.string())}  # fmt: skip
    return finish(cols, time_order(ts, key))


def _portraits(path: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, PNG bytes) of every portrait, sorted by name."""
    if path.is_dir():
        for p in sorted(path.rglob("*.png")):
            yield p.relative_to(path).as_posix(), p.read_bytes()
        return
    if not path.is_file() or not path.name.endswith((".tar.gz", ".tgz", ".tar")):
        raise InvalidArgumentError("path", str(path), "a folder of portraits or a .tar.gz / .tar archive")
    try:
        with tarfile.open(path, "r:*") as tar:  # members are read in memory, never extracted
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".png")),
                             key=lambda m: m.name)
            for m in members:
                if m.size > MAX_PORTRAIT_BYTES:  # a portrait is a few kB: refuse to inflate a bomb into memory
                    raise InvalidArgumentError("path", f"{path}:{m.name}", f"a portrait of at most "
                                                                          f"{MAX_PORTRAIT_BYTES} bytes, not {m.size}")
                fh = tar.extractfile(m)
                if fh is not None:
                    yield m.name, fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InvalidArgumentError("path", str(path), f"a complete, readable archive ({type(exc).__name__}: "
                                                      f"{exc}); a download cut short gives this: fetch it again") from exc


def load_yearbook(path: str | Path, *, size: int = 32) -> pa.Table:
    """Load the Yearbook portraits (folder or archive) as a time-ordered table.

    Columns: ``key`` (position in name order), ``ts`` (int64 year), ``label`` (0 = F, 1 = M,
    from the ``F``/``M`` folder), ``image`` (fixed-size list of ``size * size`` float32 in
    [0, 1]) and ``name``. Files outside an ``F``/``M`` folder or without a leading year are
    rejected with an error naming the file.

    Examples
    --------
    >>> load_yearbook("faces_aligned_small_mirrored_co_aligned_cropped_cleaned").num_rows  # doctest: +SKIP
    37921
    """
    from PIL import Image

    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1024:
        raise InvalidArgumentError("size", size, "an integer in [1, 1024]")
    names, years, labels, pixels = [], [], [], []
    for name, data in _portraits(Path(path)):
        parts = name.split("/")
        gender = parts[-2] if len(parts) >= 2 else ""
        match = _YEAR.match(parts[-1])
        if gender not in ("F", "M") or match is None:
            raise InvalidArgumentError("path", name, "portraits named F/<year>_*.png or M/<year>_*.png")
        try:
            with Image.open(io.BytesIO(data)) as img:
                gray = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
                pixels.append(np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
            raise InvalidArgumentError("path", name, f"a readable PNG portrait ({type(exc).__name__}: {exc})") from exc
        names.append(name)
        years.append(int(match.group(1)))
        labels.append(int(gender == "M"))
    flat = np.concatenate(pixels) if pixels else np.zeros(0, dtype=np.float32)
    key = np.arange(len(names), dtype=np.int64)
    ts = np.array(years, dtype=np.int64)
    cols = {"key": key, "ts": ts, "label": np.array(labels, dtype=np.int64),
            "image": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), size * size),
            "name": pa.array(names, pa.string())}  # fmt: skip
    return finish(cols, time_order(pa.array(ts), key))
