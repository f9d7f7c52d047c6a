import io
import math

import raytuner as rt
from raytuner._driver.progress import Progress
from raytuner._trial import Trial, TrialStatus


def _trials():
    trials = {}
    for tid, status, loss in [("00000", TrialStatus.COMPLETED, 0.5), ("00001", TrialStatus.RUNNING, 0.2),
                              ("00002", TrialStatus.FAILED, None), ("00003", TrialStatus.STOPPED, math.nan)]:
        trial = Trial(tid, {"lr": 0.1}, status=status)
        if loss is not None:
            trial.observe(1, 1, {"loss": loss}, loss, 0.1)
        trials[tid] = trial
    return trials


def test_progress_line_counts_statuses_and_names_the_best_finite_trial():
    out = io.StringIO()
    progress = Progress(_trials(), name="exp", metric="loss", mode="min", total=10, stream=out)
    progress.update(force=True)
    line = out.getvalue().strip()
    assert line.startswith("[raytuner] exp: 4/10 trials (1 running, 1 completed, 1 stopped, 1 failed)")
    assert "best loss=0.2 (trial 00001)" in line


def test_progress_summary_table_and_silence():
    out = io.StringIO()
    progress = Progress(_trials(), name="exp", metric="loss", mode="min", total=None, stream=out)
    progress.close()
    text = out.getvalue()
    assert "top trials by loss" in text and "00001" in text and "00002" not in text  # failed: no value
    quiet = io.StringIO()
    silent = Progress(_trials(), name="exp", metric="loss", mode="min", total=None, stream=quiet, verbose=0)
    silent.start()
    silent.update(force=True)
    silent.close()
    assert quiet.getvalue() == ""


def test_public_namespace_is_sorted_and_complete():
    assert rt.__all__ == sorted(rt.__all__)
    for name in rt.__all__:
        assert hasattr(rt, name), name
    for name in ("Tuner", "report", "get_checkpoint", "load", "loguniform", "choice", "grid", "Results"):
        assert name in rt.__all__
