"""The Keras callback with several objectives (no Ray): every objective in each report,
a constant such as the parameter count through ``extra_metrics``, and clear errors when
an objective is missing or a name is given twice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from raytuner import keras as rtk  # noqa: E402
from raytuner.errors import ConfigError, ReportError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_keras import ScriptedRun, Spec, drive, fit, make_model, trial  # noqa: E402,F401 - trial: a fixture


def test_extra_metrics_report_a_constant_objective_beside_the_logs(trial):
    run = trial(spec=Spec(metric=["val_loss", "params"]))
    model = make_model()
    fit(model, rtk.ReportCallback(extra_metrics=lambda m: {"params": m.count_params()}), epochs=2)
    assert [r["params"] for r in run.reports] == [model.count_params()] * 2 == [65] * 2
    assert {"val_loss", "loss", "epoch", "params"} <= set(run.reports[0])


def test_a_missing_objective_says_how_to_add_it(trial):
    trial(spec=Spec(metric=["val_loss", "params"]))
    with pytest.raises(ReportError, match=r"The Tuner has 2 objectives, metric=\['val_loss', 'params'\].*without "
                                          r"'params'.*ReportCallback\(extra_metrics=lambda model: \{'params': \.\.\.\}\)"):
        drive(rtk.ReportCallback(), make_model(), epochs=1)


def test_extra_metrics_must_be_a_function_returning_new_names(trial):
    with pytest.raises(ConfigError, match=r"`extra_metrics` is 3, but must be a function model -> \{name: number\}"):
        rtk.ReportCallback(extra_metrics=3)
    trial()
    with pytest.raises(ReportError, match=r"extra_metrics returned \['loss'\], which the epoch's logs already hold"):
        drive(rtk.ReportCallback(extra_metrics=lambda m: {"loss": 1.0}), make_model(), epochs=1)
    with pytest.raises(ReportError, match=r"extra_metrics returned \['epoch'\], which the report already holds "
                                          r"\(ReportCallback adds 'epoch' itself: the epoch's number, from 1\)"):
        drive(rtk.ReportCallback(extra_metrics=lambda m: {"epoch": 7}), make_model(), epochs=1)
    with pytest.raises(ReportError, match=r"extra_metrics returned int 65, not a dict"):
        drive(rtk.ReportCallback(extra_metrics=lambda m: m.count_params()), make_model(), epochs=1)
