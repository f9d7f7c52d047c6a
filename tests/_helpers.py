"""What several test modules share: waiting on a condition, a Ctrl-C at a chosen report,
the mixed search space with its learning curve that the searchers' integration tests
tune, the spaces the searchers' unit tests encode, and a searcher driven one trial at a
time.

Import it as ``tests._helpers``: trial workers find it the way they find the test modules
(Ray puts the driver's working folder, the repository, on their path).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import raytuner as rt
from raytuner.search._domains import Range

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, *, timeout_s: float = 60.0, interval_s: float = 0.05,
             process: subprocess.Popen | None = None) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    Fails, naming ``what``, after ``timeout_s``, or as soon as ``process`` (one the condition
    waits on, such as a driver in a subprocess) has ended.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit code {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def running(path: Path) -> bool:
    """Whether the experiment at ``path`` says it runs."""
    try:
        return json.loads((path / "experiment.json").read_text())["status"] == "RUNNING"
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def reported(path: Path, trial_id: str = "00000") -> bool:
    """Whether trial ``trial_id`` of the experiment at ``path`` has reported."""
    return (path / "trials" / trial_id / "results.jsonl").is_file()


class Steer(threading.Thread):
    """Runs ``script(path)`` beside a sweep that runs in the test's thread, once
    ``ready(path)`` holds (default: the experiment runs); keeps what went wrong, for the test
    to raise.

    As a context manager around the sweep: starts on entry; when the sweep has returned,
    waits up to ``join_s`` for the script and fails with its error."""

    def __init__(self, path: Path, script: Callable[[Path], Any], ready: Callable[[Path], bool] = running,
                 join_s: float = 30.0):
        super().__init__(daemon=True)
        self.path, self.script, self.ready, self.join_s, self.error = path, script, ready, join_s, None

    def __enter__(self) -> Steer:
        self.start()
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:  # else the sweep's own error is the test's failure
            self.join(self.join_s)
            assert self.error is None, self.error

    def run(self) -> None:
        try:
            wait_for(lambda: self.ready(self.path), "the experiment to be ready for the test's commands")
            self.script(self.path)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc


class InterruptAfter(rt.Callback):
    """Raises KeyboardInterrupt on the controller's thread after ``results`` reports, as a
    real Ctrl-C would (or ``raises``: SystemExit(15), as Ray's SIGTERM handler does)."""

    def __init__(self, results: int, raises: BaseException | type[BaseException] = KeyboardInterrupt):
        self.left = results
        self.raises = raises

    def on_trial_result(self, trial_id, result):
        self.left -= 1
        if self.left == 0:
            raise self.raises


#: Five parameters of every kind a searcher encodes: uniform, log-uniform, quantised,
#: integer and categorical.
MIXED = {
    "x": rt.uniform(-5, 5),
    "lr": rt.loguniform(1e-4, 1e-1),
    "units": rt.quniform(16, 128, 16),
    "layers": rt.randint(1, 4),
    "act": rt.choice(["relu", "tanh"]),
}


def curve(config):
    """A trainable over :data:`MIXED`: a learning curve falling towards a config-dependent
    floor, reported as a score to maximise over 9 epochs, and whether every config value
    arrived as a plain Python value of its type (``plain``)."""
    types = [("x", float), ("lr", float), ("units", int), ("layers", int), ("act", str)]
    plain = all(type(config[key]) is kind for key, kind in types)
    floor = (config["x"] - 1.3) ** 2 + (0.0 if config["act"] == "tanh" else 0.5)
    for epoch in range(1, 10):
        rt.report({"score": -(floor + 2.0 / epoch), "plain": int(plain)})


def fit_with_asha(searcher, storage: Path, num_trials: int):
    """Tune :func:`curve` over :data:`MIXED` with ``searcher`` under ASHA (R = 9, eta = 3), two
    trials at a time, and check what holds for every searcher: each trial completed or was
    stopped, its config arrived as plain values, and ASHA stopped some early. The results, and
    the trials ASHA stopped."""
    results = rt.Tuner(curve, space=MIXED, metric="score", mode="max", num_trials=num_trials, max_concurrent=2,
                       searcher=searcher, scheduler=rt.ASHAScheduler(max_resource=9, reduction_factor=3),
                       storage_path=storage, verbose=0, tensorboard=False).fit()
    assert all(t.status in (rt.TrialStatus.COMPLETED, rt.TrialStatus.STOPPED) for t in results.trials)
    assert all(t.metrics["plain"] == 1 for t in results.trials)
    stopped = [t for t in results.trials if t.resource < 9]
    assert stopped, f"ASHA must stop some of {num_trials} trials before max_resource=9"
    return results, stopped


#: A conditional space: a choice of dicts, one with a parameter of its own (sgd's
#: momentum), beside log-uniform, quantised, integer and categorical parameters and a constant.
CONDITIONAL = {
    "lr": rt.loguniform(1e-4, 1e-1),
    "units": rt.quniform(16, 256, 16),
    "layers": rt.randint(1, 4),
    "act": rt.choice(["relu", "tanh"]),
    "opt": rt.choice([{"name": "sgd", "momentum": rt.uniform(0, 0.99)}, {"name": "adam"}]),
    "epochs": 10,
}

#: Every kind of domain a searcher encodes, in one space: uniform, log-uniform, integer,
#: quantised (``drop``'s low lies off its grid: a range stored before quniform refused
#: that, as from_json rebuilds it), quantised log-uniform, a choice of dicts with a
#: conditional parameter, a choice of three strings, and a constant.
EVERY_KIND = {
    "x": rt.uniform(-5, 5),
    "lr": rt.loguniform(1e-4, 1e-1),
    "n": rt.randint(1, 4),
    "units": rt.quniform(16, 128, 16),
    "drop": Range(0.1, 1.0, q=0.25),
    "batch": rt.qloguniform(8, 512, 8),
    "opt": rt.choice([{"name": "sgd", "momentum": rt.uniform(0, 0.99)}, {"name": "adam"}]),
    "act": rt.choice(["relu", "tanh", "elu"]),
    "epochs": 5,
}


def run_serially(searcher, loss, n, start=0, outcome=None):
    """Suggest and complete trials ``start``, ..., ``start + n - 1`` one at a time (ids
    ``str(i)``), each ending ``outcome(loss(config))`` (default: COMPLETED with that value);
    the configs."""
    from raytuner.search import Outcome, TrialEnd

    configs = []
    for i in range(start, start + n):
        config = searcher.suggest(str(i))
        value = loss(config)
        searcher.on_trial_complete(str(i), outcome(value) if outcome else Outcome(TrialEnd.COMPLETED, value))
        configs.append(config)
    return configs


@contextlib.contextmanager
def tmpfs(folder: Path, size: str, *, options: str = "") -> Iterator[Path]:
    """A real small file system (tmpfs of ``size``, e.g. "1m") mounted at ``folder`` for the
    block, unmounted after. Skips the test where it cannot be had (not root, no mount)."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def start_ray_head(args: list[str], env: dict[str, str], on_failure: Callable[[subprocess.Popen], None]) -> subprocess.Popen:
    """``ray start --head --block ARGS`` in its own process group, returned once Ray says it is
    up; its output is drained from then on. Fails the test with that output otherwise
    (``on_failure`` cleans up first)."""
    import threading

    import pytest

    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", *args], env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in head.stdout:  # `ray start` says when the head is up
        output.append(line)
        if "Ray runtime started" in line:
            break
    else:
        on_failure(head)
        pytest.fail("a Ray head did not start:\n" + "".join(output[-30:]))
    threading.Thread(target=head.stdout.read, daemon=True).start()  # keep the pipe drained
    return head
