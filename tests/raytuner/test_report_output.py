"""Where the HTML report may be written: never over one of the experiment's own files, nor
over an existing file that is not an HTML page (no Ray)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import cli
from raytuner.errors import ConfigError

pytest.importorskip("plotly")

_spec = importlib.util.spec_from_file_location("_report_tests_output", Path(__file__).with_name("test_report.py"))
_report_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_report_tests)  # shares write_experiment; tests run only where collected
write_experiment = _report_tests.write_experiment


@pytest.fixture
def exp(tmp_path):
    return write_experiment(tmp_path, "exp", n=4)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name, why", [
    ("experiment.json", "one of its own files"),
    ("tuner.pkl", "one of its own files"),  # whether or not it exists: a file the experiment may write
    ("trials/00000/results.jsonl", "a file in its trials/ folder"),
    ("trials/00000/config.json", "a file in its trials/ folder"),
    ("trials/00000/page.html", "a file in its trials/ folder"),
    ("trials", "a file in its trials/ folder"),  # a folder: its report.html
    ("control/page.html", "one of its own files"),
])
def test_a_path_in_the_experiments_own_files_is_refused_and_nothing_changes(exp, name, why):
    before = _snapshot(exp)
    results = rt.load(exp)
    with pytest.raises(ConfigError) as error:
        results.report(exp / name)
    message = str(error.value)
    assert message.startswith("report: `path` is ") and why in message and "report.html" in message, message
    assert _snapshot(exp) == before


def test_an_existing_file_that_is_not_html_is_not_replaced(exp, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ConfigError, match="existing file, which the report would replace"):
        rt.load(exp).report(notes)
    assert notes.read_text() == "mine"
    link = tmp_path / "link.html"  # an .html name that leads to the experiment's record
    link.symlink_to(exp / "experiment.json")
    before = _snapshot(exp)
    with pytest.raises(ConfigError, match="one of its own files"):
        rt.load(exp).report(link)
    assert _snapshot(exp) == before


def test_html_pages_in_the_experiment_folder_or_elsewhere_are_written(exp, tmp_path):
    results = rt.load(exp)
    assert results.report() == exp / "report.html"
    assert results.report(exp) == exp / "report.html"  # a folder: its report.html
    assert results.report(exp / "second.htm").stat().st_size > 1e5
    old = tmp_path / "old.html"
    old.write_text("an older report")
    assert results.report(old) == old and old.stat().st_size > 1e5  # an older page is replaced
    assert results.report(tmp_path / "new_report").is_file()  # a new file: any name


def test_the_cli_refuses_it_as_a_usage_error(exp, capsys):
    before = _snapshot(exp)
    code = cli.main(["report", str(exp), "-o", str(exp / "experiment.json")])
    _, err = capsys.readouterr()
    assert code == 2 and "`path` is" in err and "one of its own files" in err, err
    code = cli.main(["report", str(exp), "-o", str(exp / "trials" / "00000" / "results.jsonl")])
    _, err = capsys.readouterr()
    assert code == 2 and "trials/ folder" in err, err
    assert _snapshot(exp) == before
    assert rt.load(exp).damaged is None
