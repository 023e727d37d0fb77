"""The results folder: one folder object (``folder``: the paths under
``<root>/<name>/``, the filesystem, the stage files), the writer that fills it
(``writer``: journal first, Parquet in batches) and the reader that reads it
(``reader``: the table, the curves, streamed summaries), over the Parquet part files
(``parts``), their schema and codec (``codec``), the journal (``journal``) and the
driver lock (``lock``).

Example:
    >>> from sweep.store import ResultsFolder, ResultsReader
    >>> reader = ResultsReader(ResultsFolder("results", "demo"))    # doctest: +SKIP
    >>> reader.counts()                                             # doctest: +SKIP
"""

from .codec import Codec
from .folder import ResultsFolder, StageState, open_root
from .journal import Journal
from .lock import DriverLock
from .parts import PartSet
from .reader import ResultsReader
from .writer import ResultsWriter

__all__ = ["Codec", "DriverLock", "Journal", "PartSet", "ResultsFolder", "ResultsReader",
           "ResultsWriter", "StageState", "open_root"]
