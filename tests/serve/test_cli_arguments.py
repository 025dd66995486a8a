"""Every command's options come from its dataclass, each default written once.

The CLI declares no option itself: each command hands its arguments to a parser built from
an ``*Arguments`` dataclass. These tests hold that in place: every field is a flag (or the
positional argument) of its command, the default ``--help`` shows is the dataclass's, and a
flag on the command line reaches the dataclass.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from serve.api.settings import ServeArguments
from serve.arguments import (
    DemoArguments,
    PredictArguments,
    ScoreArguments,
    SelectBackendArguments,
)
from serve.cli import app
from training.arguments import (
    DataCheckArguments,
    EvaluateArguments,
    RetrainArguments,
    TrainArguments,
)

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "serve" / "cli"
runner = CliRunner()

# command -> (its dataclass, the fields that are positional arguments)
COMMANDS: dict[tuple[str, ...], tuple[type, tuple[str, ...]]] = {
    ("train",): (TrainArguments, ()),
    ("predict",): (PredictArguments, ("texts",)),
    ("evaluate",): (EvaluateArguments, ("model",)),
    ("retrain",): (RetrainArguments, ()),
    ("demo",): (DemoArguments, ()),
    ("score",): (ScoreArguments, ("input",)),
    ("select-backend",): (SelectBackendArguments, ()),
    ("serve",): (ServeArguments, ()),
    ("data", "check"): (DataCheckArguments, ("file",)),
}


def leaf_commands() -> dict[tuple[str, ...], object]:
    """Every runnable command of the CLI (not the groups), from the click tree."""
    found: dict[tuple[str, ...], object] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found[path] = command
        for name, sub in (subcommands or {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def help_of(command: tuple[str, ...], monkeypatch) -> str:
    for name in os.environ:  # `detente serve` takes defaults from DETENTE_* variables
        if name.startswith("DETENTE_"):
            monkeypatch.delenv(name)
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def option_entries(help_text: str) -> dict[str, str]:
    """argparse's option list: the first flag of each entry -> the entry's text, one line."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in help_text.split("\noptions:\n", 1)[1].splitlines():
        if re.match(r"  -", line):
            current = [line]
            entries[line.split()[0].rstrip(",")] = ""
        elif current and line.startswith("   "):
            current.append(line)
        else:
            current = []
        if current:
            entries[current[0].split()[0].rstrip(",")] = " ".join(" ".join(current).split())
    return entries


def default_of(field) -> object:
    return field.default_factory() if field.default_factory is not MISSING else field.default


def test_every_command_has_a_dataclass():
    assert set(leaf_commands()) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_field_is_an_option_of_its_command(command, monkeypatch):
    dataclass_type, positional = COMMANDS[command]
    text = help_of(command, monkeypatch)
    for field in fields(dataclass_type):
        assert field.metadata.get("help"), f"{dataclass_type.__name__}.{field.name} has no help"
        if field.name in positional:
            assert re.search(rf"^  {field.name.upper()}\b", text, re.M), (field.name, text)
            continue
        for flag in {f"--{field.name}", f"--{field.name.replace('_', '-')}"}:
            assert re.search(rf"{re.escape(flag)}\b(?![-_])", text), (flag, text)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_the_dataclass_default(command, monkeypatch):
    dataclass_type, positional = COMMANDS[command]
    entries = option_entries(help_of(command, monkeypatch))
    checked = 0
    for field in fields(dataclass_type):
        if field.name in positional or default_of(field) is MISSING:
            continue  # a required option shows no default
        entry = entries[f"--{field.name}"]
        shown = re.search(r"\(default: (.*)\)$", entry)
        assert shown, entry
        assert shown.group(1) == str(default_of(field)), (field.name, entry)
        checked += 1
    assert checked


def test_commands_declare_no_options_of_their_own():
    """A command takes only typer's context: no typer.Option, so no second default."""
    for path, command in leaf_commands().items():
        assert list(inspect.signature(command.callback).parameters) == ["ctx"], path
    for module in CLI.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert "typer.Option" not in source and "typer.Argument" not in source, module.name


def test_command_modules_do_not_import_the_app_back():
    for module in CLI.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert "noqa: E402" not in source, module.name
        if module.name in ("__init__.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module == "serve.cli":
                raise AssertionError(f"{module.name} imports from serve.cli")
            if isinstance(node, ast.Import):
                assert "serve.cli" not in [a.name for a in node.names], module.name


def test_help_of_the_whole_cli_imports_no_torch():
    code = ("import sys; from serve.cli import app; "
            "heavy = [m for m in ('torch', 'transformers', 'gradio', 'ray', 'onnxruntime') "
            "if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "serve.cli", "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0 and "select-backend" in result.stdout, result.stderr


def test_retrain_flags_reach_retrain_arguments(monkeypatch, tmp_path):
    """batch_size and early_stopping_patience were not settable before; every flag is now."""
    import training.retrain

    seen: list[RetrainArguments] = []

    def fake_retrain(args: RetrainArguments, log=print) -> dict:
        seen.append(args)
        return {}

    monkeypatch.setattr(training.retrain, "retrain", fake_retrain)
    result = runner.invoke(app, [
        "retrain", "--from", "models/old", "--data", "new.jsonl", "--output", "models/new",
        "--batch-size", "4", "--early-stopping-patience", "5", "--stance-labels", "a,b",
        "--no-select-backend", "--learning_rate", "1e-4"])
    assert result.exit_code == 0, result.output
    (args,) = seen
    assert (args.batch_size, args.early_stopping_patience) == (4, 5)
    assert args.stance_labels == ["a", "b"] and args.sentiment_labels is None
    assert args.select_backend is False and args.learning_rate == 1e-4
    assert (args.from_model, args.data, args.output) == ("models/old", "new.jsonl", "models/new")
    assert "new model saved to models/new" in result.output


def test_a_value_the_dataclass_refuses_is_one_error_line():
    result = runner.invoke(app, ["score", "in.csv", "--batch-size", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: batch_size must be at least 1, got 0"


def test_an_unknown_flag_is_a_usage_error():
    result = runner.invoke(app, ["evaluate", "--no-such-flag"])
    assert result.exit_code == 2
    assert "unrecognized arguments: --no-such-flag" in result.output
