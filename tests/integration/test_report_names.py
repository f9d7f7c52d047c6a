"""On a real local Ray: a report under a name raytuner uses itself, and a `stop=` key no report
holds, fail the trial with a message that names the key and the fix, keeping what was reported."""

from __future__ import annotations

import pytest

import raytuner as rt
from raytuner import TrialStatus

pytestmark = pytest.mark.usefixtures("ray_cluster")


def reports_iteration(config):
    rt.report({"loss": 1.0})
    rt.report({"loss": 0.5, "iteration": 42})


def test_a_metric_named_iteration_fails_the_trial_and_the_views_agree_on_what_was_kept(storage):
    with pytest.raises(rt.ReportError, match=r"trial 00000 reported a metric named 'iteration', which is a column "
                                             r"raytuner writes .* e\.g\. 'iteration_'"):
        rt.Tuner(reports_iteration, space={"x": 1}, metric="loss", name="it", storage_path=storage, verbose=0).fit()
    results = rt.load(storage / "it")
    trial = results.trials[0]
    assert trial.status is TrialStatus.FAILED and "'iteration'" in trial.error
    assert list(results.history("00000")["iteration"]) == [1]
    assert list(results.dataframe()["iteration"]) == [1]


def val_every_other_report(config):
    for i in range(1, 7):
        rt.report({"loss": 1.0 / i, **({"val_acc": 0.2 * i} if i % 2 == 0 else {})})


def test_a_stop_key_reported_now_and_then_stops_the_trial_when_reached(storage):
    results = rt.Tuner(val_every_other_report, space={"x": 1}, metric="loss", stop={"val_acc": 0.8},
                       storage_path=storage, verbose=0).fit()
    assert results.trials[0].status is TrialStatus.COMPLETED and results.trials[0].iteration == 4


def test_a_stop_key_no_report_holds_fails_the_trial_once_it_ends_keeping_its_reports(storage):
    with pytest.raises(rt.ReportError, match=r"`stop` has a threshold for 'iteraton', but trial 00000 ended without "
                                             r"reporting it.*\['loss', 'val_acc'\]"):
        rt.Tuner(val_every_other_report, space={"x": 1}, metric="loss", stop={"iteraton": 2}, name="typo",
                 storage_path=storage, verbose=0).fit()
    results = rt.load(storage / "typo")
    assert results.trials[0].status is TrialStatus.FAILED
    assert list(results.history("00000")["iteration"]) == [1, 2, 3, 4, 5, 6]
