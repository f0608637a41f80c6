"""``prl`` entry point: builds the command tree from the command modules of this package.

Every module here (other than ``base``) adds its commands to the groups of
:mod:`services.cli.base` when imported; ``main`` imports them all, so a new command is a new
module and nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil

from services.cli.base import app  # noqa: F401  (the command tree)


def load_commands() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):  # not __main__
            importlib.import_module(f"{__name__}.{info.name}")


def main() -> None:
    """``prl``: every command behind one error boundary (:mod:`services.cli.errors`)."""
    import sys

    from services.cli.errors import run

    sys.exit(run())
