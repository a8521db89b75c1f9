"""``python -m aquasurf_fast.cli``: the ``aquasurf`` command."""
import sys

from .commands import main

sys.exit(main())
