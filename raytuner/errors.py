"""Exceptions raised by raytuner, raytuner.search and raytuner.schedulers.

::

    RayTunerError
    ├── ConfigError (also ValueError)     bad argument to the Tuner, a searcher, a scheduler,
    │                                     a space, a domain, a resource...
    ├── ReportError (also ValueError)     a report that cannot be recorded      [fatal]
    │   └── ResourceError                 its resource is not a number, or did not increase
    ├── ProtocolError (also RuntimeError) a searcher or scheduler driven against its contract
    │                                     (suggest before setup, a trial ended twice)
    ├── NotInTrialError (also RuntimeError)  a trial-only function called outside a trial
    ├── ExperimentError                   an experiment folder that cannot be read or resumed,
    │   │                                 or one that another live driver is running
    │   ├── StorageError                  the experiment's storage refused a write (disk full,
    │   │                                 permission denied, read-only file system)
    │   └── CheckpointGoneError           a relaunched trial's checkpoint vanished before its
    │                                     worker read it (the trial is relaunched, not failed)
    └── TrialsFailedError                 every trial of an experiment failed (``.results``)

    TrialStopped (BaseException)          raised inside a trial by ``report`` to end it

Arguments are checked with one message template, built by :func:`invalid`:
"``<Owner>: `<argument>` is <value!r>, but must be <rule>. <The fix>.``"; a keyword that a
constructor does not take is refused by :func:`no_unknown` (through
:func:`refuse_unknown_keywords`), with the name it likely meant, or for another framework's
name (Ray Tune's ``max_t``, a searcher's ``metric``) the advice of :data:`PEER_NAMES`.

[fatal]: an error of a class with ``fatal_to_experiment = True`` raised by one trial ends
the whole experiment instead of failing (and retrying) that trial, because every trial would
hit it: a report the Tuner cannot use is a bug in the script, not in one config. The worker
sends :func:`is_fatal` of the exception across the actor boundary, as data.

This module imports nothing but the standard library: the search and scheduler packages,
which never import Ray or pandas, raise these errors.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

_Init = TypeVar("_Init", bound=Callable[..., None])


class RayTunerError(Exception):
    """Base class of raytuner's errors."""

    #: Raised inside one trial, does this error end the experiment (True) or only the
    #: trial (False, retried up to ``max_failures``)? See :func:`is_fatal`.
    fatal_to_experiment: bool = False


class ConfigError(RayTunerError, ValueError):
    """An argument is invalid; the message names it, its value and the fix."""


class ReportError(RayTunerError, ValueError):
    """A report cannot be recorded (not a mapping of names to numbers, metric missing).

    Fatal to the experiment: the script reports the same way in every trial.
    """

    fatal_to_experiment = True


class ResourceError(ReportError):
    """A trial's resource is not a number, or did not increase from one report to the next.

    The message names the trial, the resource attribute, the values and the fix.
    """

    @classmethod
    def not_increasing(cls, owner: str, trial_id: str, resource_attr: str | None, previous: Any,
                       resource: Any) -> ResourceError:
        """The error for a resource at or below the trial's previous one, from ``owner``."""
        if resource_attr is None:
            # The count is the Tuner's own, so the fix is for whoever fed it: not the trainable.
            fix = ("With resource_attr=None the resource is the trial's report count (1, 2, 3, ...), which "
                   "the Tuner counts itself; a caller driving the scheduler directly must pass each report "
                   "once, in order.")
        else:
            fix = (f"Report a growing counter (e.g. the epoch) as `{resource_attr}`, or pass resource_attr=None "
                   "to count reports.")
        msg = (
            f"{owner}: trial {trial_id!r} reported resource {resource!r} after {previous!r} "
            f"(resource_attr={resource_attr!r}); the resource must increase with every report. {fix}"
        )
        return cls(msg)


class ProtocolError(RayTunerError, RuntimeError):
    """A searcher or scheduler was called against its contract (a bug in the caller)."""


class NotInTrialError(RayTunerError, RuntimeError):
    """A function that only works inside a running trial was called outside of one."""


class ExperimentError(RayTunerError):
    """An experiment folder is missing, incomplete or does not match what was asked."""


