"""Which callbacks a run logged to, as experiment.json records them (``callbacks``), and what
a resume does with the record: the callbacks are not stored with the experiment, and
``raytuner resume`` cannot pass any, so a resume without them would leave the trackers' runs
of the crashed trials open (MLflow: RUNNING, without their last points) without a word.

Each entry is ``{"class": "<module>.<name>"}``; an :class:`MLflowCallback` adds the
arguments that rebuild it (:meth:`MLflowCallback.record`: JSON, a password in the URI
masked), and a resume given none rebuilds it from them and says so. Any other tracker of
raytuner's the resume lacks is named in a warning, with how to pass it; a callback of the
user's own is not (what it keeps outside the experiment is not ours to know).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

from raytuner._callbacks import Callback


def class_name(callback: Callback | type) -> str:
    """The module and name of ``callback``'s class (or of the class itself)."""
    cls = callback if isinstance(callback, type) else type(callback)
    return f"{cls.__module__}.{cls.__qualname__}"


def recorded(callbacks: Sequence[Callback]) -> list[dict[str, Any]]:
    """What experiment.json records of the user's ``callbacks`` when a run starts."""
    from raytuner.tracking.mlflow import MLflowCallback

    return [callback.record() if type(callback) is MLflowCallback else {"class": class_name(callback)}
            for callback in callbacks]


def recalled(records: Sequence[Mapping[str, Any]], callbacks: Sequence[Callback], tensorboard: bool,
             speak: bool) -> list[Callback]:
    """``callbacks`` for a resume, with each MLflowCallback the earlier run logged to and
    the resume was not given rebuilt from ``records`` (printed when ``speak``); any other
    tracker of raytuner's it lacks is named in a warning. A default TensorBoard logger is
    added anyway."""
    from raytuner.errors import ConfigError
    from raytuner.tracking.mlflow import MLflowCallback

    given = {class_name(callback) for callback in callbacks}
    if tensorboard:
        given.add("raytuner.tracking.tensorboard.TensorBoardCallback")  # run.default_callbacks adds it
    callbacks = list(callbacks)
    for record in records if isinstance(records, (list, tuple)) else ():
        if not isinstance(record, Mapping):
            continue  # a hand-edited experiment.json: nothing to rebuild or name
        name = str(record.get("class", ""))
        if name in given or (name == class_name(MLflowCallback)
                             and any(isinstance(callback, MLflowCallback) for callback in callbacks)):
            continue
        if MLflowCallback.rebuilds(record):
            try:
                rebuilt = MLflowCallback.from_record(record)
            except (ConfigError, KeyError, TypeError, ValueError) as exc:  # mlflow gone, a folder it now refuses, a hand edit
                warnings.warn(f"The earlier run logged to MLflow, but its MLflowCallback cannot be rebuilt: {exc}",
                              stacklevel=3)
                continue
            callbacks.append(rebuilt)
            if speak:
                print(f"[raytuner] logging to MLflow as the earlier run did: {rebuilt!r}, rebuilt from "
                      "experiment.json (pass callbacks= to Tuner.resume to log elsewhere)", flush=True)
            continue
        if not name.startswith("raytuner.tracking."):
            continue  # a callback of the user's own: what it keeps outside is not ours to know
        short = name.rsplit(".", 1)[-1]
        how = ("MLflowCallback(tracking_uri=...)" if name == class_name(MLflowCallback) else f"{short}(...)")
        warnings.warn(f"The earlier run of this experiment logged to {name}, which this resume was not given: "
                      f"its trials' runs there stay as the earlier driver left them (a crash: open, without "
                      f"their last points). Pass it again: Tuner.resume(..., callbacks=[{how}]).", stacklevel=3)
    return callbacks
