"""The docs stay true: the CLI reference matches the CLI, and links between pages resolve."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TOOL = DOCS / "tools" / "cli_reference.py"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_cli_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def load_tool():
    spec = importlib.util.spec_from_file_location("cli_reference", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_lists_every_command_of_the_cli():
    tool = load_tool()
    assert tool.unlisted_commands() == []
    tool.COMMANDS = [c for c in tool.COMMANDS if c != ["score"]] + [["nonexistent"]]
    assert tool.unlisted_commands() == [
        "missing from COMMANDS: detente score",
        "not a command of the CLI: detente nonexistent",
    ]


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md")), REPO / "data" / "README.md"]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in doc_pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, anchor = target.partition("#")
            file = page.parent / path if path else page
            if not file.exists() or (anchor and file.suffix == ".md"
                                     and anchor not in anchors(file)):
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_index_maps_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = set(LINK.findall(index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages - linked == set()
