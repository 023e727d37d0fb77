"""The results folder: Parquet part files (``parts``), their schema and codec
(``codec``), the append-only journal (``journal``), the driver lock (``lock``) and the
store that writes and reads them (``results_store``).

Example:
    >>> from sweep.store import Store
    >>> store = Store("results/demo")                     # doctest: +SKIP
"""

from .codec import Codec
from .journal import Journal
from .lock import DriverLock
from .parts import PartSet
from .results_store import Store, open_root

__all__ = ["Codec", "DriverLock", "Journal", "PartSet", "Store", "open_root"]
