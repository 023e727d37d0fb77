"""``python -m sweep``: the same as the ``sweep`` command (used by Ray Jobs)."""

import sys

from .cli import main

sys.exit(main())
