"""Several objectives in the lifecycle and on resume, driven by synthetic events (no Ray):
each report signed into a tuple for searcher, scheduler and Outcome, the trial's record
keeping every objective's last value, and resume rebuilding the same from history."""

from __future__ import annotations

import math
from types import SimpleNamespace

from raytuner._driver import events as ev
from raytuner._driver.resume import _restore_trials
from raytuner._objectives import Objectives
from raytuner._storage import components
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus
from raytuner._worker.protocol import Report, Signal, TrialExit
from raytuner.schedulers import ASHAScheduler, Decision
from raytuner.search import Outcome, TPESearcher, TrialEnd, uniform

from tests.raytuner.lifecycle_fakes import ListSearcher, ScriptedScheduler, make, of, reported

TWO = ["acc", "size"]


def report(iteration: int, acc: float, size: float, **kw) -> Report:
    return Report(iteration, iteration, {"acc": acc, "size": size, "loss": 9.0}, float(iteration),
                  1000.0 + iteration, kw.get("checkpoint"), kw.get("awaits", True))


def test_each_report_is_signed_into_a_tuple_in_metric_order():
    scheduler = ScriptedScheduler()
    scheduler.on_result = lambda trial_id, resource, value: scheduler.calls.append((trial_id, value)) or Decision.CONTINUE
    life = make(scheduler, searcher=ListSearcher(n=1), metric=TWO, mode=["max", "min"])
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, 300)))
    out = life.handle(reported("00000", report(2, 0.75, math.nan), exit=TrialExit(Signal.COMPLETED)))
    assert life.searcher.results[0] == ("00000", 1, (-0.5, 300.0))
    second = life.searcher.results[1][2]
    assert second[0] == -0.75 and math.isnan(second[1])  # NaN left as NaN
    assert scheduler.calls[1] == ("00000", (-0.5, 300.0))  # after ("add", "00000")
    outcome = life.searcher.ends["00000"]
    assert outcome.end is TrialEnd.COMPLETED and outcome.value[0] == -0.75 and math.isnan(outcome.value[1])
    trial = life.trials["00000"]
    assert trial.metrics["acc"] == 0.75 and math.isnan(trial.metrics["size"])  # every objective's last value
    assert trial.best_value is None and trial.best_iteration is None  # no one best report with several
    record = of(out, ev.WriteTrial)[-1].record
    assert record["metrics"]["acc"] == 0.75 and record["best_value"] is None


def test_a_rewind_restores_the_tuple_of_the_checkpointed_report():
    life = make(searcher=ListSearcher(n=1), metric=TWO, mode="min", max_failures=1, max_concurrent=1)
    life.handle(ev.Fill(idle=("w1",), pool_size=1))
    life.handle(reported("00000", report(1, 0.5, 3, checkpoint="checkpoint_000001", awaits=False), report(2, 0.4, 3, awaits=False)))
    life.handle(ev.CallFailed("00000", "boom", worker_lost=True))
    life.handle(ev.Fill(idle=("w2",), pool_size=1))
    trial = life.trials["00000"]
    assert trial.iteration == 1 and trial.last_value == (0.5, 3.0) and trial.best_value is None


def test_a_trial_record_round_trips_its_tuple_through_json():
    trial = Trial("00001", {})
    trial.observe(1, 1, {"acc": 0.5, "size": 3}, (-0.5, 3.0), 1.0)
    import json

    back = Trial.from_record(json.loads(json.dumps(trial.to_record())), {})
    assert back.last_value == (-0.5, 3.0) and back.best_value is None


