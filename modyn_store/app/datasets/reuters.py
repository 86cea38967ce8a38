"""Loader of Reuters-21578 (news stories, 1987-02-26 .. 1987-10-20) with single-label views.

The source is multi-label (``topics``; 11,367 of 21,578 stories have at least one topic). Two
single-label views are offered:

- ``view="top"`` (default, ``n_topics=10``): class ``i`` for the ``i``-th of
  :data:`TOP_TOPICS` (the most frequent topics of the full corpus, most frequent first); a story
  carrying several of them gets the most frequent one; a story with none of them (including the
  stories without topics) gets class ``n_topics`` ("other"). ``n_classes = n_topics + 1``.
- ``view="earn"``: binary, 1 when ``earn`` is among the topics.

Example
-------
>>> from modyn_store.app.datasets.reuters import reuters_label
>>> reuters_label([["grain", "acq"], [], ["earn"]], view="top", n_topics=10).tolist()
[1, 10, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.app.datasets._encode import finish, read_parquet, resolve_file, time_order
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["TOP_TOPICS", "load_reuters", "reuters_label"]

#: Topics of Reuters-21578 by frequency over all 21,578 stories (earn: 3,987 .. oilseed: 192).
TOP_TOPICS = (
    "earn", "acq", "money-fx", "crude", "grain", "trade", "interest", "wheat", "ship", "corn",
    "dlr", "oilseed",
)  # fmt: skip


def reuters_label(
    topics: Sequence[Sequence[str]], *, view: Literal["top", "earn"] = "top", n_topics: int = 10
) -> np.ndarray:
    """Map each story's topic list to one int64 class (see the module docstring)."""
    if view == "earn":
        return np.fromiter((int("earn" in t) for t in topics), dtype=np.int64, count=len(topics))
    if view != "top":
        raise InvalidArgumentError("view", view, "one of 'top', 'earn'")
    if not isinstance(n_topics, int) or not 1 <= n_topics <= len(TOP_TOPICS):
        raise InvalidArgumentError("n_topics", n_topics, f"an integer in [1, {len(TOP_TOPICS)}]")
    rank = {t: i for i, t in enumerate(TOP_TOPICS[:n_topics])}
    return np.fromiter(
        (min((rank[t] for t in ts if t in rank), default=n_topics) for ts in topics),
        dtype=np.int64,
        count=len(topics),
    )


def load_reuters(path: str | Path, *, view: Literal["top", "earn"] = "top", n_topics: int = 10) -> pa.Table:
    """Load Reuters-21578 as a time-ordered text stream.

    Columns: ``key`` (source row), ``ts`` (``timestamp[us]``, the story's date), ``label``,
    ``text`` (title, a blank line, then body), ``topics`` (the original multi-label list) and
    ``newid`` (the corpus' own id). One story (NEWID 17192) has no date in the source: a missing
    date is filled with the date of the story with the next lower NEWID that has one, which keeps
    it in the corpus' chronological id order.

    Examples
    --------
    >>> t = load_reuters("../shared/data", view="earn")  # doctest: +SKIP
    >>> t.num_rows, t.column("label").to_numpy().sum()  # doctest: +SKIP
    (21578, 3987)
    """
    reuters_label([], view=view, n_topics=n_topics)  # validates view and n_topics before reading
    raw = read_parquet(resolve_file(path, "reuters21578.parquet"), ("newid", "date", "topics", "title", "body"))
    n = raw.num_rows
    key = np.arange(n, dtype=np.int64)
    newid = raw.column("newid").to_numpy().astype(np.int64)
    date = raw.column("date").combine_chunks().cast(pa.timestamp("us"))
    if date.null_count:
        by_id = np.argsort(newid, kind="stable")
        ordered = date.take(pa.array(by_id))
        filled = pc.fill_null_forward(ordered)
        filled = pc.fill_null_backward(filled)  # only when the lowest NEWID has no date
        inverse = np.empty(n, dtype=np.int64)
        inverse[by_id] = np.arange(n)
        date = filled.take(pa.array(inverse))
    topics = raw.column("topics").to_pylist()
    title = raw.column("title").fill_null("")
    body = raw.column("body").fill_null("")
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key,
        "ts": date,
        "label": reuters_label(topics, view=view, n_topics=n_topics),
        "text": pc.binary_join_element_wise(title, body, pa.scalar("\n\n", pa.large_string())).combine_chunks().cast(pa.string()),
        "topics": raw.column("topics").combine_chunks().cast(pa.list_(pa.string())),
        "newid": newid,
    }
    return finish(cols, time_order(date, key))
