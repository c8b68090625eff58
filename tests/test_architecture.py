"""The import graph of ispan_cli: no circles, and every import runs down the layers.

Read with ``ast`` from the source, function-level imports included (a lazy import is still a
dependency; it only moves the cost). A node is a subpackage (``ispan_cli.video``) or a top-level
module (``ispan_cli.zoo``); ``ispan_cli`` itself is the package's ``__init__``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import ispan_cli

ROOT = Path(ispan_cli.__file__).parent

# Lowest first. A node may import its own layer and the layers below it, never one above.
# Within a layer the circle checks below keep the imports one-way.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        # torch-free facts and helpers every layer may use
        "ispan_cli errors identity model_folder zoo native_output terminal outputs limits",
        "nn",  # pure PyTorch
        "video",  # file -> model input: decoding, sampling, preprocessing, writing
        "hub_http hub hub_cache hub_push",  # model folders from the Hub and the zoo
        "data runtime importers",  # datasets; loading and running a model; importing checkpoints
        "inference flow",  # the classify job; optical flow extraction
        "engine export viz",  # training and evaluation; ONNX export; attention maps
        "bench diagnostics api",  # features built on the others: benchmark, doctor, Python API
        "commands app __main__",  # the CLI
    )
)
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """The ispan_cli modules ``path`` imports, at any depth of the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "ispan_cli")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "ispan_cli":
                continue
            for alias in node.names:  # `from ispan_cli.video import reader` imports the module
                child = f"{node.module}.{alias.name}"
                out.add(child if child in MODULES else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; write `from ispan_cli... import`")
    return out


EDGES = {name: _imports(path) for name, path in MODULES.items()}


def _node(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "ispan_cli"


def _graph(nodes) -> dict[str, dict[str, set[str]]]:
    """node -> imported node -> the module imports that make the edge ("a -> b")."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, targets in EDGES.items():
        for target in targets:
            a, b = nodes(module), nodes(target)
            if a != b:
                graph[a][b].add(f"{module} -> {target}")
    return graph


def _circles(graph) -> list[list[str]]:
    """One circle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
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
                found.append(sorted(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def _describe(graph, component: list[str]) -> str:
    members = set(component)
    edges = [
        f"  {how}"
        for a in component
        for b, hows in sorted(graph[a].items())
        if b in members
        for how in sorted(hows)[:3]
    ]
    return f"circle among {', '.join(component)}:\n" + "\n".join(edges)


def test_the_parser_sees_the_package():
    # a guard against a test that passes because it read nothing
    assert {"ispan_cli.runtime.loading", "ispan_cli.video.decoder", "ispan_cli.nn"} <= set(EDGES)
    assert "ispan_cli.video.reader" in EDGES["ispan_cli.video.decoder"]


def test_no_circle_between_subpackages():
    graph = _graph(_node)
    circles = _circles(graph)
    assert not circles, "\n".join(_describe(graph, c) for c in circles)


def test_no_circle_between_modules():
    # e.g. video/decoder <-> its backends, nn/backbones -> serialization -> model -> backbones
    graph = _graph(lambda m: m)
    circles = _circles(graph)
    assert not circles, "\n".join(_describe(graph, c) for c in circles)


def test_every_node_has_a_layer():
    nodes = {_node(m) for m in MODULES}
    unplaced = sorted(nodes - set(RANK))
    assert not unplaced, f"add {unplaced} to LAYERS in {Path(__file__).name}"


@pytest.mark.parametrize("layer", range(len(LAYERS)), ids=[" ".join(sorted(x)) for x in LAYERS])
def test_imports_run_down_the_layers(layer):
    graph = _graph(_node)
    upward = [
        f"{how} (layer {RANK[a]} imports layer {RANK[b]})"
        for a in sorted(LAYERS[layer])
        for b, hows in sorted(graph.get(a, {}).items())
        if b in RANK and RANK[b] > RANK[a]
        for how in sorted(hows)
    ]
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_only_the_cli_imports_commands():
    importers = sorted(
        m for m, targets in EDGES.items()
        if any(t.startswith("ispan_cli.commands") for t in targets)
        and _node(m) not in ("commands", "app", "__main__")
    )  # fmt: skip
    assert not importers
