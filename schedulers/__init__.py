"""Trial schedulers: FIFO, ASHA (stopping and promotion), Hyperband, median stopping.

Pure Python; no Ray import. Every scheduler implements :class:`Scheduler`.
"""

from ._asha import ASHAScheduler
from ._base import Decision, Scheduler
from ._fifo import FIFOScheduler

__all__ = [
    "ASHAScheduler",
    "Decision",
    "FIFOScheduler",
    "Scheduler",
]
