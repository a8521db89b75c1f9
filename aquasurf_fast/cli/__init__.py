"""The ``aquasurf`` command: study commands in ``commands`` (start there: ``main`` and its parser),
``bench`` subcommands in ``bench``, options and helpers both use in ``common``."""
from .commands import main

__all__ = ["main"]
