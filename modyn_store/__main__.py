"""``python -m modyn_store``: the ``modyn-store`` command line, for environments without the
installed script (``python -m modyn_store demo`` runs as ``modyn-store demo``)."""

from __future__ import annotations

import sys

from modyn_store.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
