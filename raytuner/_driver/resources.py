"""Trial resources: validation, Ray actor options, and how many trials given nodes can hold
(counting the nodes an autoscaler may launch: :func:`raytuner._driver.autoscale.max_concurrency`)."""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Mapping

from raytuner.errors import ConfigError, invalid

_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


def normalize(resources: Mapping[str, Any] | None) -> dict[str, float]:
    """``{"cpu": 1, "gpu": 0.25, "memory": 2e9, "my_tag": 1}`` checked; default 1 CPU."""
    if resources is None:
        return {"cpu": 1.0}
    if not isinstance(resources, Mapping):
        msg = f"`resources` must be a dict such as {{'cpu': 1, 'gpu': 0.5}}; got {type(resources).__name__} {resources!r:.80}."
        raise ConfigError(msg)
    out: dict[str, float] = {}
    for key, value in resources.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise invalid("Tuner", f"resources[{key!r}]", value, "a number >= 0 under a str key",
                          "Pass e.g. resources={'cpu': 1, 'gpu': 0.25}.")
        name = key.lower() if key.lower() in _RAY_NAMES else key
        if name not in _RAY_NAMES:
            _refuse_near_miss(key, value)
        if name in out:
            raise invalid("Tuner", "resources", dict(resources), f"one entry per resource ({name!r} is given twice; the "
                          "names of CPU, GPU and memory are case-blind)", f"Keep one, e.g. {{{name!r}: {value!r}}}.")
        if name != "memory" and value != round(value, 4):
            # Ray's own limit on fractional resources, which it enforces only when the actor starts.
            raise invalid("Tuner", f"resources[{key!r}]", value, "a multiple of 0.0001 (Ray's precision)",
                          f"Pass e.g. {max(round(value, 4), 0.0001)}.")
        if name == "gpu" and value > 1 and value != int(value):
            raise invalid("Tuner", "resources['gpu']", value, "a fraction of one GPU (<= 1) or a whole number",
                          "Pass e.g. 0.5 to share a card between two trials, or 2 for two whole cards.")
        out[name] = float(value)
    out.setdefault("cpu", 1.0)
    return out


def _refuse_near_miss(key: str, value: Any) -> None:
    """A custom Ray resource may have any name, but one this close to a known name is a typo
    (``cpus``, ``num_gpus``, ``GPUs``, ``memroy``), which Ray would only report as a shape
    no node has, after it starts."""
    plain = key.lower().removeprefix("num_")
    plain = plain[:-1] if plain.endswith("s") and plain[:-1] in _RAY_NAMES else plain
    close = [plain] if plain in _RAY_NAMES else difflib.get_close_matches(plain, list(_RAY_NAMES), n=1, cutoff=0.75)
    if close:
        known = ", ".join(_RAY_NAMES)
        raise invalid("Tuner", f"resources[{key!r}]", value, f"under a known name ({known}) or a custom Ray resource's",
                      f"Did you mean {close[0]!r}? Pass resources={{{close[0]!r}: {value!r}}}.")


def actor_options(resources: Mapping[str, float]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": resources.get("cpu", 1.0), "num_gpus": resources.get("gpu", 0.0)}
    if resources.get("memory"):
        options["memory"] = resources["memory"]
    custom = {k: v for k, v in resources.items() if k not in _RAY_NAMES}
    if custom:
        options["resources"] = custom
    return options


def slots(resources: Mapping[str, float], nodes: list[Mapping[str, float]]) -> int:
    """How many trials of this shape the given nodes (their total resources) can run at once."""
    wanted = {_RAY_NAMES.get(k, k): v for k, v in resources.items() if v > 0}
    total = 0
    for node in nodes:
        fits = [math.floor(node.get(name, 0.0) / amount + 1e-9) for name, amount in wanted.items()]
        total += min(fits) if fits else int(node.get("CPU", 1))
    return total


def cluster_nodes() -> list[dict[str, float]]:
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def free_on_nodes() -> list[dict[str, float]]:
    """What each alive node has free now (Ray's per-node view; the whole cluster's as one
    node where that private API is missing)."""
    import ray

    try:
        from ray._private import state

        return [dict(free) for free in state.state.available_resources_per_node().values()]
    except Exception:  # noqa: BLE001 - a Ray without it: the cluster's sum is close enough to say why
        return [dict(ray.available_resources())]


def describe(nodes: list[Mapping[str, float]]) -> str:
    shown = []
    for node in nodes:
        parts = {k: v for k, v in node.items() if not k.startswith("node:") and k not in ("object_store_memory",)}
        shown.append("{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(parts.items()) if k != "memory") + "}")
    return "; ".join(shown) or "no alive nodes"


def actor_bundle(resources: Mapping[str, float]) -> dict[str, float]:
    """One trial's resources as a Ray resource bundle (for the autoscaler)."""
    return {_RAY_NAMES.get(k, k): v for k, v in resources.items() if v > 0}


def held(resources: Mapping[str, float], free: list[Mapping[str, float]], waited_s: float) -> str | None:
    """Why no trial has started for ``waited_s`` on nodes that could hold one, or None: what
    they have ``free`` now cannot hold one, so other Ray work holds it."""
    if slots(resources, free) > 0:
        return None
    # Ray leaves out what a node has none of free: shown as 0 for what a trial asks.
    shown = [{**dict.fromkeys(actor_bundle(resources), 0.0), **node} for node in free]
    return (f"no trial has started for {waited_s:.0f} s: the cluster's nodes could run one (each needs "
            f"{dict(resources)}), but what they have free now cannot ({describe(shown)}): other Ray work holds "
            "the rest (another experiment on this cluster, or actors and tasks of this process). The waiting "
            "trials start as it frees up. Ctrl-C stops the run; `raytuner resume` continues it later.")


def stalled(resources: Mapping[str, float], nodes: list[Mapping[str, float]]) -> str | None:
    """Why no trial can start now, or None: no alive node can hold one (the node that could
    was lost). Said while trials wait and none runs; an autoscaler's wait is said apart."""
    if slots(resources, nodes) > 0:
        return None
    return (f"no alive node of the Ray cluster can run a trial now (each needs {dict(resources)}; alive nodes have "
            f"{describe(nodes)}), so the waiting trials wait for one to join. Ctrl-C stops the run; `raytuner "
            "resume` continues it later, on this cluster or another.")
