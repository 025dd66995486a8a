"""The arguments of ``detente predict``, ``score``, ``select-backend`` and ``demo``.

One dataclass per command, each field with its default and its help text (field metadata);
the command line is built from them (``serve.option_parsing``), so a default lives in exactly
one place: here, or beside the job that uses it (``serve.scored_rows``' batch size,
``serve.scoring``'s chunk size and engines) and imported from there. ``detente serve``'s
settings are ``serve.api.settings``.

This module imports the scoring code (and so torch); the CLI imports it only when a command
runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.backends import BACKENDS
from serve.scored_rows import DEFAULT_BATCH_SIZE
from serve.scoring import DEFAULT_CHUNK_SIZE, ENGINES
from training.arguments import allow_pickle_field, text_column_field
from training.tables import FORMATS

# ``detente demo`` and ``serve.demo.launch`` listen here unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


def model_field(extra_help: str = "") -> Any:
    """The model folder option of every command that loads one."""
    return field(default=None, metadata=_help(
        "Model folder. Default: the default model" + (extra_help or ".")))


@dataclass
class PredictArguments:
    """What ``detente predict`` labels, with which model, and how it prints the labels."""

    texts: list[str] = field(metadata=_help(
        "Statements to label; '-' reads one per line from standard input."))
    model: str | None = model_field()
    json: bool = field(default=False, metadata=_help("One JSON object per statement."))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_help(
        "Statements per forward pass."))
    allow_pickle: bool = allow_pickle_field()

    def __post_init__(self) -> None:
        _at_least_one(self, "batch_size")


@dataclass
class ScoreArguments:
    """Which file ``detente score`` labels, into which file, how fast and on what."""

    input: str = field(metadata=_help("File to score (.csv, .tsv, .jsonl, .parquet)."))
    output: str | None = field(default=None, metadata=_help(
        "Output file; its extension sets the format. Default: INPUT's name with .scored "
        "before the extension.", aliases=["-o"]))
    format: str | None = field(default=None, metadata=_help(
        "Input format, when the extension does not tell.", choices=list(FORMATS)))
    output_format: str | None = field(default=None, metadata=_help(
        "Output format, when the output's extension does not tell.", choices=list(FORMATS)))
    text_column: str = text_column_field()
    id_column: str | None = field(default=None, metadata=_help(
        "Column identifying rows, kept as it is. Default: `id` if present, else a "
        "row-number `id` is added."))
    model: str | None = model_field()
    backend: str = field(default="auto", metadata=_help(
        "Inference backend. auto: the one chosen for this model on its validation split "
        "when it was trained (the fastest that keeps >= 99 percent of torch fp32's stance "
        "labels and loses <= 0.5 macro-F1 points), else ONNX fp32 (torch's labels).",
        choices=list(BACKENDS)))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_help(
        "Statements per forward pass."))
    chunk_size: int = field(default=DEFAULT_CHUNK_SIZE, metadata=_help(
        "Rows read, scored and saved at a time (memory and crash granularity)."))
    resume: bool = field(default=False, metadata=_help(
        "Continue an interrupted run from its saved parts."))
    engine: str = field(default="local", metadata=_help(
        "local, or ray: Ray Data (local Ray, or the cluster at RAY_ADDRESS; needs the ray "
        "extra of detente).", choices=list(ENGINES)))
    progress: bool = field(default=True, metadata=_help("Show a progress bar on stderr."))

    def __post_init__(self) -> None:
        _at_least_one(self, "batch_size")
        _at_least_one(self, "chunk_size")


@dataclass
class SelectBackendArguments:
    """Which model ``detente select-backend`` chooses a backend for, and on which rows."""

    model: str | None = model_field()
    data: str | None = field(default=None, metadata=_help(
        "Labelled file with a split column; its split=validation rows are used. Default: "
        "the bundled real statements. Never the test split."))


@dataclass
class DemoArguments:
    """Where ``detente demo`` listens, which model it shows and where corrections go."""

    model: str | None = model_field(", trained first if missing.")
    host: str = field(default=DEFAULT_HOST, metadata=_help(
        "Address to listen on; 127.0.0.1 keeps the demo on this machine."))
    port: int = field(default=DEFAULT_PORT, metadata=_help("Port to listen on."))
    corrections: str | None = field(default=None, metadata=_help(
        "JSONL file that collects corrections. Default: $DETENTE_HOME/corrections.jsonl."))
    open_browser: bool = field(default=False, metadata=_help(
        "Open the demo in a web browser.", aliases=["--open"]))
    allow_pickle: bool = allow_pickle_field()

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")


def _at_least_one(args: Any, name: str) -> None:
    if getattr(args, name) < 1:
        raise ValueError(f"{name} must be at least 1, got {getattr(args, name)}")
