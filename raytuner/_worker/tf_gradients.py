"""TensorFlow's custom-gradient registry, made to let go of graphs nothing uses any more.

Each trace of a ``tf.custom_gradient`` inside a ``tf.function`` (Keras' train step makes
two) registers its gradient function under a fresh name (``CustomGradient-<uid>``) in a
process-wide registry that is never emptied, and that function holds the whole traced
graph. A reused worker grew by about 6 MiB per Keras trial this way
(benchmarks/keras_throughput.py), even after ``keras.backend.clear_session()``.

Dropping those entries at the end of a trial frees the memory but breaks a function that
outlives the trial (a module-level ``tf.function``) if its gradient is first asked for in a
later trial. So instead, once TensorFlow is imported in a worker, :func:`install` makes
each such registration keep the gradient function on the outermost graph being traced
(the ``tf.function``'s own graph) and register a small proxy that reaches it through a weak
reference. The function then lives exactly as long as the graph that can need it; when
the graph is collected, :func:`prune` drops the proxy.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

_ATTR = "_raytuner_custom_gradients"
_PREFIX = "CustomGradient-"


def _registry() -> Any:
    from tensorflow.python.framework import ops

    return ops._gradient_registry


def install(module: Any = None) -> bool:
    """Route new custom-gradient registrations through graph-held proxies (once per
    process); False where this TensorFlow is laid out differently (then nothing changes)."""
    try:
        from tensorflow.python.framework import ops

        decorator = ops.RegisterGradient
        original = decorator.__call__
        ops._gradient_registry._registry  # noqa: B018 - the layout prune() relies on
    except (ImportError, AttributeError):
        return False
    if getattr(decorator, "_raytuner_held", False):
        return True

    def register_held(self: Any, f: Any) -> Any:
        name = getattr(self, "_op_type", None)
        if not (isinstance(name, str) and name.startswith(_PREFIX)):
            return original(self, f)
        holder = _outermost(ops.get_default_graph())
        held = getattr(holder, _ATTR, None)
        if held is None:
            held = {}
            setattr(holder, _ATTR, held)
        held[name] = f
        original(self, _proxy(name, weakref.ref(holder)))
        return f

    decorator.__call__ = register_held
    decorator._raytuner_held = True
    return True


def _outermost(graph: Any) -> Any:
    """The ``tf.function`` graph that ``graph`` is part of (a cond or loop body is traced
    into a graph of its own inside it); stops short of the process-wide default graph."""
    from tensorflow.python.framework.func_graph import FuncGraph

    while isinstance(getattr(graph, "outer_graph", None), FuncGraph):
        graph = graph.outer_graph
    return graph


def _proxy(name: str, holder: weakref.ref) -> Callable[..., Any]:
    def gradient(op: Any, *grads: Any) -> Any:
        graph = holder()
        if graph is None:  # only reachable if an op outlived its whole outer graph
            raise LookupError(f"The graph that defined custom gradient {name} has been freed.")
        return getattr(graph, _ATTR)[name](op, *grads)

    gradient._raytuner_holder = holder  # type: ignore[attr-defined]
    return gradient


def prune() -> int:
    """Drop the registry entries of graphs that have been collected; how many went."""
    try:
        entries = _registry()._registry
    except (ImportError, AttributeError):
        return 0
    dead = [
        name for name, entry in entries.items()
        if name.startswith(_PREFIX) and getattr(entry.get("type"), "_raytuner_holder", lambda: True)() is None
    ]
    for name in dead:
        del entries[name]
    return len(dead)
