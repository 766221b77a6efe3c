"""Imports run one way: utils <- metrics <- src <- features <- models <- pipelines / scripts / experts / entries.

The graph is read with ``ast`` (every ``import`` statement, including those inside functions), so a lazy import
that goes upward or closes a cycle fails as well. A ``python -m`` forwarder that runs an entry point by name
(``runpy``) is a command, not a dependency, and is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"utils": 0, "metrics": 1, "src": 2, "features": 3, "models": 4, "pipelines": 5, "scripts": 5,
          "experts": 5}
ENTRIES = ("train_multi_tft", "train_resume", "warm_start_train")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = [p for pkg in LAYERS for p in (ROOT / pkg).rglob("*.py")] + [ROOT / f"{e}.py" for e in ENTRIES]
    return {_module_name(p): p for p in files}


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {t for node in ast.walk(tree) for t in _imported(node, name, path.name == "__init__.py")}
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def _layer(module: str) -> int:
    return LAYERS.get(module.split(".")[0], 6)  # the entry scripts sit on top


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_upward_import():
    graph = import_graph()
    upward = [f"{m} -> {t}" for m, targets in sorted(graph.items()) for t in sorted(targets) if _layer(t) > _layer(m)]
    assert not upward, "imports against the layer order utils < metrics < src < features < models < top:\n" + \
        "\n".join(upward)


def test_no_import_cycle():
    cycles = _cycles(import_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_what_they_should(tmp_path):
    """The graph holds known edges (so an empty graph cannot pass), and the cycle finder finds a planted cycle."""
    graph = import_graph()
    assert "utils.timeline" in graph["models.window_dataset"]
    assert "models.training" in graph["train_multi_tft"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("utils.io") < _layer("src.merging") < _layer("features.stationarity") < _layer("models.training")