def test_resume_sets_components_up_with_the_objectives_and_rebuilds_tuples_from_history(tmp_path):
    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    space = {"x": uniform(0, 1)}
    settings = SimpleNamespace(metric=TWO, mode=["max", "min"], num_trials=4)
    searcher, scheduler = TPESearcher(seed=0), ASHAScheduler(max_resource=9)
    components.setup_components(searcher, space, 4, Objectives.of(TWO, ["max", "min"]), scheduler)
    searcher.suggest("00000")
    searcher.on_trial_complete("00000", Outcome(TrialEnd.COMPLETED, (-0.5, 3.0), 9, 9))
    meta = {"name": "exp", **components.save(storage, settings, searcher, scheduler)}
    state = {"searcher": searcher.state(), "scheduler": scheduler.state()}
    _, rebuilt, rescheduler = components.load(storage, meta)
    assert rebuilt.num_objectives == 2 and rescheduler.num_objectives == 2
    rebuilt.restore(state["searcher"])  # a state of the same k is taken
    rescheduler.restore(state["scheduler"])
    # the trials: their values rebuilt from the kept rows, signed per objective
    storage.write_config("00000", {"x": 0.3})
    storage.append_results("00000", [{"acc": 0.5, "size": 3, "iteration": 1, "time_total_s": 1.0},
                                     {"acc": 0.6, "size": 4, "iteration": 2, "time_total_s": 2.0}])
    trial = Trial("00000", {"x": 0.3}, status=TrialStatus.RUNNING)
    storage.write_trial("00000", trial.to_record())
    (restored,) = _restore_trials(storage, Objectives.of(TWO, ["max", "min"])).values()
    assert restored.last_value == (-0.6, 4.0) and restored.trajectory == [(1, 1, (-0.5, 3.0)), (2, 2, (-0.6, 4.0))]
    assert restored.metrics == {"acc": 0.6, "size": 4}


def test_progress_counts_the_front_and_shows_every_objective():
    import io

    from raytuner._driver.progress import Progress

    trials = {}
    for i, (acc, size) in enumerate([(0.9, 300), (0.8, 100), (0.7, 200), (0.95, 400)]):
        trial = trials[f"{i:05d}"] = Trial(f"{i:05d}", {"x": i}, status=TrialStatus.COMPLETED)
        trial.observe(1, 1, {"acc": acc, "size": size}, (-acc, float(size)), 1.0)
    stream = io.StringIO()
    progress = Progress(trials, name="exp", metric=TWO, mode=["max", "min"], total=4, stream=stream)
    assert "Pareto front: 3 trials (acc, size)" in progress.line()  # 00002 is dominated by 00001
    assert progress._ranked()[-1].trial_id == "00002"  # the front first
    progress.close()
    table = stream.getvalue()
    assert "top trials by Pareto order" in table and "acc" in table and "size" in table
    # A FAILED trial's values are no result while others have values (raytuner._best's one rule).
    failed = trials["00004"] = Trial("00004", {"x": 4}, status=TrialStatus.FAILED)
    failed.observe(1, 1, {"acc": 0.99, "size": 10}, (-0.99, 10.0), 1.0)
    progress = Progress(trials, name="exp", metric=TWO, mode=["max", "min"], total=5, stream=io.StringIO())
    assert "Pareto front: 3 trials (acc, size)" in progress.line()
    ranked = [t.trial_id for t in progress._ranked()]
    assert sorted(ranked[:3]) == ["00000", "00001", "00003"] and ranked[3:] == ["00004", "00002"]
    progress.close()


def test_an_nsga2_optuna_searcher_is_stored_and_rebuilt_with_its_study(tmp_path):
    """A sampler of the user's makes the searcher go into tuner.pkl whole: NSGA-II's thread
    lock must not stop the experiment as it starts."""
    optuna = __import__("pytest").importorskip("optuna")
    from raytuner.search import OptunaSearcher

    storage = ExperimentStorage(tmp_path / "exp")
    storage.create()
    searcher = OptunaSearcher({"x": uniform(0, 1)}, sampler=optuna.samplers.NSGAIISampler(seed=0))
    scheduler = ASHAScheduler(max_resource=9)
    components.setup_components(searcher, None, 4, Objectives.of(TWO, "min"), scheduler)
    first = searcher.suggest("00000")
    meta = {"name": "exp", **components.save(storage, SimpleNamespace(metric=TWO, mode="min", num_trials=4),
                                             searcher, scheduler)}
    assert meta["searcher_config"] is None  # pickled whole
    _, rebuilt, _ = components.load(storage, meta)
    rebuilt.on_trial_complete("00000", Outcome(TrialEnd.COMPLETED, (0.5, 3.0)))
    assert rebuilt._study.sampler is rebuilt._sampler and len(rebuilt._study.trials) == 1
    assert rebuilt._study.trials[0].params == first and rebuilt.suggest("00001") is not None
