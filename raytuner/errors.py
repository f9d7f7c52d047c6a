"""Exceptions raised by raytuner.

::

    RayTunerError
    ├── ConfigError (also ValueError)     bad argument to the Tuner, a space, a resource...
    ├── ReportError (also ValueError)     a report that cannot be recorded
    ├── NotInTrialError (also RuntimeError)  a trial-only function called outside a trial
    ├── ExperimentError                   an experiment folder that cannot be read or resumed,
    │                                     or one that another live driver is running
    └── TrialsFailedError                 every trial of an experiment failed (``.results``)

    TrialStopped (BaseException)          raised inside a trial by ``report`` to end it
"""

from __future__ import annotations


class RayTunerError(Exception):
    """Base class of raytuner's errors."""


class ConfigError(RayTunerError, ValueError):
    """An argument is invalid; the message names it, its value and the fix."""


class ReportError(RayTunerError, ValueError):
    """A report cannot be recorded (not a mapping of names to numbers, metric missing)."""


class NotInTrialError(RayTunerError, RuntimeError):
    """A function that only works inside a running trial was called outside of one."""


class ExperimentError(RayTunerError):
    """An experiment folder is missing, incomplete or does not match what was asked."""


class TrialsFailedError(RayTunerError):
    """Every trial of an experiment failed; raised by ``fit()`` and ``resume()`` after
    everything was saved. ``.results`` holds the :class:`raytuner.Results`, whose
    ``.errors`` has each trial's traceback."""

    def __init__(self, message: str, results: object = None) -> None:
        super().__init__(message)
        self.results = results


class TrialStopped(BaseException):
    """Raised by :func:`raytuner.report` when the scheduler ends or pauses the trial.

    It derives from BaseException, like KeyboardInterrupt, so that a trainable's
    ``except Exception`` does not swallow it. The worker catches it and ends the trial
    cleanly; user code should let it propagate.
    """

    def __init__(self, decision: str) -> None:
        super().__init__(f"trial {decision} by the scheduler")
        self.decision = decision
