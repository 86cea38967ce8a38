"""Plain-text tables and progress lines for the command line (no dependencies)."""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

__all__ = ["Progress", "format_table", "md_cell", "progress", "share"]

T = TypeVar("T")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (pipes escaped, line breaks flattened).

    >>> print(md_cell("a|b"))
    a\\|b
    """
    return text.replace("|", "\\|").replace("\n", " ")


def md_text(text: object) -> str:
    """``text`` as plain text in Markdown (a table cell, a heading, a paragraph): pipes escaped,
    ``<``, ``>`` and ``&`` as entities, so a name never becomes markup and reads back as written.

    >>> print(md_text("R&amp;D <b>|x"))
    R&amp;amp;D &lt;b&gt;\\|x
    """
    return html.escape(md_cell(str(text)), quote=False)


def share(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole`` with one decimal (``-`` when ``whole`` is not positive).

    >>> share(1.0, 8.0), share(1.0, 0.0)
    ('12.5', '-')
    """
    return f"{100.0 * part / whole:.1f}" if whole > 0 else "-"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as an aligned text table with a header rule.

    Example
    -------
    >>> print(format_table([{"v": 1, "op": "append"}, {"v": 2, "op": "delete"}]))
    v  op
    -  ------
    1  append
    2  delete
    """
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in cols]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Progress:
    """A progress bar on a terminal, a line every few seconds otherwise."""

    def __init__(self, total: int | None, desc: str, *, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.total = total
        self.desc = desc
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self._start = time.perf_counter()
        self._last = self._start  # off a terminal: the first line after `every` seconds (or at the end)
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._finished = False  # the line of the last item is written once off a terminal

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        if self._tty or now - self._last >= self.every or (finished and not self._finished):
            self._last = now
            self._finished = finished
            self._draw(note)

    def _draw(self, note: str) -> None:
        elapsed = time.perf_counter() - self._start
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            text = f"{self.desc} [{bar:<24}] {self.done}/{self.total} {elapsed:6.1f}s {note}"
        else:
            text = f"{self.desc} {self.done} {elapsed:6.1f}s {note}"
        if self._tty:
            self.stream.write("\r" + text[:120].ljust(120))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


def progress(items: Iterable[T], total: int | None, desc: str) -> Iterator[T]:
    """Iterate ``items`` while showing progress."""
    bar = Progress(total, desc)
    try:
        for item in items:
            yield item
            bar.update()
    finally:
        bar.close()
