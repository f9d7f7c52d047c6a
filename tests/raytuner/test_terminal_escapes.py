"""A trial's strings (an exception's message, a config value, a metric or parameter name)
reach the terminal shown, never acted on: no escape sequence retitles or clears it, no
newline splits a line or a table row (no Ray)."""

from __future__ import annotations

import io
import types
from pathlib import Path

from raytuner import cli
from raytuner._display import terminal_text
from raytuner._driver import failures
from raytuner._driver.progress import Progress
from raytuner._storage.experiment import ExperimentStorage
from raytuner._trial import Trial, TrialStatus

ESC = "\x1b]0;HIJACKED\x07\x1b[2J\x1b[31mRED\x1b[0m\rOVER"
RAW = ("\x1b", "\x07", "\r", "\x00")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/home/u/train.py", line 10, in train\n    raise ValueError("bad " + ESC)\n'
    "ValueError: bad \x1b]0;HIJACKED\x07\x1b[2J\x1b[31mRED\x1b[0m\x00end\n"
)


def _raw(text: str) -> list[str]:
    return [char for char in RAW if char in text]


def test_terminal_text_shows_control_characters_as_escapes_and_keeps_unicode():
    assert terminal_text(ESC) == "\\x1b]0;HIJACKED\\x07\\x1b[2J\\x1b[31mRED\\x1b[0m\\rOVER"
    assert terminal_text("a\nb\tc\x00\x7f\x9b") == "a\\nb\\tc\\x00\\x7f\\x9b"
    assert terminal_text("évian 日本 ∞ — ✓") == "évian 日本 ∞ — ✓"
    assert terminal_text("abc\u202edef\u2028") == "abc\\u202edef\\u2028"  # reversed text, a line separator
    assert terminal_text("one\ntwo\x1b", newlines=True) == "one\ntwo\\x1b"
    assert terminal_text(5) == "5"


def _trials() -> dict[str, Trial]:
    ok = Trial("00000", {"tag": "line one\nline two" + ESC, "x" + ESC: 1})
    ok.observe(1, 1, {"loss" + ESC: 1.0, "loss": 0.5}, 0.5, 1.0)
    ok.status = TrialStatus.COMPLETED
    bad = Trial("00001", {"tag": ESC})
    bad.status = TrialStatus.FAILED
    bad.error = TRACEBACK
    return {"00000": ok, "00001": bad}


def test_progress_lines_and_table_show_a_trials_strings_escaped():
    trials = _trials()
    out = io.StringIO()
    progress = Progress(trials, name="esc", metric="loss", mode="min", total=2, verbose=2, stream=out)
    for trial in trials.values():
        progress.trial_ended(trial)
    progress.note("a note with " + ESC)
    progress.close()
    text = out.getvalue()
    assert _raw(text) == [], text
    assert "ValueError: bad \\x1b]0;HIJACKED\\x07\\x1b[2J" in text and "\\x00end" in text
    assert "a note with \\x1b]0;HIJACKED" in text
    assert "tag=line one\\nli" in text  # the config's newline does not split the row
    assert len([line for line in text.splitlines() if line.startswith("0000")]) == 1  # the completed trial only


def test_progress_metric_name_in_the_header_and_table_is_escaped():
    trials = _trials()
    out = io.StringIO()
    progress = Progress(trials, name="esc", metric="loss" + ESC, mode="min", total=2, stream=out)
    progress.update(force=True)
    progress.close()
    assert _raw(out.getvalue()) == [], out.getvalue()
    assert "loss\\x1b]0;HIJACKED" in out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_view_on_a_terminal_escapes_them_too():
    trials = _trials()
    out = _Terminal()
    progress = Progress(trials, name="esc", metric="loss", mode="min", total=2, verbose=2, stream=out)
    progress.start()
    try:
        for trial in trials.values():
            progress.trial_ended(trial)
        progress.update(force=True)
    finally:
        progress.close()
    text = out.getvalue()  # rich draws the live view with its own sequences; none of the trial's may pass
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x07" not in text and "\rOVER" not in text
    assert "\\x1b]0;HIJACKED\\x07\\x1b[2J" in text and "tag=line one\\nli" in text  # (rich wraps at 80)


def test_the_end_summary_of_failures_is_escaped(capsys, tmp_path):
    trials = list(_trials().values())
    results = types.SimpleNamespace(trials=trials, path=tmp_path, meta={"status": "STOPPED"})
    failures.finish(results, None, verbose=1)
    out = capsys.readouterr().out
    assert _raw(out) == [], out
    assert "1 of 2 trials failed" in out and "ValueError: bad \\x1b]0;HIJACKED" in out


def _experiment(root: Path) -> Path:
    storage = ExperimentStorage(root / "esc")
    storage.create()
    storage.write_experiment({"name": "esc", "metric": "loss", "mode": "min", "status": "COMPLETED",
                              "searcher": "GridSearcher", "scheduler": "FIFOScheduler()", "start_time": 1.7e9})
    for trial in _trials().values():
        storage.write_config(trial.trial_id, trial.config)
        if trial.error:
            storage.append_error(trial.trial_id, trial.error)
        storage.write_trial(trial.trial_id, trial.to_record())
    storage.append_results("00000", [{"iteration": 1, "loss": 0.5, "loss" + ESC: 1.0, "time_total_s": 1.0}])
    return storage.path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tables_headings_and_errors_show_control_characters_escaped(tmp_path, capsys):
    path = _experiment(tmp_path)
    for argv in (["show", str(path)], ["show", "--wide", str(path)], ["ls", str(tmp_path)],
                 ["ls", "--wide", str(tmp_path)]):
        code, out, err = _run(capsys, *argv)
        assert code == 0, err
        assert _raw(out + err) == [], (argv, out + err)
    code, out, _ = _run(capsys, "show", "--wide", str(path))
    assert "line one\\nline two" in out  # one row, the newline shown
    assert len([line for line in out.splitlines() if line.startswith("0000")]) == 2
    assert "x\\x1b]0;HIJACKED" in out and "loss\\x1b]0;HIJACKED" in out  # a parameter's and a metric's name
    assert "ValueError: bad \\x1b]0;HIJACKED" in out  # the failed trials' summary
    code, out, err = _run(capsys, "show", str(tmp_path / ("nowhere" + ESC)))
    assert code != 0 and _raw(out + err) == [] and "nowhere\\x1b]0;HIJACKED" in err
    code, out, err = _run(capsys, "best", "--full", str(path))
    assert code == 0 and _raw(out + err) == []  # JSON escapes them itself


def test_the_summary_after_a_cli_resume_is_escaped(tmp_path, capsys, monkeypatch):
    import raytuner as rt

    path = _experiment(tmp_path)
    odd = path.rename(path.with_name("esc\x1b]0;HIJACKED\x07"))  # a folder's name is the user's too
    monkeypatch.setattr(rt.Tuner, "resume", staticmethod(lambda *args, **kwargs: rt.load(odd)))
    code, out, err = _run(capsys, "resume", str(odd))
    assert code == 0, err
    assert _raw(out + err) == [] and "esc\\x1b]0;HIJACKED\\x07: COMPLETED" in out, out
    assert len(out.strip().splitlines()) == 2  # its own line break kept
