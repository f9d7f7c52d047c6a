"""TensorBoard logging: per-trial scalars and an HParams summary of the experiment.

Layout, under ``<experiment>/tensorboard/`` by default::

    events.out.tfevents.0000000000.raytuner.experiment   the HParams experiment
    <trial_id>/events...        the trial's scalars, its HParams session start and end

so ``tensorboard --logdir <experiment>/tensorboard`` shows each trial as a run, and the
HParams tab shows the sweep as a table and as parallel coordinates.

Events are the ``tensorboard`` package's protos, framed as TFRecords here: with
``google-crc32c`` (the ``tensorboard`` extra) a record's checksums cost microseconds, where
tensorboard's own pure-Python CRC costs 10 us per checksum, two per report, on the driver.
Its ``summary`` modules are not used because they import TensorFlow (seconds per process)
where it is installed, nor its ``plugins.hparams.metadata``, which imports its TensorFlow
stub and through it boto3 (0.3-0.7 s on the first trial of every sweep); the HParams
metadata is built here from the protos, as that module builds it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import socket
import struct
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Mapping

from raytuner._callbacks import Callback
from raytuner._formats import flatten, is_finite
from raytuner._objectives import Objectives
from raytuner.errors import ConfigError, ExperimentError

if TYPE_CHECKING:
    from raytuner._results import Results
    from raytuner._trial import TrialResult

logger = logging.getLogger("raytuner")

_AUTO_KEYS = frozenset({"iteration", "timestamp", "time_total_s", "attempt"})
_counter = 0
#: The HParams experiment's one file, at the logdir's root. TensorBoard's loaders keep the
#: first ``_hparams_/experiment`` they read, in name order: a file per run's end (as raytuner
#: wrote before) showed the first run's forever. Replaced whole (a temporary file, renamed);
#: "0000000000" sorts it before any file raytuner wrote there earlier.
EXPERIMENT_FILE = "events.out.tfevents.0000000000.raytuner.experiment"
#: Its temporary name: without "tfevents", which TensorBoard's loaders would read.
_EXPERIMENT_TMP = ".raytuner-experiment.tmp"


def _hparam_value(value: Any) -> bool | float | str:
    """HParams take bools, numbers and strings; anything else is shown as its repr."""
    if isinstance(value, bool):
        return value
    if is_finite(value):
        return float(value)
    return value if isinstance(value, str) else repr(value)


@functools.cache
def _host() -> str:
    return socket.gethostname()


def available() -> bool:
    """Whether tensorboard is installed (checked without importing it)."""
    return importlib.util.find_spec("tensorboard") is not None


SKIPPED = ("TensorBoard logging is off: the tensorboard package is not installed. Install it with "
           "`pip install 'raytuner[tensorboard]'` (the keras extra includes it), or pass tensorboard=False "
           "to silence this.")


@functools.cache
def _masked_crc32c() -> Callable[[bytes], int]:
    """TFRecord's masked CRC-32C: google-crc32c's C code where installed, else tensorboard's."""
    try:
        from google_crc32c import value as crc32c
    except ImportError:
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

        return masked_crc32c  # type: ignore[no-any-return]

    def masked(data: bytes) -> int:
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked


def _record(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, the data's masked CRC (little-endian)."""
    crc = _masked_crc32c()
    header = struct.pack("<Q", len(data))
    return b"".join((header, struct.pack("<I", crc(header)), data, struct.pack("<I", crc(data))))


class _EventFile:
    """One append-only ``events.out.tfevents`` file, written synchronously.

    ``session_start``: begin with a ``SessionLog.START`` (step 0, before any point), for a
    trial's first file. TensorBoard's Python loader (``--load_fast=false``, and where its Rust
    data server is missing) takes a run's first START as the run's start and drops a lost
    attempt's points only at a later one; without this one, the START of a trial's first
    restart would be taken as its start, and drop nothing.
    """

    def __init__(self, logdir: Path, *, session_start: bool = False):
        from tensorboard.compat.proto import event_pb2

        global _counter
        _counter += 1
        logdir.mkdir(parents=True, exist_ok=True)
        # The name TensorBoard expects; time, host, pid and a counter keep files apart, and
        # files of one run are read in name order: the counter is zero-padded, so that a file
        # reopened in the same second (a trial paused and resumed, a resume settling it) sorts
        # after the one before (a 10th after a 9th), and its restarts' purges apply in order.
        name = f"events.out.tfevents.{time.time():010.0f}.{_host()}.{os.getpid()}.{_counter:08d}.raytuner"
        self._file: IO[bytes] = open(logdir / name, "ab")
        self._event_pb2 = event_pb2
        self.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if session_start:
            self.write(_session_log_start(0))
        self._file.flush()

    def write(self, event: Any) -> None:
        self._file.write(_record(event.SerializeToString()))

    def summary(self, summary: Any, step: int = 0, wall_time: float | None = None) -> None:
        self.write(self._event_pb2.Event(wall_time=wall_time or time.time(), step=step, summary=summary))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _session_log_start(step: int) -> Any:
    """A ``SessionLog.START`` at ``step``: TensorBoard drops the run's points at steps
    ``>= step`` read before it (its purge of a restarted job's orphaned points)."""
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=time.time(), step=step,
                           session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))


