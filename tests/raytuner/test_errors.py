"""One error tree for raytuner, raytuner.search and raytuner.schedulers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import raytuner as rt
from raytuner import errors
from raytuner.errors import (
    ConfigError,
    ExperimentError,
    ProtocolError,
    ReportError,
    ResourceError,
    invalid,
    is_fatal,
)

ROOT = Path(__file__).resolve().parents[2]


def test_importing_errors_imports_neither_ray_nor_pandas_nor_numpy():
    code = "import sys, raytuner.errors; print(sorted({'ray', 'pandas', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("package", ["search", "schedulers"])
def test_components_raise_only_raytuner_errors(package):
    """No bare ValueError or RuntimeError: callers catch one tree, messages share a template."""
    bare = []
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                name = getattr(node.exc.func, "id", None)
                if name in ("ValueError", "RuntimeError", "Exception"):
                    bare.append(f"{path.name}:{node.lineno} raises {name}")
    # The one exception: hyperopt's Domain needs an objective, which ours never calls.
    assert [b for b in bare if "_hyperopt.py" not in b or "RuntimeError" not in b] == []


def test_the_one_template():
    error = invalid("ASHAScheduler", "brackets", 0, "an int >= 1", "Pass brackets=1.")
    assert isinstance(error, ConfigError) and isinstance(error, ValueError)
    assert str(error) == "ASHAScheduler: `brackets` is 0, but must be an int >= 1. Pass brackets=1."
    with pytest.raises(ConfigError, match=r"^RandomSearcher: `seed` is -1, but must be .* Pass e.g. seed=0"):
        rt.RandomSearcher(seed=-1)
    with pytest.raises(ConfigError, match=r"^HyperOptSearcher: `gamma` is 2, but must be in \(0, 1\]. Pass gamma"):
        rt.HyperOptSearcher(gamma=2)
    with pytest.raises(ConfigError, match=r"^MedianStoppingScheduler: `grace_period` is -1, but must be"):
        rt.MedianStoppingScheduler(grace_period=-1)


def test_contract_violations_are_protocol_errors():
    with pytest.raises(ProtocolError, match=r"setup\(\) must be called before suggest\(\)"):
        rt.GridSearcher({"x": rt.grid([1, 2])}).suggest("00000")


@pytest.mark.parametrize(
    ("error", "fatal"),
    [
        (ReportError("metric missing"), True),
        (ResourceError.not_increasing("ASHAScheduler", "3", "epoch", 2, 1), True),
        (ConfigError("bad"), False),
        (ExperimentError("gone"), False),
        (ProtocolError("twice"), False),
        (ZeroDivisionError("the user's own bug"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_whether_an_error_ends_the_experiment_is_data(error, fatal):
    assert is_fatal(error) is fatal
    assert is_fatal(type(error)) is fatal
    assert is_fatal(type(error).__name__) is fatal  # as it crosses a process boundary


def test_a_users_class_of_the_same_name_is_not_taken_for_ours():
    assert not is_fatal("SomethingElse") and not is_fatal("invalid") and not is_fatal("Any")

    class ReportError(Exception):
        pass

    assert not is_fatal(ReportError())  # the instance's class decides, not its name


def test_resource_error_names_trial_attribute_values_and_fix():
    text = str(ResourceError.not_increasing("HyperbandScheduler", "00004", "epoch", 3, 3))
    assert text == (
        "HyperbandScheduler: trial '00004' reported resource 3 after 3 (resource_attr='epoch'); the resource "
        "must increase with every report. Report a growing counter (e.g. the epoch) as `epoch`, or pass "
        "resource_attr=None to count reports."
    )


def test_the_docstring_tree_lists_every_error_class():
    classes = [name for name, obj in vars(errors).items()
               if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__]
    assert all(name in errors.__doc__ for name in classes)
    assert sorted(classes) == sorted(["RayTunerError", "ConfigError", "ReportError", "ResourceError",
                                      "ProtocolError", "NotInTrialError", "ExperimentError", "StorageError", "CheckpointGoneError",
                                      "TrialsFailedError",
                                      "TrialStopped"])