class StorageError(ExperimentError):
    """Writing an experiment's files failed: the disk is full, permission was denied, the
    file system is read-only. The message names the path, the cause and how to continue.

    The run stops as interrupted: what was written before stays, and once the cause is
    fixed ``raytuner resume`` continues it. ``.path`` is the file, ``.errno`` the cause's.
    """

    def __init__(self, message: str, path: str = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class CheckpointGoneError(ExperimentError):
    """The checkpoint a trial was relaunched from was gone when its worker came to read it
    (deleted by hand after the driver's check). Not a failure of the trial: the driver
    relaunches it from its newest checkpoint still in storage, else from scratch."""


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


def invalid(owner: str, argument: str, value: Any, rule: str, fix: str) -> ConfigError:
    """The error for a bad argument, in the one message template of all three packages.

    >>> str(invalid("ASHAScheduler", "reduction_factor", 1, "a finite number >= 2 (eta)",
    ...             "Pass reduction_factor=3."))
    'ASHAScheduler: `reduction_factor` is 1, but must be a finite number >= 2 (eta). Pass reduction_factor=3.'

    Returned, not raised, so that the caller's ``raise`` shows where the check failed.
    """
    return ConfigError(f"{owner}: `{argument}` is {value!r}, but must be {rule}. {fix}")


def _renamed(ours: str) -> Callable[[str, str, Any, Sequence[str]], str | None]:
    """The advice for a peer's name of one of our options (Ray Tune's ``max_t``: ``max_resource``)."""

    def advise(owner: str, name: str, value: Any, options: Sequence[str]) -> str | None:
        if ours not in options:
            return f"`{name}` is Ray Tune's name for `{ours}`, which {owner} does not take. Options: {', '.join(options)}."
        return f"`{name}` is Ray Tune's name; here it is `{ours}`: pass {ours}={value!r:.60}."

    return advise


def _first_resource(owner: str, name: str, value: Any, options: Sequence[str]) -> str | None:
    """``grace_period`` or ``min_resource`` to a scheduler without a smallest resource (Hyperband)."""
    if "min_resource" in options or owner != "HyperbandScheduler":
        return None
    return (f"HyperbandScheduler takes no smallest resource: its brackets start at max_resource * eta**-s, the "
            f"smallest at 1, so R counts units of the smallest resource worth judging a trial at. For a first rung "
            f"at {value!r:.20}, report the resource in units of {value!r:.20} (under resource_attr) and divide "
            f"max_resource by it, or use ASHAScheduler(max_resource=..., min_resource={value!r:.20}, brackets=...), "
            "asynchronous Hyperband.")


def _tuners_own(owner: str, name: str, value: Any, options: Sequence[str]) -> str:
    """``metric`` or ``mode`` to a searcher or scheduler (Ray Tune's searchers and schedulers take them)."""
    example = f"metric={value!r:.60}, mode=..." if name == "metric" else f"metric=..., mode={value!r:.10}"
    return (f"{owner} takes no `{name}`: the Tuner gives its metric and mode to the searcher and the scheduler "
            f"(values signed to minimise). Pass them to the Tuner: rt.Tuner(trainable, {example}, ...).")


def _bounds(owner: str, name: str, value: Any, options: Sequence[str]) -> str | None:
    """Ray Tune's PB2 ``hyperparam_bounds``: our ``mutations``, with a domain per key."""
    if "mutations" not in options:
        return None
    shown = []
    for key, bounds in value.items() if isinstance(value, Mapping) else ():
        pair = list(bounds) if isinstance(bounds, (list, tuple)) else []
        if len(pair) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in pair):
            shown = []
            break
        low, high = sorted(pair)
        kind = "loguniform" if 0 < low and high >= 100 * low else "uniform"
        shown.append(f"{key!r}: rt.{kind}({low!r}, {high!r})")
    domains = "{" + ", ".join(shown) + "}" if shown else "{'lr': rt.loguniform(1e-4, 1e-1)}"
    return (f"`{name}` is Ray Tune's PB2 argument; here the bounds are written as a domain in `mutations` (log "
            f"domains in log space): pass mutations={domains:.200}.")


def _given_configs(owner: str, name: str, value: Any, options: Sequence[str]) -> str:
    """Ray Tune's ``points_to_evaluate`` to a searcher other than HyperOptSearcher (which takes it)."""
    warm = ("To continue from an earlier experiment's results, pass warm_start=rt.load(path).observations(). "
            if "warm_start" in options else "")
    return (f"{owner} takes no `{name}`. {warm}To try given configs first, use "
            "HyperOptSearcher(points_to_evaluate=[...]), the searcher that takes them.")


def _never_pauses(owner: str, name: str, value: Any, options: Sequence[str]) -> str | None:
    if owner != "MedianStoppingScheduler":
        return None
    if name == "min_time_slice":
        return (f"{owner} never pauses a trial, so there is no time slice to give it (Ray Tune's min_time_slice "
                "only delays its pauses): leave `min_time_slice` out; `grace_period` is how long a trial runs "
                "before it can be stopped.")
    return (f"{owner} always stops a trial below the median and never pauses one, as Ray Tune's hard_stop=True: "
            "leave `hard_stop` out.")


