"""Cached kernels are dropped when any engine source file changes (engine._jit).

Numba validates a cached kernel only against its own file, so a kernel that inlines
``engine._random`` would keep the old constants after only ``_random.py`` changed. The subprocess
tests run a copy of the package in a temporary folder, edit the copy and run it again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine

PACKAGE = Path(engine.__file__).resolve().parent
OLD_GOLDEN = "_GOLDEN = np.uint64(0x9E3779B97F4A7C15)"
NEW_GOLDEN = "_GOLDEN = np.uint64(0x9E3779B97F4A7C17)"  # same length: the file keeps its size

RUN = r"""
import json, sys
import engine
from engine import drift
out = drift.permutations(12, 6, 3, seed=1).tolist()
st = drift._permutation_indicators.stats
print(json.dumps({"file": engine.__file__, "perms": out,
                  "hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values())}))
"""

# the cache files of the copy vanish at the worst moments (as if another process dropped them)
INTERLEAVED = r"""
import json, os, sys
from numba.core import caching
import engine
from engine import _jit
where = sys.argv[1]
original = getattr(caching.IndexDataCacheFile, where)
def vanishing(self, *args):
    for d in _jit.cache_dirs():
        _jit._drop(d)
    return original(self, *args)
setattr(caching.IndexDataCacheFile, where, vanishing)
from engine import drift
out = drift.permutations(12, 6, 3, seed=1).tolist()
st = drift._permutation_indicators.stats
print(json.dumps({"perms": out, "hits": sum(st.cache_hits.values()), "misses": sum(st.cache_misses.values())}))
"""


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    shutil.copytree(PACKAGE, root / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _env(root: Path, cache_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return env


def _run(root: Path, cache_dir: Path | None, script: str = RUN, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *args], env=_env(root, cache_dir), cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _edit_random(root: Path) -> None:
    path = root / "engine" / "_random.py"
    text = path.read_text()
    assert OLD_GOLDEN in text
    path.write_text(text.replace(OLD_GOLDEN, NEW_GOLDEN))


@pytest.mark.parametrize("where", ["in-tree", pytest.param("NUMBA_CACHE_DIR", marks=pytest.mark.slow)])
def test_a_changed_callee_module_recompiles_its_callers(tmp_path: Path, where: str) -> None:
    root = _copy(tmp_path)
    cache = tmp_path / "numba-cache" if where == "NUMBA_CACHE_DIR" else None
    before = _run(root, cache)
    assert Path(before["file"]).resolve().parent == (root / "engine").resolve()
    assert _run(root, cache)["hits"] == 1  # cached: the situation that goes stale
    _edit_random(root)
    after = _run(root, cache)
    fresh = _run(root, tmp_path / "fresh-cache")  # an empty cache: compiled from the edited sources
    assert fresh["misses"] == 1 and fresh["perms"] != before["perms"]
    assert after["perms"] == fresh["perms"], "a kernel kept the old inlined constant of _random.py"
    if where != "in-tree":
        assert _run(root, cache)["hits"] == 1  # and the new code is cached again


def test_cache_files_vanishing_while_loading_recompile(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    expected = _run(root, None)["perms"]
    for where in ("_load_index", "_load_data"):  # each run leaves a fresh cache for the next
        res = _run(root, None, INTERLEAVED, where)
        assert res["perms"] == expected and res["misses"] == 1 and res["hits"] == 0, where


@pytest.mark.slow
def test_concurrent_imports_after_a_change(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _run(root, None)
    _edit_random(root)
    expected = _run(root, tmp_path / "fresh-cache")["perms"]
    procs = [subprocess.Popen([sys.executable, "-c", RUN], env=_env(root, None), cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["perms"] == expected


# ------------------------------------------------------------ the file logic, on a fake package


def _fake_package(tmp_path: Path) -> tuple[Path, Path]:
    pkg = tmp_path / "engine"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("X = 1\n")
    (pkg / "b.py").write_text("Y = 2\n")
    _age(pkg)
    return pkg, pkg / "__pycache__"


def _age(pkg: Path, seconds: float = 100.0) -> None:
    """Older than the window in which file times are not trusted."""
    t = time.time() - seconds
    for f in pkg.glob("*.py"):
        os.utime(f, (t, t))


def _cache_files(cache: Path) -> list[str]:
    for name in ("a.f-1.py311.nbi", "a.f-1.py311.1.nbc"):
        (cache / name).write_bytes(b"x")
    return sorted(p.name for p in cache.iterdir() if p.suffix in (".nbi", ".nbc"))


def _left(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.suffix in (".nbi", ".nbc"))


def test_stale_files_are_dropped_and_fresh_ones_kept(tmp_path: Path) -> None:
    from engine import _jit

    pkg, cache = _fake_package(tmp_path)
    _cache_files(cache)
    (cache / "a.f-1.py311.nbi.tmp.0123").write_bytes(b"being written")  # numba's temporary file
    (cache / "a.cpython-311.pyc").write_bytes(b"pyc")
    _jit.drop_stale_caches(str(pkg))  # no stamp yet: written by unknown sources
    assert _left(cache) == []
    assert (cache / "a.f-1.py311.nbi.tmp.0123").exists() and (cache / "a.cpython-311.pyc").exists()
    assert (cache / _jit.STAMP_NAME).exists()
    kept = _cache_files(cache)
    _jit.drop_stale_caches(str(pkg))
    assert _left(cache) == kept  # unchanged sources
    for f in pkg.glob("*.py"):  # touched, same contents: kept, the stamp renewed
        os.utime(f, (time.time() - 50, time.time() - 50))
    _jit.drop_stale_caches(str(pkg))
    assert _left(cache) == kept
    (pkg / "b.py").write_text("Y = 3\n")  # same size, new contents
    _age(pkg, 10.0)
    _jit.drop_stale_caches(str(pkg))
    assert _left(cache) == []


def test_an_edit_within_the_file_time_resolution_is_seen(tmp_path: Path) -> None:
    from engine import _jit

    pkg, cache = _fake_package(tmp_path)
    (pkg / "b.py").write_text("Y = 2\n")  # just written: its time is not trusted
    _jit.drop_stale_caches(str(pkg))
    kept = _cache_files(cache)
    st = (pkg / "b.py").stat()
    (pkg / "b.py").write_text("Y = 5\n")  # same size, and the same time (a coarse clock)
    os.utime(pkg / "b.py", ns=(st.st_atime_ns, st.st_mtime_ns))
    _jit.drop_stale_caches(str(pkg))
    assert kept and _left(cache) == []


def test_read_only_or_busy_directories_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import _jit

    pkg, cache = _fake_package(tmp_path)
    kept = _cache_files(cache)
    monkeypatch.setattr(_jit.os, "access", lambda *a, **k: False)  # read-only: Numba skips it too
    _jit.drop_stale_caches(str(pkg))
    assert _left(cache) == kept and not (cache / _jit.STAMP_NAME).exists()
    monkeypatch.undo()

    def busy(path: str, *a: object, **k: object) -> None:
        raise PermissionError(13, "in use", path)

    monkeypatch.setattr(_jit.os, "unlink", busy)
    _jit.drop_stale_caches(str(pkg))  # no error, no stamp: checked again next time
    assert _left(cache) == kept and not (cache / _jit.STAMP_NAME).exists()
    monkeypatch.undo()
    _jit.drop_stale_caches(str(pkg))
    assert _left(cache) == [] and (cache / _jit.STAMP_NAME).exists()


def test_cache_dirs_are_numbas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core import caching

    from engine import _jit, _univariate

    py_func, py_file = _univariate._ks_stat.py_func, _univariate.__file__
    dirs = _jit.cache_dirs()
    assert caching.InTreeCacheLocator(py_func, py_file).get_cache_path() in dirs
    monkeypatch.setattr(caching.config, "CACHE_DIR", str(tmp_path))
    assert caching.UserProvidedCacheLocator(py_func, py_file).get_cache_path() in _jit.cache_dirs()
    user_wide = caching.UserWideCacheLocator(py_func, py_file).get_cache_path()
    assert user_wide == os.path.join(_jit._user_cache_root(), os.path.basename(user_wide))
    monkeypatch.setattr(_jit.os, "access", lambda *a, **k: False)  # __pycache__ read-only
    monkeypatch.setattr(_jit, "_user_cache_root", lambda: str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    assert str(tmp_path / "user" / os.path.basename(user_wide)) in _jit.cache_dirs()


def test_unchanged_sources_are_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import _jit

    pkg, cache = _fake_package(tmp_path)
    _age(pkg, 10.0)
    _jit.drop_stale_caches(str(pkg))
    kept = _cache_files(cache)

    def read(*a: object, **k: object) -> str:
        raise AssertionError("the sources were hashed although their names, sizes and times match")

    monkeypatch.setattr(_jit, "source_fingerprint", read)
    _jit.drop_stale_caches(str(pkg))  # one stat per file and the stamp's read, no content hash
    assert _left(cache) == kept
