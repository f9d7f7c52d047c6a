"""What a trial's TensorBoard run shows, read back from its event files.

A resume settles the runs an earlier driver left against the experiment's records
(:meth:`raytuner.tracking.tensorboard.TensorBoardCallback._settle`): a driver killed between
a report's storage write and its hand-off to the callbacks left the run without that point,
or without the session end of a trial that ended. This module reads a run as TensorBoard
does: its event files in name order, each TFRecord in turn (a record cut short by a crash
ends its file), and a ``SessionLog.START`` at step ``s`` drops the points before it at steps
``>= s`` (TensorBoard's purge of orphaned data, which the callback writes at each restart).
TensorBoard's Python loader skips the purge at a run's first START, so the callback writes
one at the head of each trial's first file, before any point (where no purge drops anything).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"


@dataclass
class ShownRun:
    """A run as TensorBoard shows it.

    Attributes:
        points: step -> {tag: value} of the scalars still shown (each as stored: float32).
        started, ended: Whether the run holds an HParams session start, and end.
        end_status: The status of its first session end (``api_pb2.Status``), the one
            TensorBoard shows: it keeps the first metadata of a tag a run holds.
        session_logged: Whether it holds a ``SessionLog.START`` (a later START purges in
            every loader only if it does).
    """

    points: dict[int, dict[str, float]] = field(default_factory=dict)
    started: bool = False
    ended: bool = False
    end_status: int | None = None
    session_logged: bool = False


def records(path: Path) -> Iterator[bytes]:
    """The data of each whole TFRecord of an event file (CRCs not checked; a torn last record
    ends the file, as it ends TensorBoard's reading of it)."""
    data = path.read_bytes()
    at = 0
    while at + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[at:at + 8])
        end = at + 12 + length + 4
        if end > len(data):
            return
        yield data[at + 12:at + 12 + length]
        at = end


def read_run(folder: Path) -> ShownRun:
    """What TensorBoard shows of the run in ``folder`` (see the module docstring)."""
    from tensorboard.compat.proto import event_pb2

    run = ShownRun()
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for data in records(path):
            event: Any = event_pb2.Event.FromString(data)
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                run.points = {step: tags for step, tags in run.points.items() if step < event.step}
                run.session_logged = True
            elif event.HasField("summary"):
                for value in event.summary.value:
                    if value.tag == SESSION_START_TAG:
                        run.started = True
                    elif value.tag == SESSION_END_TAG:
                        if not run.ended:
                            run.end_status = _end_status(value)
                        run.ended = True
                    elif value.WhichOneof("value") == "simple_value":
                        run.points.setdefault(event.step, {})[value.tag] = value.simple_value
    return run


def _end_status(value: Any) -> int:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    return int(data.session_end_info.status)


def drop_session_ends(folder: Path, record: Callable[[bytes], bytes]) -> None:
    """Take the HParams session ends out of the run in ``folder``: a trial re-run after it
    ended (a FAILED trial retried) gets a new end, and TensorBoard would show the first it
    reads. Each event file that holds one is written again without it, whole (a temporary
    file, renamed over it: a crash leaves the old file or the new); nothing else changes.
    ``record``: frames a record's data as the callback writes it."""
    from tensorboard.compat.proto import event_pb2

    for path in sorted(folder.glob("events.out.tfevents.*")):
        kept, dropped = [], False
        for data in records(path):
            event: Any = event_pb2.Event.FromString(data)
            if event.HasField("summary") and any(v.tag == SESSION_END_TAG for v in event.summary.value):
                dropped = True
                continue
            kept.append(data)
        if not dropped:
            continue
        tmp = path.with_name(f".{path.name}.tmp")  # no "events.out" at its head: no loader reads it
        tmp.write_bytes(b"".join(record(data) for data in kept))
        os.replace(tmp, path)


def as_stored(value: float) -> float:
    """A scalar as an event file stores it (a float32; beyond its range, infinite)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)

