"""Trial schedulers: FIFO, ASHA (stopping and promotion), Hyperband, median stopping.

Pure Python; no Ray import. Every scheduler implements :class:`Scheduler`; the rung math
they share is in :mod:`schedulers._rungs` (``hyperband_brackets`` and ``rung_levels`` are
re-exported for planning budgets).
"""

from ._asha import ASHAScheduler
from ._base import Decision, Scheduler
from ._fifo import FIFOScheduler
from ._hyperband import HyperbandScheduler
from ._median import MedianStoppingScheduler
from ._rungs import HyperbandBracket, hyperband_brackets, rung_levels

__all__ = [
    "ASHAScheduler",
    "Decision",
    "FIFOScheduler",
    "HyperbandBracket",
    "HyperbandScheduler",
    "MedianStoppingScheduler",
    "Scheduler",
    "hyperband_brackets",
    "rung_levels",
]
