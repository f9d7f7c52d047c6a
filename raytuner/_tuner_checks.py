"""The Tuner's argument checks: each refuses a bad value before anything runs, with a
ConfigError naming the argument, the value and the fix (:func:`raytuner.errors.invalid`)."""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from typing import Any, Callable

from raytuner._callbacks import Callback
from raytuner._display import resume_call
from raytuner._driver.stop import check_call
from raytuner._formats import reserved_column
from raytuner.errors import ConfigError, invalid


def positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise invalid("Tuner", name, value, "an int >= 1", f"Pass e.g. {name}=4.")


def check_total_trials(searcher: Any, num_trials: int) -> None:
    """A grid's trials in all (its points times ``num_trials`` repetitions) within the bound
    a control command and a resume hold ``num_trials`` to: past it, the experiment could not
    be extended, steered or resumed with its own count."""
    from raytuner._control_values import MAX_NUM_TRIALS

    total = getattr(searcher, "num_trials", None)
    if isinstance(total, int) and total > MAX_NUM_TRIALS:
        points = total // num_trials
        raise ConfigError(
            f"Tuner: `space` is a grid of {points:,} points, which with num_trials={num_trials} makes {total:,} "
            f"trials, more than one experiment runs ({MAX_NUM_TRIALS:,}). Narrow the grid, or draw from the same "
            "values with rt.choice([...]) instead of rt.grid([...]) and a num_trials of your choosing (random or "
            "TPE search).")


