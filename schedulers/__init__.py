"""Trial schedulers: FIFO, ASHA (stopping and promotion), Hyperband, median stopping, and
population based training (PBT, PB2, and the replay of one trial's PBT schedule).

Pure Python; no Ray import. Every scheduler implements :class:`Scheduler`; the rung math
they share is in :mod:`schedulers._rungs` (``hyperband_brackets`` and ``rung_levels`` are
re-exported for planning budgets). A built-in scheduler describes itself as data
(:meth:`Scheduler.config`, :meth:`Scheduler.milestones`); :func:`from_config` rebuilds it.
"""

from ._asha import ASHAScheduler
from ._base import Decision, Exploit, Scheduler
from ._config import from_config
from ._fifo import FIFOScheduler
from ._hyperband import HyperbandScheduler
from ._median import MedianStoppingScheduler
from ._pb2 import PB2Scheduler
from ._pbt import PBTScheduler
from ._replay import PBTReplay
from ._rungs import HyperbandBracket, hyperband_brackets, rung_levels

__all__ = [
    "ASHAScheduler",
    "Decision",
    "Exploit",
    "FIFOScheduler",
    "HyperbandBracket",
    "HyperbandScheduler",
    "MedianStoppingScheduler",
    "PB2Scheduler",
    "PBTReplay",
    "PBTScheduler",
    "Scheduler",
    "from_config",
    "hyperband_brackets",
    "rung_levels",
]
