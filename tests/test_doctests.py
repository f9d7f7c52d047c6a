"""The ``>>>`` examples in docstrings run, in every module of raytuner, raytuner.search and
raytuner.schedulers that has them: an example that no longer works fails here.

Modules are imported by their installed names (search/ installs as raytuner.search), which
``--doctest-modules`` on the folders would not do. A module whose optional dependency is
missing (keras, mlflow, optuna) is skipped.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"raytuner": REPO / "raytuner", "raytuner.search": REPO / "search", "raytuner.schedulers": REPO / "schedulers"}


def _with_examples() -> list[str]:
    names = []
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            if ">>>" in path.read_text():
                parts = list(path.relative_to(folder).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                names.append(".".join([package, *parts]))
    return names


MODULES = _with_examples()


def test_the_modules_with_examples_are_found():
    assert {"raytuner._tuner", "raytuner.search._tpe", "raytuner.schedulers._asha"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra that is not installed
        pytest.skip(f"{name} needs {exc.name}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [test for test in finder.find(module, name) if test.examples]
    assert tests, f"{name} has '>>>' but no example doctest finds"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output above)"
