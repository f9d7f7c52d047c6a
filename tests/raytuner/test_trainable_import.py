"""`raytuner resume` imports the experiment's trainable by the name it recorded, also when
its module is not on the path of the process that resumes (the console script's folder is,
not the folder the sweep was run from): from the module's recorded file, else the current
folder (no Ray)."""

from __future__ import annotations

import sys

import pytest

from raytuner._driver.resume import import_trainable, trainable_file
from raytuner.errors import ConfigError

SOURCE = "def train(config):\n    return {'loss': config['x']}\n"


@pytest.fixture
def forget(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # what an import adds goes with the test
    yield
    for name in [n for n in sys.modules if n.startswith("rt_resume_mod")]:
        del sys.modules[name]


def test_a_module_beside_the_sweeps_script_is_imported_from_its_recorded_file(tmp_path, forget):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "rt_resume_mod_a.py").write_text(SOURCE)
    meta = {"trainable": "pkg.rt_resume_mod_a:train", "trainable_file": str(tmp_path / "pkg" / "rt_resume_mod_a.py")}
    train = import_trainable(meta)
    assert train({"x": 2}) == {"loss": 2} and str(tmp_path) in sys.path
    assert trainable_file(train) == meta["trainable_file"]  # what a new experiment records
    del sys.modules["pkg"], sys.modules["pkg.rt_resume_mod_a"]


def test_an_experiment_that_recorded_no_file_looks_in_the_current_folder(tmp_path, forget, monkeypatch):
    (tmp_path / "rt_resume_mod_b.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    assert import_trainable({"trainable": "rt_resume_mod_b:train"})({"x": 3}) == {"loss": 3}


def test_a_module_found_nowhere_is_a_clear_error(tmp_path, forget, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"Cannot import 'rt_resume_mod_c' to find the trainable .* Pass it "
                                          r"explicitly, in Python: raytuner.Tuner.resume\('path', trainable=train\)"):
        import_trainable({"trainable": "rt_resume_mod_c:train"})


def test_a_trainable_defined_in_a_notebook_is_asked_for_by_the_python_call_that_passes_it():
    """A notebook's trainable is ``__main__`` with no script (``trainable_file`` None): the
    message said "defined in a script that is no longer at None"."""
    with pytest.raises(ConfigError, match=r"The trainable 'fit_mlp' was defined in a notebook or at the Python "
                                          r"prompt, where a resume cannot import it from\. Pass it explicitly, in "
                                          r"Python: raytuner\.Tuner\.resume\('/r/exp', trainable=fit_mlp\)\."):
        import_trainable({"trainable": "__main__:fit_mlp", "trainable_file": None}, "/r/exp")


@pytest.mark.parametrize("recorded, file, cli", [
    ("__main__:train", "/home/u/sweep.py", True), ("sweeps.train:run", None, True),
    ("__main__:train", None, False), ("__main__:<lambda>", "/home/u/sweep.py", False),
    ("sweeps:make.<locals>.train", "/home/u/sweeps.py", False), (None, None, False), (7, None, False)])
def test_the_resume_hint_is_the_cli_where_it_can_import_the_trainable_else_the_python_call(recorded, file, cli):
    from raytuner._display import cli_command, resume_hint

    hint = resume_hint("/r/exp", recorded, file)
    if cli:
        assert hint == cli_command("resume", "/r/exp")
    else:
        assert hint.startswith("raytuner.Tuner.resume('/r/exp', trainable=") and "(in Python: " in hint
    assert resume_hint("/r/exp", "__main__:fit_mlp", None) == (
        "raytuner.Tuner.resume('/r/exp', trainable=fit_mlp) (in Python: its trainable was defined in a notebook or "
        "at the Python prompt)")


ARGV_SCRIPT = ("import sys\nMODE = sys.argv[1] if len(sys.argv) > 1 else 'default'\n"
               "def train(config):\n    return {'mode': MODE, 'argv0': sys.argv[0]}\n")


@pytest.mark.parametrize("recorded, mode", [(["sweep.py", "fast"], "fast"), (None, "default")])
def test_a_script_is_imported_with_the_command_line_of_the_sweeps_first_run(tmp_path, forget, recorded, mode):
    script = tmp_path / "sweep.py"
    script.write_text(ARGV_SCRIPT)
    meta = {"trainable": "__main__:train", "trainable_file": str(script)}
    if recorded is not None:
        meta["argv"] = recorded
    before = list(sys.argv)
    train = import_trainable(meta)
    # Module-level code saw the sweep's own arguments, not `raytuner resume ...`'s; with none
    # recorded, the script alone, as `python sweep.py` would give it.
    assert train({})["mode"] == mode
    assert sys.argv == before
    sys.modules.pop("raytuner_resumed_script", None)
