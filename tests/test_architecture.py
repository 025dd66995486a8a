"""The architecture as rules: layers, where imports may hide, and module size.

``docs/architecture.md`` draws the packages; these tests keep the tree matching it. The
layer rule itself is the import-linter contract in ``pyproject.toml`` (``make lint`` runs
it); it is run here too so that ``pytest`` alone also fails on a broken layer.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "training", "serve")
OURS = set(PACKAGES)
# Function-level imports are for optional or heavy dependencies that most runs never need.
HEAVY_OPTIONAL = {
    "gradio": "the demo's UI",
    "ray": "the Ray engine (an extra)",
    "onnxruntime": "ONNX backends only",
    "onnx": "ONNX export and quantization only",
    "uvicorn": "only `detente serve` starts a server",
    "fcntl": "POSIX only: scoring must import on Windows",
}
# Our own modules that may be imported inside a function, because importing them pulls in
# one of the dependencies above.
HEAVY_OWN = {
    "serve.demo": "gradio", "serve.demo_batch": "gradio", "serve.demo_about": "gradio",
    "serve.api.app": "fastapi and the demo", "serve.api.ray_deployment": "ray",
    "serve.ray_engine": "ray",
}
# The entry points stay light so that `detente --help` answers at once: they defer
# everything (torch included) until a command runs.
LAZY_ENTRY_POINTS = ("serve/cli/", "serve/__init__.py", "serve/api/__init__.py")


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.append((node.lineno, node.module or ""))
    return found


def allowed(relative: str, module: str) -> bool:
    top = module.split(".")[0]
    if relative.startswith(LAZY_ENTRY_POINTS):
        return True
    if top in OURS:
        return any(module == m or module.startswith(m + ".") for m in HEAVY_OWN)
    return top in HEAVY_OPTIONAL


def test_function_level_imports_are_only_for_heavy_optional_dependencies():
    offenders = []
    for path in modules():
        relative = path.relative_to(REPO).as_posix()
        offenders += [f"{relative}:{line} imports {module}"
                      for line, module in function_level_imports(path)
                      if not allowed(relative, module)]
    assert not offenders, "move these imports to the top of their module:\n" + "\n".join(
        offenders)


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is a dev dependency")
def test_layers_contract_holds():
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_layers_contract_is_the_documented_one():
    config = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'layers = ["serve", "training", "model"]' in config
    assert "lint-imports" in (REPO / "Makefile").read_text(encoding="utf-8")


SIZE_LIMIT = 400


def test_long_modules_say_why_they_are_one_idea():
    """A module over the limit starts with a ``# One idea:`` line that says why."""
    offenders = []
    for path in modules():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > SIZE_LIMIT and not any(
                line.startswith("# One idea:") for line in lines[:40]):
            offenders.append(f"{path.relative_to(REPO)} ({len(lines)} lines)")
    assert not offenders, "split these modules or say why each is one idea: " + ", ".join(
        offenders)
