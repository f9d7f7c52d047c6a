"""Imports go one way: no cycle among the modules of raytuner, raytuner.search and
raytuner.schedulers, counting every import in a module (in functions and under
TYPE_CHECKING too: such an import only hides a cycle, it does not remove it).

Modules are read, not imported: the test needs none of the optional packages.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The packages and the folders they install from (pyproject.toml's package-dir).
PACKAGES = {"raytuner": REPO / "raytuner", "raytuner.search": REPO / "search", "raytuner.schedulers": REPO / "schedulers"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that module ``name`` imports."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod; `from pkg import name` imports pkg.
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    found = set()
    for target in targets:
        while target and target not in known:  # `import raytuner.search._tpe.x` -> the module holding it
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle
    through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_a_cycle(component, graph) for component in components]


def _a_cycle(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest cycle through the component's first module, as the modules along it."""
    start = min(component)
    paths = {start: [start]}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for other in sorted(graph[node] & component):
            if other == start:
                return paths[node] + [start]
            if other not in paths:
                paths[other] = paths[node] + [other]
                queue.append(other)
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_the_packages_are_read_whole():
    found = modules()
    assert {"raytuner", "raytuner._driver.lifecycle", "raytuner.search._tpe", "raytuner.schedulers._asha"} <= set(found)


def test_no_module_imports_itself_back():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_a_cycle_is_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("def f():\n    from raytuner import _trial\n", {"raytuner._trial"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from raytuner._results import Results\n", {"raytuner._results"}),
    ("from . import _formats\n", {"raytuner._formats"}),
    ("from raytuner.search import uniform\n", {"raytuner.search"}),
])
def test_imports_in_functions_and_type_checking_blocks_count(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    known = {**modules(), "raytuner._probe": path}
    assert imports("raytuner._probe", path, known) == expected