#: Other frameworks' names (Ray Tune's) that users bring along -> the advice for them, or
#: None where it does not apply to that constructor (the close-match guess then answers).
#: Looked up before the close match, which would guess wrong (Hyperband's `min_resource`:
#: "Did you mean `max_resource`?").
PEER_NAMES: dict[str, Callable[[str, str, Any, Sequence[str]], str | None]] = {
    "grace_period": lambda owner, name, value, options: (
        _first_resource(owner, name, value, options) or _renamed("min_resource")(owner, name, value, options)),
    "min_resource": _first_resource,
    "max_t": _renamed("max_resource"),
    "time_attr": _renamed("resource_attr"),
    "hyperparam_bounds": _bounds,
    "metric": _tuners_own,
    "mode": _tuners_own,
    "points_to_evaluate": _given_configs,
    "hard_stop": _never_pauses,
    "min_time_slice": _never_pauses,
}


def no_unknown(owner: str, unknown: Mapping[str, Any], options: Sequence[str]) -> None:
    """Refuse the first of ``unknown`` (the keyword arguments a constructor does not take):
    with the advice of :data:`PEER_NAMES` for another framework's name (Ray Tune's
    ``grace_period``, ``max_t``, ``time_attr``, ``hyperparam_bounds``, a searcher's
    ``metric``, ``mode`` or ``points_to_evaluate``), else with the closest of ``options`` as
    the likely fix, or all of them if none is close.

    >>> no_unknown("ASHAScheduler", {"max_resouce": 27}, ["max_resource", "reduction_factor"])
    Traceback (most recent call last):
    ...
    raytuner.errors.ConfigError: ASHAScheduler: unknown option `max_resouce=27`. Did you mean `max_resource`?
    >>> no_unknown("ASHAScheduler", {"grace_period": 2}, ["max_resource", "min_resource"])
    Traceback (most recent call last):
    ...
    raytuner.errors.ConfigError: ASHAScheduler: unknown option `grace_period=2`. `grace_period` is Ray Tune's name; here it is `min_resource`: pass min_resource=2.
    """
    if not unknown:
        return
    name = next(iter(unknown))
    advise = PEER_NAMES.get(name)
    hint = advise(owner, name, unknown[name], options) if advise is not None else None
    if hint is None:
        close = difflib.get_close_matches(name, options, n=1)
        hint = f"Did you mean `{close[0]}`?" if close else f"Options: {', '.join(options)}."
    raise ConfigError(f"{owner}: unknown option `{name}={unknown[name]!r:.100}`. {hint}")


def refuse_unknown_keywords(init: _Init) -> _Init:
    """Decorate a constructor so that a keyword it does not take raises :func:`no_unknown`'s
    ConfigError, naming the class, the keyword and the parameter it likely meant.

    Python's own ``TypeError: __init__() got an unexpected keyword argument`` names none of
    the valid ones. A ``**unknown`` catch-all checked in the body would do for optional
    parameters, but a misspelled *required* one would still fail in Python's binding, as
    missing; this check runs before the binding. The signature stays as written
    (``inspect.signature`` follows ``__wrapped__``; a type checker sees ``init``'s own type),
    so IDEs and type checkers still know the real parameters and flag a misspelling. A
    constructor with its own ``**`` catch-all is returned as is: it refuses what it does not
    take itself.

    >>> class ASHAScheduler:
    ...     @refuse_unknown_keywords
    ...     def __init__(self, max_resource: float, reduction_factor: float = 3) -> None:
    ...         self.max_resource = max_resource
    >>> ASHAScheduler(max_resouce=27)
    Traceback (most recent call last):
    ...
    raytuner.errors.ConfigError: ASHAScheduler: unknown option `max_resouce=27`. Did you mean `max_resource`?
    """
    parameters = list(inspect.signature(init).parameters.values())[1:]  # not self
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return init
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    options = [parameter.name for parameter in parameters if parameter.kind in by_name]

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs.keys() <= set(options):
            no_unknown(type(self).__name__, {k: v for k, v in kwargs.items() if k not in options}, options)
        init(self, *args, **kwargs)

    return cast(_Init, checked)


def rebuilt(error_type: str | None, message: str | None) -> RayTunerError:
    """A trial's fatal error, rebuilt on the driver under its own class where it is one of
    raytuner's (the class travels by name, as for :func:`is_fatal`), else a ReportError."""
    cls = globals().get(error_type or "")
    if not (isinstance(cls, type) and issubclass(cls, RayTunerError)):
        cls = ReportError
    return cls(message or error_type or "a fatal error in a trial")


def is_fatal(error: BaseException | type[BaseException] | str) -> bool:
    """Whether ``error``, raised by one trial, must end the whole experiment.

    Takes the exception, its class, or its class name (what crosses a process boundary
    when the class itself cannot be sent); anything that is not a raytuner error (a
    failure in the user's training code) is fatal to its trial only.
    """
    if isinstance(error, str):
        found = globals().get(error)
        if not (isinstance(found, type) and issubclass(found, RayTunerError)):
            return False
        error = found
    cls = error if isinstance(error, type) else type(error)
    return issubclass(cls, RayTunerError) and cls.fatal_to_experiment
