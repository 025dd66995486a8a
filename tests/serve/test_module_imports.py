"""The serve package's modules import each other one way only, and scoring leaves Ray alone.

A cycle (``serve.scoring`` and ``serve.ray_engine`` used to import each other) makes the
import order matter and hides which module is the lower one. Ray is an optional, heavy
dependency: ``detente score`` on the local engine must not import it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def serve_import_graph() -> dict[str, set[str]]:
    """Module -> the serve modules it imports, at the top or inside a function."""
    modules = {}
    for path in sorted((REPO / "serve").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for dep in graph[module]:
            if dep == start:
                return [*path, dep]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None


def test_no_serve_module_imports_itself_back():
    graph = serve_import_graph()
    assert "serve.scoring" in graph and "serve.ray_engine" in graph["serve.scoring"]
    cycles = [c for m in graph if (c := cycle_from(graph, m))]
    assert cycles == []


def test_the_ray_engine_uses_only_the_lower_scoring_modules():
    assert "serve.scoring" not in serve_import_graph()["serve.ray_engine"]


def test_importing_scoring_does_not_import_ray():
    code = "import sys, serve.scoring; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.stdout.strip() == "False", result.stderr