def check_checkpoint_interval(value: Any, keep: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise invalid("Tuner", "checkpoint_interval_s", value, "a number of seconds >= 0, or None",
                      "Pass e.g. 60 to store a trial's checkpoints at most once a minute, 0 never to wait, "
                      "or None to adapt to what storing costs.")
    if value > 0 and keep is None:
        raise invalid("Tuner", "checkpoint_interval_s", value, "None or 0 with checkpoints_to_keep=None",
                      "checkpoints_to_keep=None keeps every checkpoint, so none can be skipped to pace the stores: "
                      "pass checkpoints_to_keep (e.g. 1) as well, or leave checkpoint_interval_s out.")


def check_resource_attr(name: Any, metric: Any, given_by: str = "Tuner") -> None:
    """``resource_attr`` (the Tuner's, or the scheduler's: ``given_by`` names which) must be
    a name a report may hold, and not the metric (one of them, with several): the resource
    must grow with every report, which a loss or an accuracy does not, so such a run failed
    after its first trial's second report, with advice to report the epoch as the metric."""
    metrics = [metric] if isinstance(metric, str) else list(metric) if isinstance(metric, (list, tuple)) else []
    if isinstance(name, str) and name in metrics:
        where = "resource_attr" if given_by == "Tuner" else f"{given_by}'s resource_attr"
        rule = ("a report key other than the Tuner's `metric`" if isinstance(metric, str)
                else f"a report key that is none of the Tuner's metrics {metrics!r}")
        raise invalid(given_by, "resource_attr", name, rule,
                      f"{where}={name!r} and metric={metric!r} name the same key, but the resource counts a trial's "
                      f"progress (it must grow with every report) and a metric is what is optimised. Pass "
                      f"resource_attr=None to count reports, or report the progress under its own key (e.g. "
                      f"rt.report({{{name!r}: ..., 'epoch': epoch}})) and pass resource_attr='epoch'.")
    reserved = reserved_column(name, metric) if isinstance(name, str) else None
    if reserved is not None:
        raise invalid("Tuner", "resource_attr", name, "the name of a metric a report may hold",
                      f"{name!r} is {reserved}, so no report may use it: pass resource_attr=None to count "
                      f"reports (raytuner's 'iteration'), or report the resource as e.g. 'epoch' and pass that.")


def check_trainable_call(owner: str, trainable: Callable[..., Any]) -> None:
    """A trainable that cannot take the config (``def train():``, ``def train(a, b):``) is
    refused here: each trial would fail with the same TypeError."""
    check_call(owner, "trainable", trainable, ({},), "trainable(config)",
               "raytuner calls it with one argument, the trial's config (a dict): define it as "
               "def train(config): ..., and give it other values with functools.partial(train, data=...) or "
               "defaults (def train(config, data=None)).")


def check_picklable(trainable: Callable[..., Any]) -> None:
    from ray import cloudpickle

    try:
        cloudpickle.dumps(trainable)
    except Exception as exc:
        from ray.util import inspect_serializability

        with open(os.devnull, "w") as quiet:
            _, failures = inspect_serializability(trainable, print_file=quiet)
        culprits = sorted({f"{'.'.join(map(str, f.path)) or f.name} ({type(f.obj).__name__})" for f in failures or ()})
        found = f" It captures: {', '.join(culprits)}." if culprits else ""
        msg = (
            f"`trainable` {getattr(trainable, '__qualname__', trainable)!r} cannot be pickled to send it to "
            f"Ray workers ({type(exc).__name__}: {exc}).{found} Define it at module level and create "
            "unpicklable objects (locks, open files, clients, sessions) inside it."
        )
        raise ConfigError(msg) from exc


#: Metric names that say "more is better": a tuner left on mode "min" would minimise them.
MAXIMISED = re.compile(r"(^|[^a-z])(acc|accuracy|auc|f1|precision|recall|r2|iou|reward)([^a-z0-9]|$)")


def default_mode(metric: Any) -> str:
    """``mode`` left out: "min", with a warning for each metric whose name says it is to be
    maximised (a classic slip: ``metric="val_accuracy"`` minimised)."""
    names = [metric] if isinstance(metric, str) else list(metric) if isinstance(metric, (list, tuple)) else []
    suspects = [name for name in names if isinstance(name, str) and MAXIMISED.search(name.lower())]
    if suspects:
        fix = "mode='max'" if len(names) == 1 else "mode=[...] with 'max' for " + ", ".join(map(repr, suspects))
        warnings.warn(f"Tuner: {', '.join(map(repr, suspects))} will be minimised: `mode` defaults to 'min'. Pass "
                      f"{fix} to maximise, or mode='min' to keep it and silence this warning.", UserWarning,
                      stacklevel=3)
    return "min"


def check_verbose(owner: str, verbose: Any) -> None:
    if verbose not in (0, 1, 2):
        raise invalid(owner, "verbose", verbose, "0, 1 or 2",
                      "Pass 0 (silent), 1 (live progress) or 2 (also a line per trial).")


def check_callbacks(owner: str, callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list, or a ConfigError: not a list of :class:`Callback` objects.
    None is none (as Ray Tune and Keras take it)."""
    fix = "Pass a list of raytuner.Callback objects, e.g. callbacks=[MLflowCallback()], or leave it out."
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        raise invalid(owner, "callbacks", callbacks, "a list of Callback objects, not one",
                      f"Pass it in a list: callbacks=[{callbacks!r:.60}].")
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise invalid(owner, "callbacks", callbacks, "a list of raytuner.Callback objects", fix)
    callbacks = list(callbacks)  # a generator: read once
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise ConfigError(f"`callbacks` must hold raytuner.Callback objects; got {type(callback).__name__}.")
    return callbacks


def check_flag(owner: str, name: str, value: Any, fix: str) -> None:
    """A yes-or-no argument: True or False, not a string such as "no" (which is true)."""
    if not isinstance(value, bool):
        raise invalid(owner, name, value, "True or False", fix)


def check_storage_path(path: Any) -> None:
    """A folder's path or a URI, as text: not a number, not a string holding NUL (which no
    file system takes: it would fail when fit() creates the folder)."""
    fix = "Pass the folder experiments go in (a str or pathlib.Path, e.g. storage_path='~/raytuner_results') or a URI."
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise invalid("Tuner", "storage_path", path, "a folder's path (str or os.PathLike) or a URI, or None", fix)
    text = os.fspath(path)
    if not isinstance(text, str):  # bytes from a PathLike
        raise invalid("Tuner", "storage_path", path, "a path as text (str), not bytes", fix)
    if "\x00" in text:
        raise invalid("Tuner", "storage_path", path, "a path with no NUL character", fix)


#: Set on a searcher or scheduler when a Tuner's fit() starts with it: the experiment's location.
_USED_BY = "_raytuner_experiment"


def check_unused(argument: str, component: Any, trainable: str | None = None) -> None:
    """Refuse a searcher or scheduler that already ran an experiment: it holds that
    experiment's trials (a searcher's history, a scheduler's rungs or population) under the
    ids the new one gives its own, so the new search would start from them."""
    used_by = getattr(component, _USED_BY, None)
    if used_by is None:
        return
    kind = type(component).__name__
    learn = (" To learn from its results in a new one, pass them to a new searcher: "
             f"{kind}(warm_start=rt.load({used_by!r}).observations()) (searchers that learn take it)."
             if argument == "searcher" else "")
    raise ConfigError(
        f"`{argument}` ({kind}) already ran the experiment at {used_by}, and holds its trials: a {argument} serves "
        f"one experiment. Pass a new one, e.g. {argument}={kind}(...). To carry on with that experiment, "
        f"{resume_call(used_by, trainable)}.{learn}")


def mark_used(component: Any, location: str) -> None:
    """Record on a searcher or scheduler that it runs the experiment at ``location``."""
    try:
        setattr(component, _USED_BY, location)
    except AttributeError:  # a class of one's own that takes no attributes: not checked
        pass


def probe_copy(component: Any) -> Any:
    """A copy of a searcher or scheduler for the Tuner to set up and check before anything
    runs, so that a Tuner refused, or built and never run, leaves the object as it was; the
    object itself if it cannot be copied (then it is set up here, as before)."""
    import copy

    try:
        return copy.deepcopy(component)
    except Exception:  # noqa: BLE001 - one of one's own holding a lock, a connection...
        return component
