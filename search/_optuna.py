"""Optuna's samplers as a raytuner searcher, driven through Optuna's ask/tell interface."""

from __future__ import annotations

import copyreg
import importlib.util
import io
import pickle
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from raytuner.errors import ConfigError, refuse_unknown_keywords

from ._base import FINISHED, Outcome, Searcher, already_suggested, check_saved_objectives, check_version, ended_twice
from ._base import _Finished, is_finite, not_set_up
from ._checks import check_seed
from ._fork import check_warm_start, check_warm_start_objectives, fit_observations
from ._optuna_space import ask, distributions, optuna_value
from ._params import match_config, parameters
from ._space import check_space

_NAME = "OptunaSearcher"
_STATE_VERSION = 2  # 2: the last resource of each running trial, for the repeat rule
#: What ``Study.stop`` raises outside ``Study.optimize``, where a sampler calls it to end the
#: search (GridSampler and BruteForceSampler, once every point is taken).
_STOP_OUTSIDE_OPTIMIZE = "`Study.stop` is supposed to be invoked"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        msg = (
            f"{_NAME} needs the `optuna` package, which is not installed. Install the "
            'extra: pip install "raytuner[optuna]".'
        )
        raise ConfigError(msg) from None
    return optuna


# Optuna's samplers that import an optional package only when they first sample, after the
# start-up trials ran (optuna 5.1: samplers/_cmaes.py, samplers/_gp, samplers/_qmc.py), and
# the pip name of each package. A sampler the installed optuna lacks is skipped.
_SAMPLER_NEEDS = (("CmaEsSampler", ("cmaes",)), ("GPSampler", ("torch", "scipy")), ("QMCSampler", ("scipy",)))


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it (torch takes seconds)."""
    return importlib.util.find_spec(package) is not None


def _check_sampler_needs(optuna: Any, sampler: Any) -> None:
    """Refuse a sampler whose optional package is missing, now rather than after the
    start-up trials; a ``PartialFixedSampler`` is checked by the sampler it wraps."""
    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        _check_sampler_needs(optuna, getattr(sampler, "_base_sampler", None))
        return
    for name, packages in _SAMPLER_NEEDS:
        kind = getattr(optuna.samplers, name, None)
        missing = [package for package in packages if not _installed(package)]
        if kind is not None and isinstance(sampler, kind) and missing:
            msg = (
                f"{_NAME}: `sampler` is {type(sampler).__name__}, which needs the "
                f"{' and '.join(f'`{package}`' for package in missing)} package{'s' * (len(missing) > 1)}, "
                "not installed: it would fail at its first suggestion after the start-up trials. "
                f"Install {'them' if len(missing) > 1 else 'it'}: pip install {' '.join(missing)}."
            )
            raise ConfigError(msg)


class OptunaSearcher(Searcher):
    """Any Optuna sampler (TPE, GP, CMA-ES, QMC, your own) as a raytuner searcher.

    The searcher keeps an in-memory Optuna study and drives it through ask/tell
    (``study.ask()``, ``trial.suggest_*``, ``trial.report``, ``study.tell``): each
    :meth:`suggest` asks for one trial and walks the space, asking for the parameters of
    each active label with its fixed distribution (conversion table in
    :mod:`._optuna_space`; conditional choices become conditional parameters).

    **Pending trials** are RUNNING in the study, as in Optuna's own parallel runs, so
    samplers that model them see them, such as the default TPE's constant liar
    (``constant_liar=True`` by default since Optuna 5: running trials join the "bad" group).

    **How trials end**, in Optuna's own terms (values signed to minimise):

    - COMPLETED with a finite value, or STOPPED at ``resource >= max_resource``:
      ``tell(value)``, state COMPLETE.
    - STOPPED earlier (a scheduler cut it): the last value is reported at its step
      (``trial.report(value, step)``) and the trial is told PRUNED, exactly what an Optuna
      pruner does; Optuna's TPE ranks pruned trials behind complete ones, deeper ones
      first, by their last intermediate value.
    - FAILED, or at its full budget without a finite value: told FAIL; samplers ignore it.
    - STOPPED earlier without a finite value (it diverged, or was stopped before its first
      report): told PRUNED with the reports it had sent; Optuna's TPE ranks a pruned trial
      without reports behind every other pruned trial.

    **Reports** reach the trial as intermediate values, ``trial.report(value, n)`` for its
    n-th report (n = 1, 2, ...), as Ray Tune's ``OptunaSearch`` steps by the training
    iteration. That is one scale for every trial whatever the resource (whole epochs,
    fractional epochs, seconds), so no two reports of a trial share a step and none is
    dropped; under the default resource, the training iteration, n is the resource. Optuna's
    TPE ranks pruned trials by their last step, deepest first, so trials that report at the
    same resources compare as by resource. A report at a resource no higher than the trial's
    last one is a repeat (a trial resumed from a checkpoint makes some): neither counted nor
    sent. A report without a finite value is counted but not sent. A value whose index the
    searcher did not see (a warm-start trial's last one, or a final value that never came as
    a report) is put after the reports it saw, and at its resource when that is a whole
    number, the index under the default resource.

    **Several objectives** (``setup(..., objectives=[...])``, values tuples of k floats): the
    study is created with ``directions=["minimize"] * k`` and told each trial's k values.
    Optuna's default TPE (split by non-dominated rank, as ``TPESearcher``),
    ``NSGAIISampler``, ``NSGAIIISampler``, ``QMCSampler`` and ``RandomSampler`` take them; a
    sampler that refuses several objectives (``CmaEsSampler``) is asked once at
    :meth:`setup`, on a copy of it, and Optuna's own error becomes a ``ConfigError``. Optuna
    keeps no intermediate values with several objectives (``Trial.report`` is
    single-objective), so reports are not passed on, and a trial stopped early is told
    PRUNED without a value (Optuna's samplers leave such trials out, or rank them behind
    every complete one).

    **A sampler that ends the search.** ``GridSampler`` and ``BruteForceSampler`` call
    ``study.stop()`` once every point is taken, which ends ``study.optimize``; here it ends
    the search the same way: no trial starts after it (:meth:`suggest` returns
    ``FINISHED``), and the trials running finish.

    **Default sampler.** ``optuna.samplers.TPESampler(seed=seed)``, Optuna's own default;
    with the same seed and results a serial run asks exactly the configs Optuna's own
    ask/tell loop does (tests/search/test_optuna_searcher.py). Optuna logs each finished
    trial at INFO; ``optuna.logging.set_verbosity(optuna.logging.WARNING)`` quiets it.

    Args:
        space: The search space; None to use the Tuner's.
        sampler: An ``optuna.samplers.BaseSampler`` instance; None for TPE.
        seed: Seed of the default TPE sampler, an int in [0, 2**32 - 1] (seed your own
            sampler yourself).
        warm_start: ``(config, value)`` pairs (value signed to minimise; None if failed) or
            ``(config, Outcome)`` from an earlier search, added to the study with
            ``study.add_trial`` before the first suggestion. They are fitted to this space by
            :func:`._fork.fit_observations` first (removed keys ignored, values outside
            their new domain dropped, a warning with the counts); a trial is added with the
            parameters it has, which Optuna's samplers accept as they accept conditional
            parameters.

    Raises:
        ConfigError: Without optuna installed; for a ``sampler`` that is not an Optuna
            sampler, or one whose optional package is missing (``CmaEsSampler``:
            ``cmaes``; ``GPSampler``: ``torch`` and ``scipy``; ``QMCSampler``: ``scipy``);
            for ``seed`` together with a sampler of one's own.

    Example:
        >>> import optuna
        >>> from raytuner.search import OptunaSearcher, uniform
        >>> searcher = OptunaSearcher({"x": uniform(-5, 5)}, sampler=optuna.samplers.QMCSampler(seed=0))
    """

    supports_multi_objective = True  # as far as its sampler does: see setup()

    @refuse_unknown_keywords
    def __init__(
        self,
        space: Mapping[str, Any] | None = None,
        *,
        sampler: Any = None,
        seed: int | None = None,
        warm_start: Iterable[tuple[Mapping[str, Any], float | Outcome | None]] | None = None,
    ) -> None:
        optuna = _import_optuna()
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            hint = " (a class: call it)" if isinstance(sampler, type) else ""
            msg = (
                f"{_NAME}: `sampler` is {sampler!r:.80}{hint}, but must be an Optuna "
                "sampler, an instance of optuna.samplers.BaseSampler. Pass e.g. "
                "sampler=optuna.samplers.TPESampler(seed=0), or None for TPE."
            )
            raise ConfigError(msg)
        _check_sampler_needs(optuna, sampler)
        check_seed(_NAME, seed, below=2**32)  # TPESampler seeds numpy's RandomState, which takes no more
        if sampler is not None and seed is not None:
            msg = (
                f"{_NAME}: `seed` is {seed!r}, but it seeds only the default sampler "
                f"and `sampler` is given ({type(sampler).__name__}). Seed your sampler "
                f"instead: {type(sampler).__name__}(seed={seed!r})."
            )
            raise ConfigError(msg)
        self._seed = seed
        self._own_sampler = sampler is not None
        self._sampler = sampler if sampler is not None else optuna.samplers.TPESampler(seed=seed)
        self._warm_start = check_warm_start(_NAME, warm_start)
        if space is not None:
            check_space(_NAME, space)
        self.space = space
        self._table: dict[str, Any] = {}
        self._study: Any = None
        self._trials: dict[str, Any] = {}  # trial_id -> optuna.trial.Trial, while running
        self._steps: dict[str, int] = {}  # trial_id -> reports so far: the last one's index
        self._last: dict[str, tuple[int, float]] = {}  # trial_id -> last step and value sent
        self._resources: dict[str, float] = {}  # trial_id -> the resource of its last report
        self._ended: set[str] = set()
        self._stopped = False  # the sampler called study.stop(): see _tell

    def __getstate__(self) -> dict[str, Any]:
        # The searcher itself is pickled when the Tuner stores a sampler of the user's
        # (tuner.pkl): the sampler and the study go as state() sends them, so that NSGA-II's
        # and NSGA-III's thread locks do not make the experiment fail as it starts.
        state = dict(self.__dict__)
        state["_sampler"], state["_study"] = None, None
        state["_optuna"] = _dumps((self._sampler, self._study, self._trials))
        del state["_trials"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._sampler, self._study, self._trials = pickle.loads(state.pop("_optuna"))
        state.pop("_sampler")
        state.pop("_study")
        state.setdefault("_resources", {})  # pickled by a version without it
        state.setdefault("_stopped", False)
        self.__dict__.update(state)

    def _config(self) -> dict[str, Any] | None:
        """The constructor's arguments as JSON data: only for the default sampler and no
        warm start; a sampler of the user's (its settings are its own) is pickled whole."""
        if self._own_sampler or self._warm_start:
            return None
        return {"seed": self._seed}

    def setup(self, space: Mapping[str, Any] | None, num_trials: int,
              objectives: int | Sequence[str] = 1) -> None:
        super().setup(space, num_trials, objectives)
        assert self.space is not None  # set by Searcher.setup or it raised
        check_space(_NAME, self.space)
        _check_sampler_needs(_import_optuna(), self._sampler)  # a pickled searcher, resumed elsewhere
        check_warm_start_objectives(_NAME, self._warm_start, self.num_objectives)
        self._table = distributions(self.space, _NAME)
        if self._study is not None:  # restore() brought its own study
            check_saved_objectives(_NAME, len(self._study.directions), self.num_objectives)
            return
        optuna = _import_optuna()
        self._probe_sampler(optuna)
        if self.num_objectives == 1:
            self._study = optuna.create_study(sampler=self._sampler, direction="minimize")
        else:
            self._study = optuna.create_study(sampler=self._sampler, directions=["minimize"] * self.num_objectives)
        self._load_warm_start()

    def _probe_sampler(self, optuna: Any) -> None:
        """Ask a copy of the sampler for one trial of a throwaway study with the space's
        parameters and k objectives, so that a sampler that cannot take them refuses here,
        before any trial, in Optuna's words: a single-objective sampler given several, a
        ``GridSampler`` whose grid misses a parameter."""
        try:
            sampler = pickle.loads(_dumps(self._sampler))
        except Exception:  # noqa: BLE001 - a sampler that cannot be copied is asked at the first suggest
            return
        study = optuna.create_study(sampler=sampler, directions=["minimize"] * self.num_objectives)
        try:
            study.ask(self._table)
        except ValueError as error:
            if self.num_objectives > 1 and "objective" in str(error).lower():
                msg = (
                    f"{_NAME}: the sampler {type(self._sampler).__name__} refused {self.num_objectives} "
                    f"objectives: {error} Pass a sampler that takes several, e.g. "
                    "optuna.samplers.TPESampler() (the default) or NSGAIISampler()."
                )
            else:
                msg = (
                    f"{_NAME}: the sampler {type(self._sampler).__name__} cannot sample this space "
                    f"(parameters {sorted(self._table)}): {error} Give the sampler every parameter "
                    "of the space (a GridSampler's search_space names each one, as raytuner labels "
                    "nested ones), or use raytuner's own GridSearcher with rt.grid([...])."
                )
            raise ConfigError(msg) from error


    def _load_warm_start(self) -> None:
        optuna = _import_optuna()
        fitted = fit_observations(_NAME, self.space, self._warm_start)  # type: ignore[arg-type]
        for values, outcome in fitted.observations:
            params = self._params(values)
            state, value, last = _optuna_end(optuna, outcome)
            intermediate = {} if last is None else {_unseen_step(0, outcome.resource): last}
            if last is not None:  # as tell() does: a pruned trial's value is its last report
                value = last
            # Optuna's samplers take a trial with only some of the parameters (as for
            # conditional ones), so a partial observation still informs the others.
            given = {"values": list(value)} if isinstance(value, tuple) else {"value": value}
            self._study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={label: self._table[label] for label in params},
                    intermediate_values=intermediate,
                    state=state,
                    **given,
                )
            )
        if fitted.report.changed:
            warnings.warn(fitted.report.message(_NAME), stacklevel=3)

    def _params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's parameters for a point of the space (``{label: value}``, as a fit has it)."""
        domains = {label: p.domain for label, p in parameters(self.space, _NAME).items()}  # type: ignore[arg-type]
        return {label: optuna_value(domains[label], self._table[label], value) for label, value in values.items()}

    def suggest(self, trial_id: str) -> dict[str, Any] | _Finished:
        if self._study is None:
            raise not_set_up(_NAME)
        if trial_id in self._trials or trial_id in self._ended:
            raise already_suggested(_NAME, trial_id)
        if self._stopped:
            return FINISHED
        trial = self._study.ask()  # RUNNING from now on: samplers see it as pending
        config = ask(self.space, self._table, trial)  # type: ignore[arg-type]
        self._trials[trial_id] = trial
        self._steps[trial_id] = 0
        return config

    def on_trial_result(self, trial_id: str, resource: float, value: float) -> None:
        trial = self._trials.get(trial_id)
        if trial is None or self.num_objectives > 1:
            return
        previous = self._resources.get(trial_id)
        if previous is not None and resource <= previous:
            return  # a repeat, from a trial resumed from a checkpoint
        self._resources[trial_id] = float(resource)
        self._steps[trial_id] += 1
        if not is_finite(value):
            return
        sent = self._last.get(trial_id)
        # A trial running when a version-1 state was saved may have sent its resources as
        # steps: its next step comes after them.
        step = self._steps[trial_id] if sent is None else max(self._steps[trial_id], sent[0] + 1)
        trial.report(float(value), step)
        self._last[trial_id] = (step, float(value))

    def correct_config(self, trial_id: str, config: Mapping[str, Any]) -> bool:
        """Optuna fixes a trial's parameters once asked, so the asked trial gives way: it ends
        FAIL (no sampler learns from a failed trial), with a user attribute saying why, and a
        trial asked with ``config``'s parameters enqueued (``Study.enqueue_trial``) takes its
        place, running as the first was. Only before the trial has reported anything."""
        trial = self._trials.get(trial_id)
        if self.space is None or trial is None or self._steps.get(trial_id) or trial_id in self._last:
            return False
        match = match_config(self.space, dict(config))
        if not match.fits:
            return False  # not a point of this space (a fork's older config): keep the proposal
        params = self._params(match.values)
        optuna = _import_optuna()
        trial.set_user_attr("raytuner", f"trial {trial_id} ran with another config (a resume found it "
                                        f"after this proposal); trial {trial_id}'s results are on a later trial")
        self._tell(trial, state=optuna.trial.TrialState.FAIL)
        self._study.enqueue_trial(params, user_attrs={"raytuner": f"trial {trial_id}, corrected after a resume"})
        self._trials[trial_id] = replacement = self._study.ask()
        ask(self.space, self._table, replacement)  # its parameters set, from the queue
        return True

    def on_trial_complete(self, trial_id: str, outcome: Outcome) -> None:
        trial = self._trials.pop(trial_id, None)
        if trial is None:
            raise ended_twice(_NAME, trial_id, suggested=trial_id in self._ended)
        self._ended.add(trial_id)
        optuna = _import_optuna()
        state, value, last = _optuna_end(optuna, outcome)
        sent = self._last.pop(trial_id, None)
        seen = self._steps.pop(trial_id, 0)
        self._resources.pop(trial_id, None)
        if last is not None and (sent is None or last != sent[1]):
            # The value it ended with never came as a report: sent now, so that the pruned
            # trial's value is that one.
            step = _unseen_step(seen, outcome.resource)
            trial.report(last, step if sent is None else max(step, sent[0] + 1))
        self._tell(trial, value, state=state)

    def _tell(self, trial: Any, *args: Any, **kwargs: Any) -> None:
        """``study.tell``; a sampler that calls ``study.stop()`` as the trial ends (a grid
        that has seen every point) ends the search, as it ends ``study.optimize``. Optuna
        stores the trial's end before it runs the sampler's ``after_trial``, where that
        call raises outside ``optimize``, so nothing of the trial is lost."""
        try:
            self._study.tell(trial, *args, **kwargs)
        except RuntimeError as error:
            if _STOP_OUTSIDE_OPTIMIZE not in str(error):
                raise
            self._stopped = True

    def state(self) -> dict[str, Any]:
        # The in-memory study (storage and sampler, with its random state) pickles whole; the
        # running trials' handles are pickled with it so that they stay bound to it.
        payload = (self._study, self._trials, self._steps, self._last, self._ended, self._resources, self._stopped)
        return {"version": _STATE_VERSION, "study": _dumps(payload)}

    def restore(self, state: dict[str, Any]) -> None:
        if not (isinstance(state, Mapping) and state.get("version") == 1):  # 1 is read as well
            check_version(_NAME, state, _STATE_VERSION)
        payload = pickle.loads(state["study"])
        self._study, self._trials, self._steps, self._last, self._ended = payload[:5]
        self._resources = payload[5] if len(payload) > 5 else {}
        self._stopped = payload[6] if len(payload) > 6 else False
        self._sampler = self._study.sampler
        if self._table:  # set up already: the study must have the experiment's objectives
            check_saved_objectives(_NAME, len(self._study.directions), self.num_objectives)


