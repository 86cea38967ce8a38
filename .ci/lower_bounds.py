"""Print pip constraints pinning every dependency to its declared lower bound.

Usage: python .ci/lower_bounds.py [EXTRA ...] > constraints-lower.txt

Reads ``[project] dependencies`` and the named optional-dependency groups of pyproject.toml; a
requirement ``name>=X`` becomes ``name==X`` (extras such as ``moto[server]`` keep their name
only). References to this project's own extras are followed. Requirements without a lower
bound are an error: each dependency must say what it was tested with.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*$")


def lower_bounds(extras: list[str]) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = project.get("optional-dependencies", {})
    name = project["name"]
    reqs = list(project["dependencies"])
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in groups:
            raise SystemExit(f"no extra {extra!r} in pyproject.toml (have: {sorted(groups)})")
        for req in groups[extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req.strip())
            if own:
                todo += [e.strip() for e in own.group(1).split(",")]
            else:
                reqs.append(req)
    pins: dict[str, str] = {}
    for req in reqs:
        m = REQ.match(req)
        if not m:
            raise SystemExit(f"{req!r}: expected 'name>=version' (a lower bound CI can install)")
        pins[m.group(1).lower()] = m.group(3)
    return pins


if __name__ == "__main__":
    for pkg, version in sorted(lower_bounds(sys.argv[1:]).items()):
        print(f"{pkg}=={version}")
