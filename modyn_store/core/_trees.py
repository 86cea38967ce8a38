"""Removing a folder that other processes may be removing or writing into at the same time.

Example
-------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp(); open(os.path.join(folder, "f"), "w").close()
>>> remove_tree(folder); remove_tree(folder)  # gone, and removing it again is no error
>>> os.path.exists(folder)
False
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import time
from typing import Any

__all__ = ["remove_tree"]


def _vanished_is_fine(_func: Any, _path: str, exc: BaseException) -> None:
    """``shutil.rmtree``'s error handler: an entry another process removed meanwhile is skipped."""
    if not isinstance(exc, FileNotFoundError):
        raise exc


def remove_tree(path: str) -> None:
    """Remove the folder ``path`` if it exists. Files in it may vanish meanwhile (another
    process removing it too) and a writer may still add some (``ENOTEMPTY``: removed again):
    neither is an error, but the folder is gone when this returns; any other failure is raised."""
    for attempt in range(8):
        try:
            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=_vanished_is_fine)
            else:
                shutil.rmtree(path, onerror=lambda f, p, info: _vanished_is_fine(f, p, info[1]))
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == 7:
                raise
        if not os.path.lexists(path):
            return
        time.sleep(0.001 * (attempt + 1))