def _optuna_end(optuna: Any, outcome: Outcome) -> tuple[Any, float | tuple[float, ...] | None, float | None]:
    """Optuna's ``(state, value, last)`` for how a trial ended: ``last`` is the last value of
    a PRUNED trial, an intermediate value (None if it has none, or several objectives)."""
    TrialState = optuna.trial.TrialState
    value = outcome.value
    if outcome.failed:
        return TrialState.FAIL, None, None
    if isinstance(value, tuple):  # several objectives: no intermediate values in Optuna
        if outcome.full_budget:
            return TrialState.COMPLETE, tuple(map(float, value)), None
        return TrialState.PRUNED, None, None
    if outcome.full_budget:
        return TrialState.COMPLETE, float(value), None  # type: ignore[arg-type]
    if not is_finite(value):
        return TrialState.PRUNED, None, None
    return TrialState.PRUNED, None, float(value)  # type: ignore[arg-type]


def _unseen_step(seen: int, resource: float | None) -> int:
    """The step of a value whose report index is unknown, after ``seen`` reports: the next
    one, or its resource if that is a larger whole number (under the default resource, the
    training iteration, the resource is the index)."""
    if resource is not None and float(resource).is_integer() and resource > seen:
        return int(resource)
    return seen + 1


def _dumps(payload: Any) -> bytes:
    """``pickle.dumps``, with a thread lock pickled as a new, unlocked one: NSGA-II's and
    NSGA-III's samplers hold a lock (a guard of their cache) that pickle refuses."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    for make in (threading.Lock, threading.RLock):
        pickler.dispatch_table[type(make())] = lambda _, new=make: (new, ())
    pickler.dump(payload)
    return buffer.getvalue()
