"""modyn-store: an embedded, versioned dataset store for training on dynamic data.

Example
-------
>>> import pyarrow as pa
>>> import modyn_store
>>> store = modyn_store.Store.open("memory://init-doc", create=True)
>>> store.append(pa.table({"ts": [1, 2, 3]})).inserted
3
"""

# The public names are the store core's, re-exported (the list lives in modyn_store/core/__init__.py).
from modyn_store.core import *  # noqa: F403
from modyn_store.core import __all__

__version__ = "0.1.0"
