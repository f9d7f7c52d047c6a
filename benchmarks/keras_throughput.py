"""Keras throughput: the same model's epochs inside raytuner, in warm processes, on Ray Tune.

Every run trains the same trials (an MLP on scikit-learn's digits; one model per trial,
seeded) 2 at a time, 1 CPU each, and counts epochs per second of wall time:

- warm standalone: 2 processes that have already imported TensorFlow and run one fit,
  each training half the trials back to back (the ceiling: no framework at all);
- cold standalone: the same, timed from starting the 2 processes, so each pays its
  interpreter start and TensorFlow import inside the time as a raytuner worker does (what
  two scripts run by hand cost);
- raytuner: ``rt.Tuner`` with ``rt.keras.ReportCallback()`` on its defaults (a report every
  epoch; a checkpoint where one is needed: under FIFO, the last epoch of each trial), and
  again with ``checkpoint=True`` (a checkpoint every epoch), timed from ``fit()`` to its
  return, worker start and TensorFlow import in each worker included (``keep_workers_s=0``:
  no warm workers from an earlier run, and none left holding the CPUs Ray Tune needs next);
- Ray Tune: ``tune.Tuner`` with a small callback calling ``tune.report`` each epoch (Ray's
  own Keras callbacks warn that they are deprecated inside Tune in Ray 2.60), with its
  default ``reuse_actors=False`` and with ``reuse_actors=True``.

Each also times every trial's ``model.fit`` call on its own (the epochs themselves, the
callbacks' reports and checkpoints included; not the import, the build or the time between
trials), so "inside fit" compares what a framework adds to each epoch with the same epochs
in the warm processes: the issue's "Keras epochs inside raytuner run at N% of the same
epochs by hand", apart from what each worker pays once (start, TensorFlow import).

Then the worker-reuse check: 20 trials one after another on one raytuner worker, each
recording the worker's resident memory (RSS) when it starts.

    python benchmarks/keras_throughput.py                    # 8 trials x 10 epochs
    python benchmarks/keras_throughput.py --trials 4 --epochs 5 --memory-trials 0
    python benchmarks/keras_throughput.py --trials 24 --memory-trials 0 --ray-tune-reuse true
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time

UNITS = 256
BATCH = 32


def _rss_mb(kind: str = "VmRSS") -> float:
    """Resident memory of this process in MiB: all of it (VmRSS) or its private part
    (RssAnon; VmRSS also counts pages of Ray's shared-memory object store it touched)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _data():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def train_one(seed: int, epochs: int, callbacks: list, restore: bool = False) -> tuple[int, float]:
    """Build, compile and fit one trial's model; return the epochs it trained and the
    seconds its ``fit`` took."""
    import keras

    (x, y), validation = _data()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(UNITS, activation="relu"),
        keras.layers.Dense(UNITS, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    initial_epoch = 0
    if restore:
        import raytuner as rt

        initial_epoch = rt.keras.restore(model)
    start = time.perf_counter()
    history = model.fit(x, y, validation_data=validation, batch_size=BATCH, epochs=epochs,
                        initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
    return len(history.history["loss"]), time.perf_counter() - start


def _fit_record(folder: str, seed: int, fit: tuple[int, float]) -> None:
    """Leave a trial's (epochs, fit seconds) in ``folder`` for the benchmark's process."""
    with open(os.path.join(folder, f"{seed}.fit"), "w") as f:
        f.write(f"{fit[0]} {fit[1]!r}")


def _fit_records(folder: str) -> tuple[int, float]:
    """The epochs and fit seconds the trials left in ``folder``, summed."""
    fits = [open(os.path.join(folder, name)).read().split() for name in os.listdir(folder) if name.endswith(".fit")]
    return sum(int(epochs) for epochs, _ in fits), sum(float(seconds) for _, seconds in fits)


# -- warm standalone processes -------------------------------------------------------------
def _standalone_worker(seeds, epochs, barrier, out) -> None:
    train_one(10_000, 1, [])  # warm: TensorFlow imported, runtime initialised, one fit done
    barrier.wait()
    fits = [train_one(seed, epochs, []) for seed in seeds]
    out.put((sum(done for done, _ in fits), sum(seconds for _, seconds in fits)))


def _cold_worker(seeds, epochs, barrier, out) -> None:
    fits = [train_one(seed, epochs, []) for seed in seeds]  # imports TensorFlow on the first
    out.put((sum(done for done, _ in fits), sum(seconds for _, seconds in fits)))


def run_standalone(num_trials: int, epochs: int, concurrency: int, warm: bool = True) -> tuple[int, float, float]:
    """Train the trials in ``concurrency`` fresh processes; time them from the barrier the
    warm ones reach after their import and first fit, or (``warm=False``) from their start.
    Return the epochs, the wall time and the seconds spent inside ``fit``."""
    # The same thread settings a 1-CPU Ray worker gets.
    os.environ["OMP_NUM_THREADS"] = "1"
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(concurrency + 1), ctx.Queue()
    target = _standalone_worker if warm else _cold_worker
    procs = [ctx.Process(target=target, args=(list(range(i, num_trials, concurrency)), epochs, barrier, out))
             for i in range(concurrency)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    if warm:
        barrier.wait()
        start = time.perf_counter()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    del os.environ["OMP_NUM_THREADS"]
    return sum(done for done, _ in results), wall, sum(seconds for _, seconds in results)


# -- raytuner -----------------------------------------------------------------------------
def raytuner_trainable(config):
    import raytuner as rt

    options = {} if config["checkpoint"] is None else {"checkpoint": config["checkpoint"]}
    callback = rt.keras.ReportCallback(**options)
    _fit_record(config["fits"], config["seed"], train_one(config["seed"], config["epochs"], [callback], restore=True))


def memory_trainable(config):
    import raytuner as rt

    rss, anon = _rss_mb(), _rss_mb("RssAnon")  # before this trial builds anything
    train_one(config["seed"], config["epochs"], [rt.keras.ReportCallback()], restore=True)
    rt.report({"rss_start_mb": rss, "anon_start_mb": anon, "rss_end_mb": _rss_mb(), "pid": os.getpid()})


def run_raytuner(num_trials: int, epochs: int, concurrency: int, root: str,
                 checkpoint: bool | str | None = None) -> tuple[int, float, float]:
    """``checkpoint``: the callback's argument; None leaves it at its default."""
    import raytuner as rt

    fits = root + "-fits"
    os.makedirs(fits)
    space = {"seed": rt.grid(list(range(num_trials))), "epochs": epochs, "checkpoint": checkpoint, "fits": fits}
    start = time.perf_counter()
    results = rt.Tuner(raytuner_trainable, space=space, metric="val_loss", max_concurrent=concurrency,
                       resources={"cpu": 1}, storage_path=root, verbose=0, keep_workers_s=0).fit()
    wall = time.perf_counter() - start
    assert not results.errors, results.errors
    epochs_fit, fit_s = _fit_records(fits)
    assert epochs_fit == num_trials * epochs, epochs_fit
    return sum(t.iteration for t in results.trials), wall, fit_s


def run_memory(num_trials: int, root: str) -> list[tuple[int, float, float, float]]:
    import raytuner as rt

    space = {"seed": rt.grid(list(range(num_trials))), "epochs": 2}
    results = rt.Tuner(memory_trainable, space=space, max_concurrent=1, resources={"cpu": 1},
                       storage_path=root, verbose=0, keep_workers_s=0).fit()
    assert not results.errors, results.errors
    rows = []
    for trial in results.trials:
        last = results.history(trial.trial_id).iloc[-1]
        rows.append((int(last["pid"]), float(last["rss_start_mb"]), float(last["anon_start_mb"]),
                     float(last["rss_end_mb"])))
    return rows


# -- Ray Tune -----------------------------------------------------------------------------
def tune_trainable(config):
    import keras
    from ray import tune

    class TuneReport(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            tune.report({**(logs or {}), "epoch": epoch + 1})

    _fit_record(config["fits"], config["seed"], train_one(config["seed"], config["epochs"], [TuneReport()]))


def run_ray_tune(num_trials: int, epochs: int, concurrency: int, root: str, reuse: bool) -> tuple[int, float, float]:
    from ray import tune

    fits = root + "-fits"
    os.makedirs(fits)
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(tune_trainable, {"cpu": 1}),
        param_space={"seed": tune.grid_search(list(range(num_trials))), "epochs": epochs, "fits": fits},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", max_concurrent_trials=concurrency,
                                    reuse_actors=reuse),
        run_config=tune.RunConfig(storage_path=root, verbose=0),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - start
    assert len(grid) == num_trials and not grid.errors, grid.errors
    return sum(int(r.metrics["training_iteration"]) for r in grid), wall, _fit_records(fits)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--memory-trials", type=int, default=20, help="trials of the RSS check (0 to skip)")
    parser.add_argument("--ray-tune-reuse", type=lambda text: [v == "true" for v in text.split(",") if v],
                        default=[False, True],
                        help="Ray Tune runs by reuse_actors: 'false,true' (default), 'true', or '' for none")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    load = os.getloadavg()[0]
    rows = [("warm standalone", *run_standalone(args.trials, args.epochs, args.concurrency)),
            ("cold standalone", *run_standalone(args.trials, args.epochs, args.concurrency, warm=False))]

    import ray

    ray.init(address="local", num_cpus=args.concurrency, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    with tempfile.TemporaryDirectory() as root:
        rows.append(("raytuner (defaults)", *run_raytuner(args.trials, args.epochs, args.concurrency,
                                                          os.path.join(root, "rt"))))
        rows.append(("raytuner (checkpoint=True)", *run_raytuner(args.trials, args.epochs, args.concurrency,
                                                                os.path.join(root, "rt-every"), True)))
        for reuse in args.ray_tune_reuse:
            label = f"Ray Tune (reuse_actors={reuse})"
            rows.append((label, *run_ray_tune(args.trials, args.epochs, args.concurrency,
                                              os.path.join(root, f"tune{reuse}"), reuse)))
        memory = run_memory(args.memory_trials, os.path.join(root, "mem")) if args.memory_trials else []
    ray.shutdown()

    print(f"{args.trials} trials x {args.epochs} epochs, {args.concurrency} at a time, 1 CPU each "
          f"(MLP {UNITS}x{UNITS} on digits, batch {BATCH}); load average at start {load:.1f}")
    warm, cold = (epochs / wall for _, epochs, wall, _ in rows[:2])
    warm_fit = rows[0][1] / rows[0][3]
    for label, epochs, wall, fit_s in rows:
        assert epochs == args.trials * args.epochs, (label, epochs)
        rate = epochs / wall
        print(f"  {label:<30} {wall:7.1f} s  {rate:6.2f} epochs/s  "
              f"{wall * args.concurrency / epochs:5.2f} s per epoch-slot  {rate / warm:6.1%} of warm  "
              f"{rate / cold:6.1%} of cold  | inside fit: {1000 * fit_s / epochs:6.1f} ms per epoch, "
              f"{epochs / fit_s / warm_fit:6.1%} of warm")
    if memory:
        pids = {row[0] for row in memory}
        print(f"worker memory at the start of each of {len(memory)} trials on {len(pids)} worker(s), MiB:")
        for label, column in (("RSS", 1), ("private (RssAnon)", 2)):
            values = [row[column] for row in memory]
            print(f"  {label}: " + " ".join(f"{v:.0f}" for v in values))
            print(f"    trial 2 -> {len(memory)}: {values[-1] - values[1]:+.1f} MiB "
                  f"({(values[-1] - values[1]) / (len(memory) - 2):+.2f} MiB/trial)")


if __name__ == "__main__":
    main()
