"""The shape of the code, checked from its imports (grimp reads them; nothing is imported or run).

A cycle makes a module's meaning depend on import order and is the shape that once tied services to their own
jobs; layers say which domain may call which, so a new import that would close a circle fails here first.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph():
    sys.path.insert(0, str(ROOT))
    try:
        return grimp.build_graph("app", "integrations", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def strongly_connected(graph) -> list[list[str]]:
    """Tarjan's algorithm over the module graph: every group of modules that import each other in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep chain of imports cannot hit Python's recursion limit.
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph.modules:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or module in graph.find_modules_directly_imported_by(module):
                    groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_the_cycle_finder_finds_a_cycle():
    """The check below can fail: a graph with a circle is reported."""
    g = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        g.add_module(module)
    g.add_import(importer="pkg.a", imported="pkg.b")
    g.add_import(importer="pkg.b", imported="pkg.a")
    g.add_import(importer="pkg.c", imported="pkg.a")
    assert strongly_connected(g) == [["pkg.a", "pkg.b"]]


def test_app_has_no_import_cycle(graph):
    cycles = strongly_connected(graph)
    detail = "\n".join(
        " -> ".join(graph.find_shortest_chain(importer=group[0], imported=group[-1]) or group) for group in cycles
    )
    assert cycles == [], f"modules that import each other in a circle:\n{detail}"


def test_no_service_imports_a_jobs_module(graph):
    """Services ask for work by name (app.core.tasks.later); only a domain's jobs.py and the old app.jobs aliases
    import jobs modules."""
    jobs = {m for m in graph.modules if m.endswith(".jobs") or m.startswith("app.jobs")}
    offenders = sorted(
        (importer, imported)
        for imported in jobs
        for importer in graph.find_modules_that_directly_import(imported)
        if not (importer.endswith(".jobs") or importer.startswith("app.jobs"))
    )
    assert offenders == []


def test_the_layers_and_domains_hold():
    """.importlinter names the layers (routes over domains over core) and the order of the domains."""
    result = subprocess.run([sys.executable, "-m", "importlinter.cli", "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
