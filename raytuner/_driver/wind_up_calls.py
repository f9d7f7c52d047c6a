"""The calls the driver makes in a trial worker's second concurrency group
(:data:`~raytuner._worker.actor.WIND_UP`, one thread): they run beside the one call of the
default group that each busy worker has out, which waits for its trial's news."""

from __future__ import annotations

from typing import Any, Mapping

from raytuner._worker.actor import WIND_UP


class WindUpCalls:
    """``hurry`` every busy worker as the run ends, ``stop_soon`` one trial's worker."""

    def __init__(self) -> None:
        self._unread: list[Any] = []  # stop_soon's calls: answers nobody waits for

    def stop_soon(self, worker: Any, trial_id: str) -> None:
        """The trial's next report is its last (a StopTrial; see ``TrialWorker.stop_soon``)."""
        import ray

        # The answers already in are read, so that a worker that died meanwhile (its
        # trial's own call says so) leaves no unread error behind.
        if self._unread:
            done, self._unread = ray.wait(self._unread, num_returns=len(self._unread), timeout=0)
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    pass
        self._unread.append(worker.stop_soon.options(concurrency_group=WIND_UP).remote(trial_id))

    @staticmethod
    def hurry(busy: Mapping[str, Any], timeout_s: float) -> dict[str, int]:
        """Reports held back by the checkpoint throttle go out now: for each busy worker's
        trial, the iteration of the last report it made (0: none, no answer within
        ``timeout_s``, or its worker is gone). The trials train on meanwhile."""
        import ray

        hurried = {trial_id: worker.hurry.options(concurrency_group=WIND_UP).remote()
                   for trial_id, worker in busy.items()}
        done, _ = ray.wait(list(hurried.values()), num_returns=len(hurried), timeout=timeout_s)
        reported: dict[str, int] = {}
        for trial_id, ref in hurried.items():
            try:
                reported[trial_id] = ray.get(ref) if ref in done else 0
            except ray.exceptions.RayError:  # its worker is gone: its answer on the way says so
                reported[trial_id] = 0
        return reported
