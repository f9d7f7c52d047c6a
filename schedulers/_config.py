"""Rebuilding a built-in scheduler from its :meth:`Scheduler.config` (resume, tools)."""

from __future__ import annotations

from typing import Any, Mapping

from raytuner.errors import ConfigError

from ._asha import ASHAScheduler
from ._base import Scheduler
from ._fifo import FIFOScheduler
from ._hyperband import HyperbandScheduler
from ._median import MedianStoppingScheduler
from ._pb2 import PB2Scheduler
from ._pbt import PBTScheduler
from ._replay import PBTReplay

_BUILT_IN: dict[str, type[Scheduler]] = {
    cls.__name__: cls
    for cls in (ASHAScheduler, FIFOScheduler, HyperbandScheduler, MedianStoppingScheduler, PB2Scheduler, PBTScheduler,
                PBTReplay)
}


def from_config(config: Mapping[str, Any]) -> Scheduler:
    """The scheduler that ``config`` (what :meth:`Scheduler.config` returned) describes.

    Example:
        >>> from raytuner.schedulers import ASHAScheduler, from_config
        >>> from_config(ASHAScheduler(max_resource=27).config())
        ASHAScheduler(max_resource=27, min_resource=1, reduction_factor=3, brackets=1, variant='stopping', resource_attr=None, seed=0)

    Raises:
        ConfigError: ``config`` does not name a built-in scheduler. A scheduler of your own
            has no config (or one this function does not know); the Tuner pickles it.
    """
    kind = config.get("type") if isinstance(config, Mapping) else None
    if kind not in _BUILT_IN:
        msg = (
            f"schedulers.from_config: `config` is {config!r:.120}, but must be the config() of a "
            f"built-in scheduler, with 'type' one of {', '.join(sorted(_BUILT_IN))}. A scheduler "
            "of your own cannot be rebuilt from data: pickle it instead."
        )
        raise ConfigError(msg)
    return _BUILT_IN[kind](**{key: value for key, value in config.items() if key != "type"})
