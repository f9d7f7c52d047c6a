"""The live view and ``fit()``'s closing summary (:mod:`raytuner._driver.progress`) name the
best trial and the Pareto front by :mod:`raytuner._best`, as Results does: in the
experiment's ``best_scope``, never a FAILED trial while another has a value. Driven with
synthetic trial records (no Ray)."""

from __future__ import annotations

import io

import pytest

from raytuner._best import best_trial, pareto_front
from raytuner._driver.progress import Progress
from raytuner._objectives import Objectives
from raytuner._trial import Trial, TrialStatus

#: acc by report (mode max): "steady" ends best (scope last), "peak" had the best report
#: (scope all), "fails" reported the highest value of all, then raised.
ACC = {"00000": ([0.5, 0.6, 0.7], "COMPLETED"), "00001": ([0.98, 0.1, 0.1], "COMPLETED"),
       "00002": ([0.99], "FAILED")}


def _single() -> dict[str, Trial]:
    trials = {}
    for trial_id, (values, status) in ACC.items():
        trial = trials[trial_id] = Trial(trial_id, {"kind": trial_id}, status=TrialStatus(status))
        for it, acc in enumerate(values, 1):
            trial.observe(it, it, {"acc": acc}, -acc, 0.1 * it)
    return trials


@pytest.mark.parametrize("scope, best, value", [("last", "00000", "0.7"), ("all", "00001", "0.98")])
def test_the_live_line_header_and_summary_name_the_best_trial_of_the_scope(scope, best, value):
    trials = _single()
    assert best_trial(trials.values(), "acc", "max", scope).trial_id == best  # as Results has it
    out = io.StringIO()
    progress = Progress(trials, name="exp", metric="acc", mode="max", total=3, stream=out, scope=scope)
    assert f"best acc={value} (trial {best})" in progress.line()
    assert f"best acc={value} (trial {best})" in progress.header()
    assert [t.trial_id for t in progress._ranked()][0] == best
    progress.close()
    rows = [line.split() for line in out.getvalue().splitlines() if line.strip().startswith("000")]
    assert rows[0][:2] == [best, "COMPLETED"] and rows[0][3] == value  # the closing table, best first
    assert rows[-1][:2] == ["00002", "FAILED"]  # a failed trial follows every trial with a value


#: Two objectives, both minimised, scope "all": a's first report (0.01, 15) is on the front
#: (its last is NaN) with b; it dominates c (0.3, 20) and both of d's. The front of the last
#: reports would be b, c and d.
REPORTS = {"00000": [(0.01, 15), (float("nan"), 15)], "00001": [(0.5, 10)], "00002": [(0.3, 20)],
           "00003": [(0.05, 50), (0.2, 30)]}


def _multi() -> dict[str, Trial]:
    objectives = Objectives.of(["loss", "size"], "min")
    trials = {}
    for trial_id, reports in REPORTS.items():
        trial = trials[trial_id] = Trial(trial_id, {"kind": trial_id}, status=TrialStatus.COMPLETED)
        for it, (loss, size) in enumerate(reports, 1):
            metrics = {"loss": loss, "size": size}
            trial.observe(it, it, metrics, objectives.signed(metrics), 0.1 * it)
    return trials


def test_the_summary_counts_the_front_of_the_scope_with_the_points_that_put_trials_on_it():
    trials = _multi()
    rows = {tid: [{"iteration": it, "loss": loss, "size": size} for it, (loss, size) in enumerate(reports, 1)]
            for tid, reports in REPORTS.items()}
    expected = pareto_front(trials.values(), Objectives.of(["loss", "size"], "min"), "all",
                            reports=lambda t: rows[t.trial_id])
    assert sorted(m.trial.trial_id for m in expected) == ["00000", "00001"]
    out = io.StringIO()
    progress = Progress(trials, name="exp", metric=["loss", "size"], mode="min", total=4, stream=out, scope="all")
    assert "Pareto front: 2 trials (loss, size)" in progress.line()
    assert [t.trial_id for t in progress._ranked()][:2] == [m.trial.trial_id for m in expected]
    progress.close()
    table = {line.split()[0]: line.split() for line in out.getvalue().splitlines() if line.strip().startswith("000")}
    assert table["00000"][3:5] == ["0.01", "15"]  # the report that put it on the front, not its last (nan)
    assert table["00003"][3:5] == ["0.2", "30"]  # off the front: its last report
    last = Progress(trials, name="exp", metric=["loss", "size"], mode="min", total=4, stream=io.StringIO())
    assert "Pareto front: 3 trials" in last.line()
    assert sorted(t.trial_id for t in last._ranked()[:3]) == ["00001", "00002", "00003"]  # scope "last"


def test_the_run_time_shown_counts_the_earlier_runs_and_the_budgets_end_is_said():
    out = io.StringIO()
    progress = Progress(_single(), name="exp", metric="acc", mode="max", total=5, stream=out, ran_before=3600)
    assert progress.line().endswith(" | 3600s") and progress.header()[0].endswith(", 3600s")
    progress.budget_reached(3600.4, 2, "raytuner resume /r/exp")
    assert out.getvalue() == ("[raytuner] exp: time budget reached after 3600 s of run time: its running trials are "
                              "stopped; 2 trials never started: `raytuner resume /r/exp --time-budget SECONDS` runs "
                              "them with a larger budget.\n")
