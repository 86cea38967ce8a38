"""The layers of the code base, as ``pyproject.toml`` writes them for import-linter, and the
import graph: the contract holds on this tree and breaks on a copy with a wrong import, and no
modules import each other in a circle (import-linter does not check that, so this file does).

A circle counts every import that runs, at the top of a module or inside a function; imports
under ``if TYPE_CHECKING:`` only name types for annotations and never run, so they are left out
of the circle check (the layer contract still sees them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("modyn_store", "engine", "policies", "training")

_EDGES = """
import json, grimp
g = grimp.build_graph(*{packages!r}, exclude_type_checking_imports=True, cache_dir=None)
print(json.dumps(sorted([m, i] for m in g.modules for i in g.find_modules_directly_imported_by(m))))
"""


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", "COLUMNS": "200"}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` as CI does, with the contracts of ``root/pyproject.toml``."""
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=root, env=_env(root), capture_output=True, text=True, timeout=300, check=False,
    )


def _edges(root: Path) -> list[tuple[str, str]]:
    """The module -> module imports of the packages under ``root`` that run (see the docstring)."""
    proc = subprocess.run(
        [sys.executable, "-c", _EDGES.format(packages=PACKAGES)],
        cwd=root, env=_env(root), capture_output=True, text=True, timeout=300, check=True,
    )
    return [(a, b) for a, b in json.loads(proc.stdout)]


def circles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    adj: dict[str, list[str]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(adj):
        if start in index:
            continue
        work = [(start, iter(adj[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(adj[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.parquet"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _add(root: Path, module: str, text: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_circles_finds_each_component() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")]
    assert circles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert circles([("a", "b"), ("b", "c"), ("a", "c")]) == []


def test_the_layer_contract_holds() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


def test_no_modules_import_each_other_in_a_circle() -> None:
    edges = _edges(ROOT)
    assert len(edges) > 300  # the graph really was built over the four packages
    assert circles(edges) == []


# Each wrong import goes into a copy of the tree; the contract named must break with the chain.
WRONG_IMPORTS = [
    ("engine.sets", "import policies.uniform", "engine.sets -> policies.uniform"),
    ("modyn_store.core.records", "def _f():\n    from modyn_store.app import _fmt", "modyn_store.core.records -> modyn_store.app._fmt"),
    ("policies.uniform", "import training.errors", "policies.uniform -> training.errors"),
    ("training.errors", "import policies.base", "training.errors -> policies.base"),
    ("modyn_store", "import training.errors", "modyn_store -> training.errors"),
]


@pytest.mark.parametrize(("module", "text", "chain"), WRONG_IMPORTS, ids=[w[0] for w in WRONG_IMPORTS])
def test_the_layer_contract_breaks_on_a_wrong_import(tmp_path: Path, module: str, text: str, chain: str) -> None:
    root = _copy(tmp_path)
    _add(root, module, text)
    proc = _lint(root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BROKEN" in proc.stdout and "0 broken" not in proc.stdout
    assert chain in proc.stdout, proc.stdout


def test_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert circles(_edges(root)) == []
    # config is imported by loop; a lazy import back closes a circle
    _add(root, "modyn_store.app.pipeline.config", "def _late():\n    from modyn_store.app.pipeline import loop")
    assert circles(_edges(root)) == [["modyn_store.app.pipeline.config", "modyn_store.app.pipeline.loop"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_opens_with_a_docstring(package: str) -> None:
    import ast

    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / package).rglob("*.py"))
               if len(ast.get_docstring(ast.parse(p.read_text())) or "") < 20]
    assert missing == [], "modules without a docstring saying what they own"


def test_every_dependency_declares_the_lower_bound_ci_installs() -> None:
    # .ci/run installs these pins in a fresh venv; a requirement without ">=" would stop it
    import tomllib

    extras = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    proc = subprocess.run([sys.executable, str(ROOT / ".ci" / "lower_bounds.py"), *extras],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    pins = dict(line.split("==") for line in proc.stdout.split())
    assert {"pylance", "pyarrow", "numpy", "numba", "torch", "matplotlib"} <= set(pins)