def _scalars(row: Mapping[str, Any]) -> Any:
    from tensorboard.compat.proto import summary_pb2

    summary = summary_pb2.Summary()
    for key, value in row.items():
        if key in _AUTO_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        summary.value.add(tag=key, simple_value=float(value))
    return summary


def _hparams_summary(tag: str, plugin_data: Any) -> Any:
    """A summary value the HParams plugin reads: its plugin data (at version 0) in the
    metadata, and an empty float tensor, as ``tensorboard.plugins.hparams.metadata`` writes."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

    content = type(plugin_data)()
    content.CopyFrom(plugin_data)
    content.version = _HPARAMS_DATA_VERSION
    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name="hparams", content=content.SerializeToString()))
    empty = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=0)]))
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=meta, tensor=empty)
    return summary


#: ``tensorboard.plugins.hparams.metadata.PLUGIN_DATA_VERSION``.
_HPARAMS_DATA_VERSION = 0


def _end_status(trial: TrialResult) -> int:
    """The HParams status of a finished trial's session end."""
    from tensorboard.plugins.hparams import api_pb2

    return int(api_pb2.STATUS_FAILURE if trial.status.value == "FAILED" else api_pb2.STATUS_SUCCESS)


class TensorBoardCallback(Callback):
    """Write every report to TensorBoard and the sweep to its HParams tab.

    The Tuner adds one by default when tensorboard is installed (``tensorboard=False``
    turns it off); pass your own to log elsewhere.

    Args:
        logdir: Root log folder; default ``<experiment>/tensorboard``.

    Example:
        >>> from raytuner.tracking import TensorBoardCallback
        >>> tuner = rt.Tuner(train, ..., callbacks=[TensorBoardCallback("/tmp/tb")])  # doctest: +SKIP
        Then: ``tensorboard --logdir /tmp/tb``.
    """

    def __init__(self, logdir: str | os.PathLike[str] | None = None) -> None:
        if not available():
            raise ConfigError("TensorBoardCallback needs tensorboard: pip install 'raytuner[tensorboard]'.")
        self._logdir_arg = logdir
        self.logdir: Path | None = None
        self._files: dict[str, _EventFile] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, None] = {}  # names seen, in order
        self._objectives: tuple[str, ...] = ()
        self._attempts: dict[str, Any] = {}  # the attempt of each trial's last logged report
        self._session_logged: set[str] = set()  # trials whose run is known to hold a SessionLog START
        self._ended: set[str] = set()  # trials whose run is known to hold a session end

    def on_experiment_start(self, path: Path, meta: Mapping[str, Any]) -> None:
        self.logdir = Path(self._logdir_arg).expanduser() if self._logdir_arg is not None else Path(path) / "tensorboard"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._drop_experiment()
        # Every objective is a metric of the HParams experiment, first, in the Tuner's order.
        self._objectives = Objectives.of(meta.get("metric"), meta.get("mode", "min")).metrics
        for metric in self._objectives:
            self._metrics.setdefault(metric)
        if meta.get("resumed"):
            try:
                self._settle(Path(path))
            except Exception as exc:  # noqa: BLE001 - settling is best effort; live logging goes on regardless
                logger.warning("TensorBoard: the runs the last driver left were not checked against the records "
                               "(%s: %s).", type(exc).__name__, exc)

    def _settle(self, path: Path) -> None:
        """A resumed experiment: make each trial's run show what its records keep. A driver
        killed between a report's storage write and its hand-off here left the run without
        that point, or without the session end of a trial that ended; a run that shows
        points the records do not keep (a lost attempt's) gets a session start at the
        first of them, which drops them, and the kept points from there."""
        from raytuner._results import read_trial
        from raytuner._storage.experiment import ExperimentStorage

        from ._settling import parted as first_parted
        from ._tensorboard_runs import as_stored, read_run

        storage = ExperimentStorage(path)
        for trial_id in storage.trial_ids():
            folder = self._root() / trial_id
            if not folder.is_dir():
                continue  # never started here (another logdir before?): nothing to settle
            try:
                trial = read_trial(storage, trial_id, history=False)
                rows = storage.read_results(trial_id)
            except (ExperimentError, OSError):
                continue  # damaged: named in every view of the records; its run stays as it is
            shown = read_run(folder)
            if shown.ended:
                self._ended.add(trial_id)
            kept = {int(row.get("iteration", 0)): row for row in rows}
            stored = {step: {v.tag: as_stored(v.simple_value) for v in _scalars(row).value}
                      for step, row in kept.items()}
            logged = {step: {tag: [value] for tag, value in points.items()} for step, points in shown.points.items()}
            parted = first_parted(logged, stored)
            missing = sorted(step for step in kept
                             if step not in shown.points or (parted is not None and step >= parted))
            end = trial.status.is_finished() and shown.end_status != _end_status(trial)  # none yet, or another
            if shown.started and parted is None and not missing and not end:
                continue
            self._configs[trial_id] = flatten(trial.config)
            writer = self._files.get(trial_id) or self._reopen(trial_id)
            if not shown.started:
                self._start_session(trial_id)
            if parted is not None:
                self._restart(trial_id, writer, parted, logged=shown.session_logged)
            for step in missing:
                self.on_trial_result(trial_id, {**kept[step], "attempt": None})
            self._attempts[trial_id] = rows[-1].get("attempt") if rows else None
            if end:
                self.on_trial_end(trial)
            else:
                self._files.pop(trial_id).close()

    def on_trial_start(self, trial_id: str, config: Mapping[str, Any]) -> None:
        run = self._root() / trial_id
        # A trial resumed (after a pause, a retry, or in a resumed experiment) already has
        # its session start; a second one would make it two sessions.
        first = not run.exists()
        self._configs[trial_id] = flatten(config)
        if trial_id not in self._files:
            self._reopen(trial_id)
        if first:
            self._start_session(trial_id)

    def _start_session(self, trial_id: str) -> None:
        """The trial's HParams session start: its hyperparameters (``_configs``)."""
        from tensorboard.plugins.hparams import plugin_data_pb2

        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in self._configs[trial_id].items():
            value = _hparam_value(value)
            if isinstance(value, bool):
                start.hparams[name].bool_value = value
            elif isinstance(value, float):
                start.hparams[name].number_value = value
            else:
                start.hparams[name].string_value = value
        self._files[trial_id].summary(_hparams_summary(
            "_hparams_/session_start_info", plugin_data_pb2.HParamsPluginData(session_start_info=start)))

    def _root(self) -> Path:
        if self.logdir is None:
            raise RuntimeError("TensorBoardCallback got a trial before on_experiment_start().")
        return self.logdir

    def on_trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        summary = _scalars(result)
        for value in summary.value:
            self._metrics.setdefault(value.tag)
        writer = self._files.get(trial_id) or self._reopen(trial_id)
        step = int(result.get("iteration", 0))
        attempt = result.get("attempt")
        if attempt is not None and attempt != self._attempts.get(trial_id) and attempt > 1:
            # The first report of a restart from an earlier checkpoint: TensorBoard drops the
            # lost attempt's points from its step on, so each trial shows one trajectory, as
            # its history does.
            self._restart(trial_id, writer, step)
        self._attempts[trial_id] = attempt
        writer.summary(summary, step=step, wall_time=result.get("timestamp"))

    def _restart(self, trial_id: str, writer: _EventFile, step: int, *, logged: bool | None = None) -> None:
        """Drop the run's points at steps ``>= step``: a ``SessionLog.START`` there.

        TensorBoard's Python loader takes a run's first START as its start and purges at the
        later ones only. Runs begin with one (:class:`_EventFile`), but not a run written by
        an earlier raytuner, or cut off between its first file's creation and that START:
        such a run gets one more START, at the same step, first (the Rust loader ignores
        both: it drops a tag's points when its step goes back). ``logged``: whether the run
        holds a START, if the caller has read it; else it is read here, once per trial.
        """
        from ._tensorboard_runs import read_run

        if trial_id not in self._session_logged:
            if logged is None:
                logged = read_run(self._root() / trial_id).session_logged
            if not logged:
                writer.write(_session_log_start(step))
        writer.write(_session_log_start(step))
        self._session_logged.add(trial_id)

    def _reopen(self, trial_id: str) -> _EventFile:
        """A new event file for the trial's run; its run's first begins with a START."""
        run = self._root() / trial_id
        first = not any(run.glob("events.out.tfevents.*"))
        self._files[trial_id] = _EventFile(run, session_start=first)
        if first:
            self._session_logged.add(trial_id)
        return self._files[trial_id]

    def on_trial_end(self, trial: TrialResult) -> None:
        from tensorboard.plugins.hparams import plugin_data_pb2

        if trial.status.is_finished():
            if trial.trial_id in self._ended:  # it ran again after it ended (a FAILED trial retried)
                from ._tensorboard_runs import drop_session_ends

                drop_session_ends(self._root() / trial.trial_id, _record)  # TensorBoard shows a run's first end
            end = plugin_data_pb2.SessionEndInfo(status=_end_status(trial), end_time_secs=time.time())
            writer = self._files.get(trial.trial_id) or self._reopen(trial.trial_id)
            writer.summary(_hparams_summary(
                "_hparams_/session_end_info", plugin_data_pb2.HParamsPluginData(session_end_info=end)))
            self._ended.add(trial.trial_id)
        # Paused trials close too: Hyperband may hold dozens, each an open file otherwise.
        writer = self._files.pop(trial.trial_id, None)
        if writer is not None:
            writer.close()

    def on_experiment_end(self, results: Results) -> None:
        for writer in self._files.values():
            writer.close()
        self._files.clear()
        if self.logdir is None:
            return
        for trial in results.trials:
            self._configs.setdefault(trial.trial_id, flatten(trial.config))
            for key, value in trial.metrics.items():
                if key not in _AUTO_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._metrics.setdefault(key)
        self._write_experiment(self._experiment_summary(results))

    def _write_experiment(self, summary: Any) -> None:
        """Put the HParams experiment in place whole (a crash leaves the old file or the new),
        then remove the files an earlier raytuner wrote it to, one per run's end (a crash
        before that leaves them, but TensorBoard reads :data:`EXPERIMENT_FILE` first)."""
        from tensorboard.compat.proto import event_pb2

        now = time.time()
        head = event_pb2.Event(wall_time=now, file_version="brain.Event:2")
        body = event_pb2.Event(wall_time=now, summary=summary)
        tmp = self._root() / _EXPERIMENT_TMP
        try:
            with open(tmp, "wb") as handle:
                handle.write(_record(head.SerializeToString()) + _record(body.SerializeToString()))
                handle.flush()
                os.fsync(handle.fileno())  # once a run: a machine crash must not leave an empty file
            os.replace(tmp, self._root() / EXPERIMENT_FILE)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        for old in self._earlier_experiments():
            old.unlink(missing_ok=True)

    def _drop_experiment(self) -> None:
        """A run starts: remove the HParams experiment an earlier run's end wrote. TensorBoard
        would show only the trials inside its domains; without it, it builds the table from
        every trial's session start until this run's end writes the experiment anew (and
        after a crash before that)."""
        for old in (self._root() / EXPERIMENT_FILE, *self._earlier_experiments()):
            old.unlink(missing_ok=True)

    def _earlier_experiments(self) -> list[Path]:
        """The experiment files an earlier raytuner wrote, one per run's end, at the root
        (where it writes no other event file: each trial's are in its folder)."""
        return list(self._root().glob("events.out.tfevents.*.raytuner"))

    def _experiment_summary(self, results: Results) -> Any:
        """The HParams experiment: each hyperparameter's type and range, and the metrics.

        Written at the end, when every value and metric is known. Until then TensorBoard
        builds the table from the sessions' starts alone.
        """
        from google.protobuf import struct_pb2
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

        infos = []
        names = list(dict.fromkeys(name for config in self._configs.values() for name in config))
        for name in names:
            values = [_hparam_value(c[name]) for c in self._configs.values() if name in c]
            info = api_pb2.HParamInfo(name=name)
            if all(isinstance(v, bool) for v in values):
                info.type = api_pb2.DATA_TYPE_BOOL
                info.domain_discrete.values.extend(struct_pb2.Value(bool_value=v) for v in sorted(set(values)))
            elif all(isinstance(v, float) and not isinstance(v, bool) for v in values):
                info.type = api_pb2.DATA_TYPE_FLOAT64
                info.domain_interval.min_value = min(values)
                info.domain_interval.max_value = max(values)
            else:
                info.type = api_pb2.DATA_TYPE_STRING
                info.domain_discrete.values.extend(struct_pb2.Value(string_value=str(v)) for v in sorted(set(map(str, values))))
            infos.append(info)
        first = {m: i for i, m in enumerate(self._objectives)}
        metrics = sorted(self._metrics, key=lambda m: (first.get(m, len(first)), m))
        metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), display_name=m) for m in metrics]
        experiment = api_pb2.Experiment(
            name=results.path.name, time_created_secs=results.meta.get("start_time") or time.time(),
            hparam_infos=infos, metric_infos=metric_infos,
        )
        return _hparams_summary("_hparams_/experiment", plugin_data_pb2.HParamsPluginData(experiment=experiment))
