"""MLflow logging: one parent run per experiment, one nested run per trial.

Each trial run gets the trial's config as params (nested keys joined with "/"), every
numeric report as a metric at step ``iteration``, tags ``raytuner.trial_id`` and
``raytuner.status``, and a status: RUNNING while it trains, SCHEDULED while paused,
FINISHED when it completed or was stopped early (``raytuner.status`` tells which), FAILED.
The parent run gets the experiment's settings as params and the best trial at the end.

One trajectory per trial, as its history has it: a trial that restarts from an earlier
checkpoint (a retry, a resume after a crash) reports steps its run already holds. Its run
is then replaced by a new one (same name, params and tags, and ``raytuner.replaces`` naming
the old run) holding the old run's points before the restart, and the old run is deleted
(MLflow keeps deleted runs restorable until its garbage collection); so the lost attempt's
points never show, nor stand as the run's latest value.

**After a crash.** Reports are sent in batches, so a driver killed mid-run leaves runs open
(RUNNING) without its last seconds of points, and trials it ended without their ends. A
resume settles each run left open against the experiment's records before any trial starts
(:meth:`MLflowCallback._settle`): the points it lacks are sent, points of an attempt the
records superseded are dropped (the run replaced, as above), and a trial the records say
ended gets its status.

Works with any tracking store; without a server, pass ``tracking_uri="sqlite:///mlflow.db"``.
A folder (MLflow's file store) works only where the installed mlflow still takes one: mlflow 3
keeps it in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``, and the
callback is then refused when built. Needs ``pip install 'raytuner[mlflow]'``.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from raytuner._best import shown_value
from raytuner._callbacks import Callback
from raytuner._formats import flatten
from raytuner.tracking._settling import parted as first_parted
from raytuner.errors import ConfigError, ExperimentError, invalid

if TYPE_CHECKING:
    from raytuner._results import Results
    from raytuner._trial import TrialResult

logger = logging.getLogger("raytuner")

_AUTO_KEYS = frozenset({"iteration", "timestamp", "attempt"})
_BAD_KEY_CHARS = re.compile(r"[^\w.\- :/]")  # MLflow's allowed name characters
_MAX_PARAM = 6000  # MLflow's limit on a param value's length
_RUN_STATUS = {"COMPLETED": "FINISHED", "STOPPED": "FINISHED", "FAILED": "FAILED"}
_EXPERIMENT_STATUS = {"COMPLETED": "FINISHED", "TIMED_OUT": "FINISHED", "FAILED": "FAILED", "INTERRUPTED": "KILLED"}


def _key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", str(name))[:250] or "_"


def _check_store(tracking_uri: str | None) -> None:
    """Refuse a folder as the store where the installed mlflow refuses its file store: it
    would raise only at experiment start, and the callback would be off for the whole sweep.

    As mlflow decides (``mlflow/store/tracking/file_store.py``): a URI without a scheme or
    with ``file:`` makes a FileStore, which raises unless ``MLFLOW_ALLOW_FILE_STORE`` is set;
    an mlflow without that variable predates the maintenance mode and takes any folder.
    """
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:
        return
    import mlflow
    from mlflow.utils.uri import get_uri_scheme

    uri = str(tracking_uri) if tracking_uri is not None else mlflow.get_tracking_uri()
    if get_uri_scheme(uri) in ("", "file") and not MLFLOW_ALLOW_FILE_STORE.get():
        value = tracking_uri if tracking_uri is not None else f"None (MLflow's default here: {uri})"
        raise invalid("MLflowCallback", "tracking_uri", value,
                      "a tracking store this mlflow accepts (it refuses a folder, its file store, "
                      "unless MLFLOW_ALLOW_FILE_STORE=true)",
                      "Pass tracking_uri='sqlite:///mlflow.db' (or a server's URI), or set "
                      "MLFLOW_ALLOW_FILE_STORE=true to keep the folder.")


def _mask_password(uri: str) -> str:
    """``uri`` with the password of its ``user:password@`` part masked (a database URI)."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class MLflowCallback(Callback):
    """Log the experiment to MLflow.

    Args:
        tracking_uri: Where to log ("sqlite:///mlflow.db", "http://host:5000"; a folder
            only where mlflow takes one, see above); default MLflow's own
            (``MLFLOW_TRACKING_URI`` or its default store).
        experiment_name: The MLflow experiment; default the raytuner experiment's name.
        tags: Extra tags for the parent run and every trial run.
        flush_every_s: Reports are sent in batches at most this often per trial (and at
            each trial's end): callbacks run on the controller's loop, and a store round
            trip per report would slow every trial down.

    Example:
        >>> from raytuner.tracking import MLflowCallback
        >>> cb = MLflowCallback(tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
        >>> rt.Tuner(train, ..., callbacks=[cb]).fit()  # doctest: +SKIP
    """

    def __init__(self, tracking_uri: str | None = None, experiment_name: str | None = None,
                 tags: Mapping[str, str] | None = None, flush_every_s: float = 5.0) -> None:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError("MLflowCallback needs mlflow: pip install 'raytuner[mlflow]'.") from None
        if not (isinstance(flush_every_s, (int, float)) and flush_every_s >= 0):
            raise invalid("MLflowCallback", "flush_every_s", flush_every_s, "a number of seconds >= 0",
                          "Pass e.g. flush_every_s=5.")
        _check_store(tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.tags = {_key(k): str(v) for k, v in (tags or {}).items()}
        self.flush_every_s = float(flush_every_s)
        self.parent_run_id: str | None = None
        self.run_ids: dict[str, str] = {}  # trial id -> MLflow run id
        self._client: Any = None
        self._experiment_id: str | None = None
        self._pending: dict[str, list[Any]] = {}
        self._last_flush: dict[str, float] = {}
        self._steps: dict[str, int] = {}  # trial id -> the highest step its run holds (sent or pending)
        self._found: set[str] = set()  # trials whose runs an earlier driver made: their steps not read yet
        self._name = ""
        self._path = ""

    def __repr__(self) -> str:
        return f"MLflowCallback(tracking_uri={self.tracking_uri!r}, experiment_name={self.experiment_name!r})"

    # -- the record a resume rebuilds it from (raytuner.tracking._recorded) --------------
    def record(self) -> dict[str, Any]:
        """What experiment.json keeps of this callback: its arguments, all JSON. The
        tracking URI is the one in force (MLflow's default resolved, so a resume from
        another folder logs to the same store), with a password in it masked: then
        ``rebuild`` is False and a resume names the callback instead."""
        import mlflow

        uri = self.tracking_uri if self.tracking_uri is not None else mlflow.get_tracking_uri()
        masked = _mask_password(str(uri))
        return {"class": f"{type(self).__module__}.{type(self).__qualname__}", "tracking_uri": masked,
                "experiment_name": self.experiment_name, "tags": dict(self.tags),
                "flush_every_s": self.flush_every_s, "rebuild": masked == str(uri)}

    @staticmethod
    def rebuilds(record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (from :meth:`record`) holds all that rebuilds the callback."""
        return record.get("class") == f"{__name__}.MLflowCallback" and record.get("rebuild") is True

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MLflowCallback:
        """The callback :meth:`record` described."""
        return cls(tracking_uri=record["tracking_uri"], experiment_name=record.get("experiment_name"),
                   tags=record.get("tags") or {}, flush_every_s=record.get("flush_every_s", 5.0))

    @staticmethod
    def _metrics(result: Mapping[str, Any]) -> list[Any]:
        """The MLflow metrics of one report (its numbers, at step ``iteration``)."""
        from mlflow.entities import Metric

        stamp = int(float(result.get("timestamp") or time.time()) * 1000)
        step = int(result.get("iteration", 0))
        return [Metric(_key(key), float(value), stamp, step) for key, value in result.items()
                if key not in _AUTO_KEYS and not isinstance(value, bool) and isinstance(value, (int, float))]

    # -- experiment ----------------------------------------------------------------------
    def on_experiment_start(self, path: Path, meta: Mapping[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        self._name = str(meta.get("name", Path(path).name))
        self._path = str(path)
        # A resumed experiment logs into its earlier runs rather than opening new ones: found
        # by the experiment's path, or a path it had before `raytuner rename` (and, with no
        # experiment_name given, in the MLflow experiment named after it then).
        former = [p for p in reversed(meta.get("former_paths") or ()) if isinstance(p, str)]
        paths = [str(path), *former]
        names = [self.experiment_name] if self.experiment_name else [self._name, *(Path(p).name for p in former)]
        experiment, previous = None, []
        for name in dict.fromkeys(names):
            found = self._client.get_experiment_by_name(name)
            runs = [run for where in paths for run in self._client.search_runs(
                [found.experiment_id], filter_string=f"tags.`raytuner.path` = '{_quote(where)}'", max_results=50000)
            ] if found is not None else []
            if runs:
                experiment, previous = found, runs
                break
        experiment = experiment or self._client.get_experiment_by_name(names[0])
        self._experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(names[0])
        for run in previous:
            if run.data.tags.get("raytuner.path") != str(path):  # renamed since: found by its path from now on
                self._client.set_tag(run.info.run_id, "raytuner.path", str(path))
        left_open = []
        for run in previous:
            tags = run.data.tags
            if "raytuner.trial_id" in tags:
                self.run_ids[tags["raytuner.trial_id"]] = run.info.run_id
                self._found.add(tags["raytuner.trial_id"])
                if run.info.status in ("RUNNING", "SCHEDULED"):  # not ended: see _settle
                    left_open.append(tags["raytuner.trial_id"])
            elif "mlflow.parentRunId" not in tags:
                self.parent_run_id = run.info.run_id
        if self.parent_run_id is None:
            run = self._client.create_run(
                self._experiment_id, run_name=self._name,
                tags={**self.tags, "raytuner.path": str(path), "raytuner.experiment": self._name},
            )
            self.parent_run_id = run.info.run_id
            settings = {k: meta.get(k) for k in ("metric", "mode", "searcher", "scheduler", "num_trials",
                                                 "max_concurrent", "resources", "stop", "time_budget_s")}
            self._log_params(self.parent_run_id, {k: v for k, v in settings.items() if v is not None})
        else:
            self._client.update_run(self.parent_run_id, status="RUNNING")
        self._client.log_batch(self.parent_run_id, tags=_limit_tags(meta))
        if left_open:
            self._settle(Path(path), sorted(left_open))

    def _settle(self, path: Path, trial_ids: list[str]) -> None:
        """Settle runs an earlier driver left open (it died with reports in its batches, or
        before a trial's end reached MLflow) against the experiment's records: each run's
        points become the trial's kept history, and a trial that ended gets its status."""
        from raytuner._results import read_trial
        from raytuner._storage.experiment import ExperimentStorage

        storage = ExperimentStorage(path)
        for trial_id in trial_ids:
            if not (storage.trial_path(trial_id) / "trial.json").is_file():
                continue  # no records to settle it by (a folder moved out): the run stays as it is
            try:
                trial = read_trial(storage, trial_id, history=False)
                rows = storage.read_results(trial_id)
            except (ExperimentError, OSError) as exc:  # damaged: named in its views; its run stays as it is
                logger.warning("MLflow: the run of trial %s is left as the last driver left it (%s).", trial_id, exc)
                continue
            self._found.discard(trial_id)
            kept = {int(row.get("iteration", 0)): {m.key: m for m in self._metrics(row)} for row in rows}
            held = self._held(trial_id)
            values = {step: {key: m.value for key, m in metrics.items()} for step, metrics in kept.items()}
            parted = first_parted(held, values)
            if parted is not None:
                self._replace_run(trial_id, parted)  # keeps the points before it
            for step, metrics in kept.items():
                if step not in held or (parted is not None and step >= parted):
                    self._pending.setdefault(trial_id, []).extend(metrics.values())
            self._steps[trial_id] = max([0, *kept, *(held if parted is None else ())])
            self._flush(trial_id)
            if trial.status.is_finished():
                self.on_trial_end(trial)
            elif trial.status.value == "PAUSED":
                self._client.update_run(self.run_ids[trial_id], status="SCHEDULED")

    def _held(self, trial_id: str) -> dict[int, dict[str, list[float]]]:
        """The points the trial's run holds: step -> {key: every value logged there}."""
        run_id = self.run_ids[trial_id]
        held: dict[int, dict[str, list[float]]] = {}
        for key in self._client.get_run(run_id).data.metrics:
            for point in self._client.get_metric_history(run_id, key):
                held.setdefault(point.step, {}).setdefault(key, []).append(point.value)
        return held

    def on_experiment_end(self, results: Results) -> None:
        from mlflow.entities import Metric, RunTag

        for trial_id in list(self._pending):
            self._flush(trial_id)
        if self.parent_run_id is None:
            return
        metrics, tags = [], [RunTag("raytuner.status", str(results.meta.get("status", ""))), *_limit_tags(results.meta)]
        if results.objectives.multi:  # several objectives: the front instead of one best trial
            self._log_front(results, tags, metrics)
            best = None
        else:
            try:
                best = results.best
            except Exception:  # no metric, or no trial reported it: nothing to call best
                best = None
        if best is not None and results.metric is not None:
            now = int(time.time() * 1000)
            # The value the trial was chosen for (its best report under best_scope "all"), not its last.
            value = shown_value(best, results.metric, results.mode, results.scope)
            metrics.append(Metric(_key(f"best_{results.metric}"), float(value), now, 0))
            tags.append(RunTag("raytuner.best_trial_id", best.trial_id))
            if best.trial_id in self.run_ids:
                tags.append(RunTag("raytuner.best_run_id", self.run_ids[best.trial_id]))
        self._client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        status = _EXPERIMENT_STATUS.get(str(results.meta.get("status")), "FINISHED")
        self._client.set_terminated(self.parent_run_id, status=status)

    def _log_front(self, results: Results, tags: list[Any], metrics: list[Any]) -> None:
        """The Pareto front: its trial ids and size on the experiment's run, and a
        ``raytuner.pareto_front`` tag on each trial's run, "true" for the members and
        "false" for the others (every objective is already among each trial's metrics).

        Every run gets the tag, not only the members: a resume that adds trials can push
        earlier members off the front, and their "true" from the earlier run's end must
        not stay, or searching on the tag would return more than the front."""
        from mlflow.entities import Metric, RunTag

        try:
            front = [trial.trial_id for trial in results.pareto_front()]
        except ExperimentError:  # no trial reported every objective: there is no front to record
            return
        tags.append(RunTag("raytuner.pareto_front", ",".join(front)[:5000]))
        metrics.append(Metric("pareto_front_size", float(len(front)), int(time.time() * 1000), 0))
        members = set(front)
        for trial_id, run_id in self.run_ids.items():
            on = "true" if trial_id in members else "false"
            self._client.log_batch(run_id, tags=[RunTag("raytuner.pareto_front", on)])

    # -- trials --------------------------------------------------------------------------
    def on_trial_start(self, trial_id: str, config: Mapping[str, Any]) -> None:
        if trial_id in self.run_ids:  # back from a pause or a retry
            self._client.update_run(self.run_ids[trial_id], status="RUNNING")
            return
        run = self._client.create_run(
            self._experiment_id, run_name=f"{self._name}/{trial_id}",
            tags={**self.tags, "mlflow.parentRunId": self.parent_run_id, "raytuner.trial_id": trial_id,
                  "raytuner.experiment": self._name, "raytuner.path": self._path, "raytuner.status": "RUNNING"},
        )
        self.run_ids[trial_id] = run.info.run_id
        self._log_params(run.info.run_id, flatten(config))

    def on_trial_result(self, trial_id: str, result: Mapping[str, Any]) -> None:
        step = int(result.get("iteration", 0))
        metrics = self._metrics(result)
        if trial_id in self._found:  # a resumed trial: how far its run got before
            self._found.discard(trial_id)
            self._steps[trial_id] = self._last_step(trial_id, [m.key for m in metrics])
        if step <= self._steps.get(trial_id, 0) and trial_id in self.run_ids:
            self._replace_run(trial_id, step)  # restarted from an earlier checkpoint
        self._steps[trial_id] = max(step, self._steps.get(trial_id, 0))
        self._pending.setdefault(trial_id, []).extend(metrics)
        if time.monotonic() - self._last_flush.get(trial_id, 0.0) >= self.flush_every_s:
            self._flush(trial_id)

    def _last_step(self, trial_id: str, keys: list[str]) -> int:
        """The highest step of the trial's run, read from MLflow (one of ``keys``' histories)."""
        run_id = self.run_ids[trial_id]
        logged = set(self._client.get_run(run_id).data.metrics)
        for key in keys:
            if key in logged:
                return max((m.step for m in self._client.get_metric_history(run_id, key)), default=0)
        return 0

    def _replace_run(self, trial_id: str, step: int) -> None:
        """The trial restarted at ``step``, which its run already holds: a new run takes its
        place with the old run's points before ``step``, and the old run is deleted."""
        from mlflow.entities import Metric, RunTag

        self._flush(trial_id)
        old_id = self.run_ids[trial_id]
        old = self._client.get_run(old_id)
        tags = {k: v for k, v in old.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.parentRunId"}
        run = self._client.create_run(self._experiment_id, run_name=old.info.run_name,
                                      tags={**tags, "raytuner.replaces": old_id})
        new_id = run.info.run_id
        kept = [Metric(m.key, m.value, m.timestamp, m.step) for key in old.data.metrics
                for m in self._client.get_metric_history(old_id, key) if m.step < step]
        for chunk in _chunks(kept, 1000):
            self._client.log_batch(new_id, metrics=chunk)
        self._log_params(new_id, old.data.params, raw=True)
        self._client.log_batch(new_id, tags=[RunTag("raytuner.restarted_at_step", str(step))])
        self._client.delete_run(old_id)
        self.run_ids[trial_id] = new_id
        self._steps[trial_id] = step - 1

    def on_trial_end(self, trial: TrialResult) -> None:
        from mlflow.entities import RunTag

        self._flush(trial.trial_id)
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None:
            return
        tags = [RunTag("raytuner.status", trial.status.value)]
        if trial.error:
            tags.append(RunTag("raytuner.error", trial.error[-5000:]))
        self._client.log_batch(run_id, tags=tags)
        if trial.status.is_finished():
            self._client.set_terminated(run_id, status=_RUN_STATUS[trial.status.value])
        else:  # paused: the scheduler may resume it
            self._client.update_run(run_id, status="SCHEDULED")

    # -- helpers -------------------------------------------------------------------------
    def _flush(self, trial_id: str) -> None:
        batch = self._pending.pop(trial_id, [])
        self._last_flush[trial_id] = time.monotonic()
        run_id = self.run_ids.get(trial_id)
        if not batch or run_id is None:
            return
        for chunk in _chunks(batch, 1000):  # MLflow takes at most 1000 metrics per batch
            self._client.log_batch(run_id, metrics=chunk)

    def _log_params(self, run_id: str, params: Mapping[str, Any], raw: bool = False) -> None:
        """``params`` as the run's; ``raw``: as they are (read back from a run)."""
        from mlflow.entities import Param

        items = [Param(k, v) if raw else Param(_key(k), (v if isinstance(v, str) else repr(v))[:_MAX_PARAM])
                 for k, v in params.items()]
        for chunk in _chunks(items, 100):  # at most 100 params per batch
            self._client.log_batch(run_id, params=chunk)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _limit_tags(meta: Mapping[str, Any]) -> list[Any]:
    """The limits in force (``raytuner.num_trials``, ``raytuner.max_concurrent``,
    ``raytuner.time_budget_s``), as tags: the experiment run's params are its first run's
    and cannot change, while a resume or a control command may set others."""
    from mlflow.entities import RunTag

    names = ("num_trials", "max_concurrent", "time_budget_s")
    return [RunTag(f"raytuner.{name}", str(meta.get(name))) for name in names]
