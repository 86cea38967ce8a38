"""The selection table of ``docs/policies.md``, read as data: the strategies and parameters it
documents (shared by the documentation checks and the pipeline cases of every option)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def _table(heading: str) -> list[list[str]]:
    """Rows (cells, stripped) of the first Markdown table after ``heading``."""
    text = DOC.read_text()
    start = text.index(heading)
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= {"-", ":"} for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([a-z_0-9]+)`", cell)


def _documented_selection() -> dict[str, set[str]]:
    """Strategy name -> documented parameter names."""
    out: dict[str, set[str]] = {}
    params_of: dict[str, set[str]] = {}
    for name_cell, cls_cell, _ in _table("| name | class | selects |"):
        inside = re.search(r"\((.*)\)", cls_cell.replace("\\|", "|"))
        assert inside, cls_cell
        params = {p.split("=")[0].strip() for p in inside.group(1).split(",")}
        if "..." in params:  # "the parameters of the row above" (rho_loss extends ScoreDownsample)
            params = (params - {"..."}) | params_of["loss"]
        for n in _names(name_cell):
            out[n] = params
            params_of[n] = params
    return out
