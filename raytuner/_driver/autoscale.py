"""Sweeps on autoscaling clusters: which node types could be launched, and asking for them.

Ray's autoscaler starts nodes for pending work, but a sweep must know before it starts
whether any node type can ever hold one of its trials, and how many trials it may run at
once. Both come from the autoscaler's own config, found where the autoscaler reads it:

- ``~/ray_bootstrap_config.yaml`` on a head started by ``ray up``;
- the ``--autoscaling-config`` of this cluster's autoscaler process (``ray start --head
  --autoscaling-config=...``, also Ray's fake multi-node provider), when the driver runs
  on the head.

Ray's state API (``ray.autoscaler.v2.sdk``) reports nodes alive or pending, but not the
node types that could be launched, so it cannot answer the question alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from raytuner._driver.resources import actor_bundle, cluster_nodes, describe, slots
from raytuner.errors import ConfigError

BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


@dataclass(frozen=True)
class NodeType:
    name: str
    resources: dict[str, float]
    max_workers: int


def _config_path() -> Path | None:
    from raytuner._driver.ray_init import local_ray_of_our_own

    if local_ray_of_our_own():  # started here beside a cluster: its autoscaler launches nothing for it
        return None
    bootstrap = Path(BOOTSTRAP_CONFIG).expanduser()
    if bootstrap.is_file():
        return bootstrap
    try:
        import ray  # first: Ray puts its own psutil on sys.path

        import psutil

        gcs = ray.get_runtime_context().gcs_address
    except Exception:
        return None
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if not any(part.endswith("monitor.py") for part in cmdline) or f"--gcs-address={gcs}" not in cmdline:
            continue
        for part in cmdline:
            if part.startswith("--autoscaling-config="):
                path = Path(part.partition("=")[2]).expanduser()
                return path if path.is_file() else None
    return None


def node_types(config_path: Path | None = None) -> list[NodeType] | None:
    """Worker node types the autoscaler may launch; None when the cluster has no autoscaler."""
    path = config_path or _config_path()
    if path is None:
        return None
    import yaml

    config = yaml.safe_load(path.read_text()) or {}
    head = config.get("head_node_type")
    limit = config.get("max_workers", math.inf)
    types = []
    for name, spec in (config.get("available_node_types") or {}).items():
        most = min(int(spec.get("max_workers", limit)), limit)
        if name != head and most > 0:
            types.append(NodeType(name, {k: float(v) for k, v in (spec.get("resources") or {}).items()}, most))
    return types


def describe_types(types: list[NodeType]) -> str:
    return "; ".join(f"{t.name} (up to {t.max_workers}): {_resources(t.resources)}" for t in types) or "none"


def _resources(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}"


class NodeRequest:
    """Asks the autoscaler for ``count`` trial bundles and says, for the live view, what the
    sweep still waits for. :meth:`release` withdraws the request, so that idle nodes can go."""

    def __init__(self, bundle: dict[str, float], count: int, types: list[NodeType],
                 slots_of: Callable[[list[Mapping[str, float]]], int]):
        self.bundle, self.count, self.types, self._slots_of = bundle, count, types, slots_of
        self._line: str | None = None
        self._checked = -math.inf

    def submit(self) -> None:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[self.bundle] * self.count)

    def release(self) -> None:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
        global active
        if active is self:
            active = None

    def waiting(self) -> str | None:
        """"waiting for nodes: 2 x gpu_worker" while the alive nodes hold fewer than the
        trials asked for; None once they hold them all. Checked at most every 2 s."""
        now = time.monotonic()
        if now - self._checked < 2.0:
            return self._line
        self._checked = now
        missing = self.count - self._slots_of(cluster_nodes())
        if missing <= 0:
            self._line = None
            return None
        wanted = []
        for node_type in self.types:
            per_node = self._slots_of([node_type.resources])
            if per_node > 0 and missing > 0:
                nodes = min(node_type.max_workers, math.ceil(missing / per_node))
                wanted.append(f"{nodes} x {node_type.name}")
                missing -= nodes * per_node
        self._line = f"waiting for nodes: {', '.join(wanted) or 'none launchable'}"
        return self._line


#: The request of the sweep running in this process (one ``fit`` at a time), for the view.
active: NodeRequest | None = None


def request_nodes(resources: Mapping[str, float], max_concurrent: int) -> NodeRequest | None:
    """On an autoscaling cluster, ask for the nodes ``max_concurrent`` trials need."""
    types = node_types()
    if not types:
        return None
    global active
    active = NodeRequest(actor_bundle(resources), max_concurrent, types, lambda nodes: slots(resources, nodes))
    active.submit()
    return active


def waiting() -> str | None:
    request = active
    return request.waiting() if request is not None else None


def launchable_slots(resources: Mapping[str, float], types: list[NodeType]) -> int:
    return sum(slots(resources, [t.resources]) * t.max_workers for t in types)


class Capacity:
    """How many trials of one shape the cluster can hold at once, to bound the workers a
    sweep starts: :func:`max_concurrency` when the run starts, looked up again (at most every
    :attr:`REFRESH_S`) while the workers fill it, as nodes may join a cluster later."""

    REFRESH_S = 10.0

    def __init__(self, resources: Mapping[str, float], count: int, clock: Callable[[], float] = time.monotonic):
        self.resources, self.count, self._clock = dict(resources), count, clock
        self._checked = clock()

    def room(self, used: int) -> int:
        """Workers that may still start, ``used`` being alive or starting."""
        if used >= self.count and self._clock() - self._checked >= self.REFRESH_S:
            self._checked = self._clock()
            self.count = max(self.count, slots(self.resources, cluster_nodes()))
        return max(0, self.count - used)


def max_concurrency(resources: Mapping[str, float]) -> int:
    """Trials the cluster can run at once, counting the nodes an autoscaler may still
    launch; a clear error if not even one fits on any node, alive or launchable."""
    nodes = cluster_nodes()
    count = slots(resources, nodes)
    types = node_types()
    if types:
        count += launchable_slots(resources, types)
    if count < 1:
        launchable = f"; node types the autoscaler may launch: {describe_types(types)}" if types is not None else ""
        msg = (
            f"`resources={dict(resources)}`: no node of the Ray cluster can run one trial "
            f"(alive nodes have {describe(nodes)}{launchable}). Ask for less, or add a node (type) that has it "
            "(for GPUs locally: ray.init(num_gpus=...))."
        )
        from raytuner._driver.ray_init import local_ray_of_our_own

        if local_ray_of_our_own() and Path(BOOTSTRAP_CONFIG).expanduser().is_file():
            msg += (f" This machine is a cluster's head ({BOOTSTRAP_CONFIG}), but the Ray here is one started for "
                    "this script alone: pass address='auto' (raytuner resume --address auto, or RAY_ADDRESS=auto) "
                    "to run on the cluster.")
        raise ConfigError(msg)
    return count
