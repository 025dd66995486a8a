"""``detente score``: label every row of a CSV, TSV, JSONL or Parquet file.

Kept in its own module (registered in ``serve.cli`` with one line) so the command can grow
without touching the other commands. Imports of the heavy parts happen inside ``score``
so that ``detente --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

SCORE_HELP = """Label every row of a CSV, TSV, JSONL or Parquet file, streaming, in input order.

The output has every input column (an input column named like an output column is kept
as input_<name>), an `id` row number (1-based) when the input has no `id` column and no
--id-column, then: stance, p_pro_negotiation, p_accusatory, p_neutral, sentiment,
sentiment_score (P(positive) - P(negative)), model_version (hash of the weights) and error.

No row is dropped: a row whose text is missing, null, NaN, empty, not text or over
100,000 characters keeps its place with empty labels and a sentence in `error`.

Long texts are not truncated: a text over the model's max_seq_length tokens is split at
sentence boundaries into windows of at most max_seq_length tokens (a longer sentence is
cut at word boundaries), each window is scored, and the row gets the mean of the windows'
probabilities weighted by their token counts.

Crash safety: finished chunks are kept in OUTPUT.parts/ with a manifest; after a crash or
kill, run the same command with --resume to finish without losing or repeating a row. The
output file appears complete or not at all. CSV/TSV cells that would start a spreadsheet
formula (= + - @) get a leading ' (plain numbers such as -5 are left alone).
"""


class BackendChoice(str, Enum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"
    onnx_int8 = "onnx-int8"


class EngineChoice(str, Enum):
    local = "local"
    ray = "ray"


class FormatChoice(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"
    parquet = "parquet"


def score(
    input: Annotated[Path, typer.Argument(help="File to score (.csv, .tsv, .jsonl, .parquet).",
                                          show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output file; its extension sets the format "
        "(default: INPUT's name with .scored before the extension).")] = None,
    fmt: Annotated[FormatChoice | None, typer.Option(
        "--format", help="Input format, when the extension does not tell.")] = None,
    output_format: Annotated[FormatChoice | None, typer.Option(
        help="Output format, when the output's extension does not tell.")] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the statement.")] = "text",
    id_column: Annotated[str | None, typer.Option(
        help="Column identifying rows, kept as it is (default: `id` if present, else a "
        "row-number `id` is added).")] = None,
    model: Annotated[Path | None, typer.Option(
        help="Model folder (default: the default model).")] = None,
    backend: Annotated[BackendChoice, typer.Option(
        help="Inference backend. auto: the one chosen for this model on its validation "
        "split when it was trained (the fastest that keeps >= 99% of torch fp32's stance "
        "labels and loses <= 0.5 macro-F1 points), else ONNX fp32 (torch's labels).")]
    = BackendChoice.auto,
    batch_size: Annotated[int, typer.Option(help="Statements per forward pass.", min=1)] = 32,
    chunk_size: Annotated[int, typer.Option(
        help="Rows read, scored and saved at a time (memory and crash granularity).", min=1)]
    = 10_000,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run from its saved parts.")] = False,
    engine: Annotated[EngineChoice, typer.Option(
        help="local, or ray: Ray Data (local Ray, or the cluster at RAY_ADDRESS; needs the "
        "ray extra of detente).")] = EngineChoice.local,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Label every row of a file (CSV, TSV, JSONL, Parquet); see `detente score --help`."""
    from transformers.utils import logging as hf_logging

    from serve.scoring import score_file

    hf_logging.disable_progress_bar()  # our bar is the one that matters
    _log_to_stderr()
    try:
        result = score_file(
            input, output, text_column=text_column, id_column=id_column, model=model,
            backend=backend.value, fmt=fmt.value if fmt else None,
            output_fmt=output_format.value if output_format else None,
            chunk_size=chunk_size, batch_size=batch_size, resume=resume,
            progress=progress, engine=engine.value,
        )
    except KeyboardInterrupt:
        _fail("interrupted; finished parts are kept: run the same command with --resume "
              "to go on", code=130)
    except _user_errors() as err:
        _fail(str(err))
    errors = f", {result.errors:,} with an error (see the error column)" if result.errors else ""
    split = f", {result.windowed_rows:,} long texts windowed" if result.windowed_rows else ""
    typer.echo(
        f"scored {result.rows:,} rows{errors}{split} with {result.backend} "
        f"(model {result.model_version}) at {result.rows_per_second:,.0f} statements/s "
        f"-> {result.output}",
        err=True,
    )


score.__doc__ = SCORE_HELP


def select_backend(
    model: Annotated[Path | None, typer.Option(
        help="Model folder (default: the default model).")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Labelled file with a split column; its split=validation rows are used "
        "(default: the bundled real statements). Never the test split.")] = None,
) -> None:
    """Choose what `detente score --backend auto` runs for a model, on validation statements.

    Times torch, ONNX fp32 and int8 variants on the validation rows and keeps the fastest
    that agrees with torch fp32 on >= 99% of stance labels and loses <= 0.5 macro-F1
    points. `detente train` and `detente retrain` do this already; run it for a model
    copied without its onnx/ folder, or after moving to another machine.
    """
    from transformers.utils import logging as hf_logging

    from serve.loading import model_folder
    from training.backend_selection import describe_selection, select_backend_on_file
    from training.bundled_data import selection_data_file

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per candidate is noise here
    _log_to_stderr()
    try:
        folder = model_folder(model)
        selection = select_backend_on_file(folder, data or selection_data_file())
    except _user_errors() as err:
        _fail(str(err))
    typer.echo(describe_selection(selection))
    typer.echo(f"saved to {selection.get('file', '(not written)')}")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean 'this input or option is wrong': one line, no traceback."""
    from model.errors import DataError, DefaultModelMissing, ModelLoadError, OnnxError
    from serve.checkpoint import ScoreWriteError

    errors: list[type[BaseException]] = [
        DataError, ModelLoadError, OnnxError, DefaultModelMissing, ScoreWriteError,
        OSError, ValueError,  # OSError: a file that cannot be read or written, in words
    ]
    try:
        from serve.ray_engine import RayEngineError

        errors.append(RayEngineError)
    except ImportError:  # pragma: no cover - the module imports ray lazily
        pass
    return tuple(errors)


def _fail(message: str, code: int = 1) -> None:
    """One line on stderr (a library's multi-line message is joined), then exit ``code``."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when it emits.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was given; when the command
    runs inside a host that swaps ``sys.stderr`` per call (a test runner, a notebook), a
    later call would write to a closed stream and print a "Logging error" traceback.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # set by StreamHandler.__init__; always sys.stderr
        pass


def _log_to_stderr() -> None:
    """Show the scorer's notices (resuming, renamed columns) as plain lines on stderr."""
    logger = logging.getLogger("detente")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
