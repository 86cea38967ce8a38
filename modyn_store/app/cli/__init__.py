"""The ``modyn-store`` command line: store commands, pipeline commands and the demo."""

from modyn_store.app.cli.main import main

__all__ = ["main"]
