"""The package's layers, checked on its source: who may import whom (docs/architecture.md).

* only ``stages/`` and ``cli.py`` read the config (``audioclust.config``);
* nothing imports a stage: ``stages/`` is imported by ``cli.py`` alone (the stages share
  ``stages/_shared.py`` and ``stages/_skeleton.py``, which are not stages);
* a module imports only from its own layer or the layers below it, so there are no cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "audioclust"

#: Layers from the bottom up; a module may import its own layer and those before it.
LAYERS = ["core", "config", "dsp", "corpora", "embed", "represent", "clustering", "deep", "results", "report", "analysis",
          "notebooks", "stages", "cli"]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = _module(path)
        found = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                pytest.fail(f"{module}: relative import; the package uses absolute imports")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("audioclust"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("audioclust"))
    modules = set(graph)
    return {m: {i for i in imported if i in modules and i != m} for m, imported in graph.items()}


GRAPH = _imports()


def test_every_module_belongs_to_a_layer():
    stray = sorted(m for m in GRAPH if _layer(m) not in LAYERS and m != "audioclust")
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


def test_only_stages_and_the_cli_read_the_config():
    readers = sorted(m for m, imported in GRAPH.items() if "audioclust.config" in imported
                     and _layer(m) not in ("stages", "cli"))
    assert not readers, f"these modules import audioclust.config; pass them plain arguments instead: {readers}"


def test_nothing_imports_a_stage():
    # the package and its private helper modules (_shared, _skeleton, a stage's own _part) are not stages
    offenders = sorted(f"{m} -> {i}" for m, imported in GRAPH.items() for i in imported
                       if _layer(i) == "stages" and i != "audioclust.stages"
                       and not i.rsplit(".", 1)[-1].startswith("_") and m != "audioclust.cli")
    assert not offenders, offenders


def test_each_layer_imports_only_itself_and_the_layers_below():
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = sorted(f"{m} -> {i}" for m, imported in GRAPH.items() for i in imported
                    if _layer(m) in rank and _layer(i) in rank and rank[_layer(i)] > rank[_layer(m)])
    assert not upward, upward


def test_no_import_cycles():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_rules_catch_a_violation():
    """The checks above would fail on a module that broke them (so they cannot pass vacuously)."""
    assert len(GRAPH) > 40 and any("audioclust.config" in i for i in GRAPH.values())
    assert "audioclust.config" in GRAPH["audioclust.stages.cluster"]
    assert _layer("audioclust.represent.views") == "represent" and _layer("audioclust.cli") == "cli"
