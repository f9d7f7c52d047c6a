"""The driver the crash harness kills (test_crash_harness.py): it starts one experiment, or
resumes it if the folder already holds one, on the Ray cluster named by RAY_ADDRESS.

Usage: python harness_driver.py EXPERIMENT_FOLDER EVERY [STEP_S [BALLAST]]

EVERY: the trainable checkpoints at every EVERY-th report (0: never); a trailing ``+`` (``1+``)
also turns off the worker's store throttle, so every checkpoint is stored and the driver
prunes each one (with it on, these fast trials store about one a second). ``pbt``: a PBT
population instead (:func:`member`), checkpointing every report, whose exploits copy
checkpoints between trials and restart clones from them with mutated configs. ``hyperband``:
checkpoints at every report, under Hyperband (one bracket: all three pause at its milestone,
the best one goes on). ``mo``: checkpoints at every report, two objectives (``loss`` and
``size``, :func:`size`) under ASHA's promotion variant, which pauses trials at its rungs and
ranks them by Pareto order. ``bucket``: checkpoints at every report, and the experiment in
S3 (EXPERIMENT_FOLDER is its URI; :func:`in_bucket`). ``control``: the
trials checkpoint every report and steer their own experiment at fixed points (:data:`PLAN`),
with control commands written as ``raytuner control`` writes them. STEP_S: seconds per
step (default 0.02). BALLAST: bytes of filler in each checkpoint (default 0), to fill a
small disk. Every report's metric is a pure function of (config, step), so a test
can check each row of the history against what the trainable computes at that step. With
RAYTUNER_FAULT_AFTER_WRITES set, the process dies (or its disk fills up) at that write; it
prints ``WRITES <n>`` if it gets to the end. With HARNESS_MLFLOW (a tracking URI) the run and
its resumes log to MLflow, in batches sent only at each trial's end (:func:`callbacks`); with
HARNESS_TENSORBOARD set, to TensorBoard (the default logger, off otherwise here).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import raytuner as rt
from raytuner._driver import run_clock
from raytuner._storage import faults

#: The driver records its run time in experiment.json every 5 s; a run here takes a few
#: seconds, so it does it every quarter second instead, and a kill meets those writes too
#: (HARNESS_RUN_TIME_EVERY_S: a test whose kill point counts writes to land inside a trial's
#: run asks for the driver's own cadence, as these writes come at times, not at events).
run_clock.RUN_TIME_EVERY_S = float(os.environ.get("HARNESS_RUN_TIME_EVERY_S", "0.25"))

STEPS = 5
TRIALS = 3
#: The PBT population's trials and budget: 4 members on 2 slots, perturbed every 2 steps.
PBT_TRIALS = 4
PBT_STEPS = 6
#: The control kind's commands: (trial, after its report at step) -> the command it sends, once
#: per experiment (a marker file in the experiment's folder, holding the command's id, says it
#: was sent). A trial that stopped itself, or ended the experiment, then holds until the
#: driver's stop reaches its worker (:func:`await_stop`), so it never finishes first; the limits
#: give the experiment a 4th trial, run alone, which ends the experiment.
PLAN = {("00000", 2): ("stop_trial", {"trial_id": "00000"}),
        ("00001", 2): ("set_limits", {"num_trials": 4, "max_concurrent": 1}),
        ("00003", 2): ("end_experiment", {})}
CONTROL_TRIALS = 4
SENT = "harness_sent_"


def value(x: float, step: int) -> float:
    """What the trainable reports at ``step``: a pure function of the config and the step."""
    return (x - 0.3) ** 2 + 1.0 / step + 0.01 * step


def size(x: float, step: int) -> float:
    """The ``mo`` kind's second objective at ``step``: it trades off against ``loss`` (a
    smaller x costs less), a pure function of the config and the step."""
    return x + 0.05 * step


def pbt_value(prev: float, x: float, step: int) -> float:
    """A PBT member's loss at ``step``: a pure function of its state before the step (what its
    checkpoint held), the config in effect and the step."""
    return 0.8 * prev + (x - 0.3) ** 2 + 0.01 * step


def train(config):
    step = 0
    restored = rt.get_checkpoint()
    if restored is not None:
        step = int((Path(restored) / "step").read_text())
    while step < STEPS:
        step += 1
        time.sleep(config["step_s"])
        checkpoint = None
        if config["every"] and step % config["every"] == 0:
            checkpoint = Path(tempfile.mkdtemp())
            (checkpoint / "step").write_text(str(step))
            (checkpoint / "ballast").write_bytes(b"\0" * config["ballast"])
        metrics = {"loss": value(config["x"], step), "step": step}
        if config.get("mo"):
            metrics["size"] = size(config["x"], step)
        rt.report(metrics, checkpoint=checkpoint)
        if config.get("steer") and steer(step):
            await_stop()


def steer(step: int) -> bool:
    """Send this trial's command at ``step`` (:data:`PLAN`), if not sent yet, and wait for the
    driver's answer; whether it ends this trial."""
    from raytuner._storage.control import control_store

    context = rt.get_context()
    planned = PLAN.get((context.trial_id, step))
    if planned is None:
        return False
    folder = Path(context.trial_dir).parent.parent
    try:
        marker = os.open(folder / f"{SENT}{context.trial_id}_{step}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False  # sent by an earlier run: never twice
    store = control_store(folder)
    sent = store.submit(*planned, origin="harness")  # the live run's id, as `raytuner control` does
    os.write(marker, sent.id.encode())
    os.close(marker)
    deadline = time.monotonic() + 60
    while (entry := store.outcome(sent.id)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return planned[0] in ("stop_trial", "end_experiment") and entry is not None and entry["accepted"]


def await_stop(deadline_s: float = 60.0) -> None:
    """Hold this trial until a decision that ends it reaches its worker (the next report then
    ends it). A driver killed before it sends the stop takes this worker down with it."""
    from raytuner._worker import session

    run = session.current()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with run._cond:
            if run._pending is not None or run._ended is not None:
                return
        time.sleep(0.02)  # polls a condition, with a deadline


def member(config):
    """A PBT member: each report's loss follows from the state its last checkpoint held
    (``prev``), so a clone's rows continue its donor's state under the clone's config."""
    step, prev = 0, 1.0
    restored = rt.get_checkpoint()
    if restored is not None:
        step, prev = int((Path(restored) / "step").read_text()), float((Path(restored) / "loss").read_text())
    while step < PBT_STEPS:
        step += 1  # no pacing: synchronous PBT exploits at every barrier, whatever the order of reports
        loss = pbt_value(prev, config["x"], step)
        checkpoint = Path(tempfile.mkdtemp())
        (checkpoint / "step").write_text(str(step))
        (checkpoint / "loss").write_text(repr(loss))
        rt.report({"loss": loss, "prev": prev, "x_used": config["x"], "step": step}, checkpoint=checkpoint)
        prev = loss


def callbacks() -> list:
    """An MLflowCallback where HARNESS_MLFLOW names a store: its batches wait for a trial's
    end (after its first report), so a kill finds reports MLflow has not been sent."""
    if not os.environ.get("HARNESS_MLFLOW"):
        return []
    from raytuner.tracking import MLflowCallback

    return [MLflowCallback(tracking_uri=os.environ["HARNESS_MLFLOW"], flush_every_s=3600)]


#: The bucket kind's seconds between two upload passes (the default is 1): passes run nearly
#: all the time, so a kill meets them in each of their phases.
UPLOAD_INTERVAL_S = 0.05


def in_bucket(uri: str, step_s: float) -> None:
    """The ``bucket`` kind: checkpoints at every report, the experiment in S3 at ``uri`` (the
    workers put their checkpoints there, the driver's uploader the rest). A resume from the
    bucket alone when it holds the experiment (a test gives each driver a fresh cache, as a
    new head has)."""
    from raytuner._storage import remote, uploader

    uploader.Uploader.__init__.__defaults__ = (UPLOAD_INTERVAL_S,)
    fs, root = remote.filesystem(uri)
    if fs.exists(f"{root}/experiment.json"):
        rt.Tuner.resume(uri, train, verbose=0, tensorboard=False)
    else:
        space = {"x": rt.uniform(0, 1), "every": 1, "step_s": step_s, "ballast": 0}
        parent, _, name = uri.rpartition("/")
        rt.Tuner(train, space=space, metric="loss", num_trials=TRIALS, max_concurrent=2, storage_path=parent,
                 name=name, verbose=0, seed=11, tensorboard=False).fit()
    print(f"WRITES {faults.writes()}", flush=True)


def main(folder: Path, every: str, step_s: float, ballast: int) -> None:
    tensorboard = bool(os.environ.get("HARNESS_TENSORBOARD"))
    if (folder / "experiment.json").is_file():
        rt.Tuner.resume(folder, member if every == "pbt" else train, verbose=0, tensorboard=tensorboard,
                        callbacks=callbacks())
    elif every == "control":
        space = {"x": rt.uniform(0, 1), "every": 1, "step_s": step_s, "ballast": 0, "steer": True}
        rt.Tuner(train, space=space, metric="loss", num_trials=TRIALS, max_concurrent=2, storage_path=folder.parent,
                 name=folder.name, verbose=0, seed=11, tensorboard=False).fit()
    elif every == "hyperband":
        # One bracket of 3 (R = 5, eta = 3): all pause at report 2, the best goes on to 5.
        space = {"x": rt.uniform(0, 1), "every": 1, "step_s": step_s, "ballast": 0}
        rt.Tuner(train, space=space, metric="loss", scheduler=rt.HyperbandScheduler(max_resource=STEPS),
                 num_trials=TRIALS, max_concurrent=2, storage_path=folder.parent, name=folder.name, verbose=0,
                 seed=11, tensorboard=False).fit()
    elif every == "mo":
        space = {"x": rt.uniform(0, 1), "every": 1, "step_s": step_s, "ballast": 0, "mo": True}
        asha = rt.ASHAScheduler(max_resource=STEPS, reduction_factor=2, variant="promotion")
        rt.Tuner(train, space=space, metric=["loss", "size"], scheduler=asha, num_trials=TRIALS, max_concurrent=2,
                 storage_path=folder.parent, name=folder.name, verbose=0, seed=11, tensorboard=False).fit()
    elif every == "pbt":
        pbt = rt.PBTScheduler(perturbation_interval=2, mutations={"x": rt.uniform(0, 1)}, max_resource=PBT_STEPS,
                              synch=True, seed=3)
        rt.Tuner(member, space={"x": rt.uniform(0, 1)}, metric="loss", scheduler=pbt,
                 num_trials=PBT_TRIALS, max_concurrent=2, storage_path=folder.parent, name=folder.name, verbose=0,
                 seed=11, checkpoints_to_keep=1, tensorboard=False).fit()
    else:
        space = {"x": rt.uniform(0, 1), "every": int(every.rstrip("+")), "step_s": step_s, "ballast": ballast}
        rt.Tuner(train, space=space, metric="loss",
                 num_trials=TRIALS, max_concurrent=2, storage_path=folder.parent, name=folder.name, verbose=0,
                 seed=11, tensorboard=tensorboard, callbacks=callbacks(),
                 checkpoint_interval_s=0 if every.endswith("+") else None).fit()
    print(f"WRITES {faults.writes()}", flush=True)


if __name__ == "__main__":
    if sys.argv[2] == "bucket":
        in_bucket(sys.argv[1], float(sys.argv[3]) if len(sys.argv) > 3 else 0.02)
    else:
        main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.02,
             int(sys.argv[4]) if len(sys.argv) > 4 else 0)
