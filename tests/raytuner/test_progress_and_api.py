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
    empty = io.StringIO()
    Progress({}, name="exp", metric="loss", mode="min", total=10, stream=empty).update(force=True)
    assert empty.getvalue().startswith("[raytuner] exp: 0/10 trials | ")  # no "()" before the first trial


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


def test_raytuners_warnings_inside_trials_are_shown_once_each_and_not_when_silent():
    out = io.StringIO()
    progress = Progress(_trials(), name="exp", metric="loss", mode="min", total=None, stream=out)
    progress.trial_warned("00001", [("Trial %s: pass initial_epoch", "Trial 00001: pass initial_epoch"),
                                    ("a pause without a checkpoint", "a pause without a checkpoint")])
    progress.trial_warned("00002", [("Trial %s: pass initial_epoch", "Trial 00002: pass initial_epoch")])
    assert out.getvalue().splitlines() == [
        "[raytuner] Trial 00001: pass initial_epoch",
        "[raytuner]   (not shown again for other trials; each trial's log has its own: raytuner logs exp 00001)",
        "[raytuner] trial 00001: a pause without a checkpoint",
        "[raytuner]   (not shown again for other trials; each trial's log has its own: raytuner logs exp 00001)"]
    quiet = io.StringIO()
    Progress(_trials(), name="exp", metric="loss", mode="min", total=None, stream=quiet,
             verbose=0).trial_warned("00001", [("w", "w")])
    assert quiet.getvalue() == ""


def test_public_namespace_is_sorted_and_complete():
    assert rt.__all__ == sorted(rt.__all__)
    for name in rt.__all__:
        assert hasattr(rt, name), name
    for name in ("Tuner", "report", "get_checkpoint", "load", "loguniform", "choice", "grid", "Results"):
        assert name in rt.__all__


def test_live_header_is_short_lines_with_rungs_in_words_and_constants_once():
    from raytuner._driver.progress import explain

    trials = {}
    for i in range(12):
        trial = Trial(f"{i:05d}", {"lr": 0.001 * (i + 1), "units": 64, "max_epochs": 27}, status=TrialStatus.RUNNING)
        trial.observe(1, 1, {"val_loss": 0.5 / (i + 1)}, 0.5 / (i + 1), 0.1)
        trials[trial.trial_id] = trial
    progress = Progress(trials, name="keras_digits_20261128-032042", metric="val_loss", mode="min", total=30,
                        describe=lambda: "rungs 1:30 3:17 9:13")
    progress.update(force=True)
    header = progress.header()
    assert all(len(line) <= 80 for line in header), header  # no wrapping at 80 or 100 columns
    assert "ASHA rungs: 30 trials reached 1, 17 reached 3, 13 reached 9" in header
    assert "same in every trial: units=64, max_epochs=27" in header
    assert "| ASHA rungs: 30 trials reached 1, 17 reached 3, 13 reached 9 |" in progress.line()  # not a tty
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=100).print(progress._table())
    assert "max_epochs" not in out.getvalue() and "units=" not in out.getvalue() and "lr=0.012" in out.getvalue()
    assert explain("rungs 1:3 | 3:1") == "scheduler: rungs 1:3 | 3:1"  # brackets: shown as they are


def test_the_end_table_shows_a_trials_strings_as_written_never_as_rich_markup():
    trials = {}
    for tid, act, loss in [("00000", "[bold]relu[/bold]", 0.5), ("00001", "tanh", 0.4)]:
        trial = Trial(tid, {"act": act, "n": int(tid)}, status=TrialStatus.COMPLETED)
        trial.observe(1, 1, {"[red]loss": loss}, loss, 0.1)
        trials[tid] = trial
    out = io.StringIO()
    Progress(trials, name="e", metric="[red]loss", mode="min", total=None, stream=out).close()
    text = out.getvalue()
    assert "act=[bold]relu[/bold]" in text and "top trials by [red]loss" in text, text
