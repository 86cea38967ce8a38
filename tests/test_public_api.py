"""The top-level API: a small, sorted __all__ whose names all resolve; light imports."""

from __future__ import annotations

import subprocess
import sys

import modyn_store


def test_all_is_sorted_and_resolves() -> None:
    assert modyn_store.__all__ == sorted(modyn_store.__all__)
    for name in modyn_store.__all__:
        assert getattr(modyn_store, name) is not None, name


def test_every_error_derives_from_the_root() -> None:
    for name in modyn_store.__all__:
        obj = getattr(modyn_store, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, modyn_store.ModynStoreError), name


def test_import_does_not_load_torch() -> None:
    code = "import sys, modyn_store; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_store_queries_do_not_wait_for_numba() -> None:
    # The store's key-set searches take engine's NumPy path: no kernel compiles or loads at
    # query time, and Numba is never imported by a store that appends, deletes and reads. Nor
    # are the score and cache modules: `store.scores` and `store.caches` are made on first use.
    code = (
        "import sys, numpy as np, pyarrow as pa\n"
        "from modyn_store import Store\n"
        "s = Store.open('memory://no-numba', create=True)\n"
        "s.append(pa.table({'ts': np.arange(1000), 'x': np.zeros(1000)}))\n"
        "s.delete(keys=np.arange(0, 1000, 7))\n"
        "n = s.as_of().count(); k = s.as_of(1).keys(); d = s.diff(1, 2)\n"
        "assert n == 1000 - 143 and k.size == 1000 and d.deleted.size == 143, (n, k.size, d)\n"
        "print('numba' in sys.modules, 'modyn_store.core.scores' in sys.modules,"
        " 'modyn_store.core.caches' in sys.modules)\n"
        "print(type(s.scores).__name__, s.scores is s.scores, type(s.caches).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False", "Scores", "True", "CacheIndex"]


def test_argument_errors_pickle_and_read_alike() -> None:
    # Errors cross process boundaries (DataLoader workers, Ray, DDP ranks) by pickle.
    import pickle

    from engine.errors import EngineInputError

    for err in (modyn_store.InvalidArgumentError("k", -1, "an integer >= 0"),
                modyn_store.InvalidNameError("tag", "../x", "a safe name"),
                EngineInputError("k", -1, "an integer >= 0")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert (back.name, back.value, back.expected, str(back)) == (err.name, err.value, err.expected, str(err))
    assert str(modyn_store.InvalidArgumentError("k", -1, "x")) == str(EngineInputError("k", -1, "x"))
