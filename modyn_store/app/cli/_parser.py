"""The command line's argument parsers: options spelled in full only, and a command's options
allowed between its positionals."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["CommandParser", "Parser"]


class Parser(argparse.ArgumentParser):
    """An argument parser that takes options only as spelled in full: with prefixes,
    ``erase --keys 5`` would read the keys from a file named ``5`` (``--keys-file``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class CommandParser(Parser):
    """A command's parser: its options may come between its positionals (``show STORE --json 0``).
    Plain argparse gives an optional positional its (empty) share at the first positional and
    leaves a later one unrecognized."""

    _intermixed = False

    def parse_known_args(  # type: ignore[override]
            self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixed:  # (the intermixed parse calls this again, twice)
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False
