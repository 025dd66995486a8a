"""Regenerate docs/cli.md from the CLI's own --help output.

Run: python docs/tools/cli_reference.py            (rewrites docs/cli.md)
     python docs/tools/cli_reference.py --check    (exit 1 if docs/cli.md is out of date)

Help is rendered as plain text (``TYPER_USE_RICH=0``) 100 columns wide, with the program
named ``detente`` as installed: the boxed Rich layout cuts long words short with an
ellipsis at that width and does not read well in Markdown. Both modes also fail when the
CLI has a command that ``COMMANDS`` does not list, or the other way round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "cli.md"
REPO = DOC.parents[1]
COMMANDS = [[], ["train"], ["predict"], ["score"], ["select-backend"], ["demo"], ["serve"],
            ["evaluate"], ["retrain"], ["data", "check"]]
WIDTH = 100
RUN_AS_DETENTE = (
    f"from serve.cli import app; app(prog_name='detente', max_content_width={WIDTH}, "
    f"terminal_width={WIDTH})"
)


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "NO_COLOR": "1",
            "TYPER_USE_RICH": "0", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}


def help_text(command: list[str]) -> str:
    result = subprocess.run([sys.executable, "-c", RUN_AS_DETENTE, *command, "--help"],
                            capture_output=True, text=True, env=_env(), check=True, cwd=REPO)
    return "\n".join(line.rstrip() for line in result.stdout.strip().splitlines())


def cli_commands() -> list[list[str]]:
    """Every command path of the CLI (groups and leaf commands), from the click tree."""
    import typer

    sys.path.insert(0, str(REPO))
    from serve.cli import app

    paths: list[list[str]] = []

    def walk(command, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():  # a group's subcommands
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def unlisted_commands() -> list[str]:
    """Differences between COMMANDS and the CLI (a group such as `data` needs no section)."""
    actual = cli_commands()
    groups = {tuple(p[:-1]) for p in actual if p}
    missing = [p for p in actual if p not in COMMANDS and tuple(p) not in groups]
    extra = [p for p in COMMANDS if p not in actual]
    return ([f"missing from COMMANDS: detente {' '.join(p)}" for p in missing]
            + [f"not a command of the CLI: detente {' '.join(p)}" for p in extra])


def render() -> str:
    parts = ["# CLI reference", "",
             "Generated from `detente ... --help` by `docs/tools/cli_reference.py`; "
             "do not edit by hand.", ""]
    for command in COMMANDS:
        title = " ".join(["detente", *command])
        parts += [f"## `{title}`", "", "```text", help_text(command), "```", ""]
    return "\n".join(parts)


def main() -> int:
    problems = unlisted_commands()
    if problems:
        print("\n".join(problems) + f"\n(update COMMANDS in {Path(__file__).name})")
        return 1
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run python docs/tools/cli_reference.py")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
