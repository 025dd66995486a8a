"""The ``detente`` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from serve.cli_training import ALLOW_PICKLE_HELP

# Nothing the CLI runs by default needs the Hub; set HF_HUB_OFFLINE=0 to use a Hub id.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="detente: stance (pro_negotiation / accusatory / neutral) and sentiment of "
    "political statements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Check labelled data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
               "help_option_names": []}


def fail(message: str, code: int = 1) -> None:
    """Print a clear error (no traceback) and exit non-zero."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def user_errors():
    """The exceptions that mean 'the user's input (or disk) is wrong', shown as one line each.

    OSError covers what the machine refuses: no permission, disk full, a file in the way.
    """
    from model.errors import DataError, ModelLoadError, ModelWriteError

    return (DataError, ModelLoadError, ModelWriteError, OSError, ValueError)


@app.command(context_settings=PASSTHROUGH)
def train(ctx: typer.Context) -> None:
    """Train a model (no arguments: the default model from the bundled data).

    All options come from training.arguments.TrainArguments; see `detente train --help`.
    """
    from transformers import HfArgumentParser

    from training.arguments import TrainArguments
    from training.trainer import format_summary
    from training.trainer import train as run_training

    parser = HfArgumentParser(TrainArguments, prog="detente train")
    try:  # argparse itself reports unknown or malformed flags (exit code 2)
        (args,) = parser.parse_args_into_dataclasses(args=ctx.args)
        if args.config:
            explicit = {k: v for k, v in vars(args).items() if f"--{k}" in ctx.args
                        or f"--{k.replace('_', '-')}" in ctx.args}
            args = TrainArguments.from_file(args.config, **explicit)
    except (ValueError, OSError) as err:  # a bad value or config file
        fail(str(err))
    try:
        result = run_training(args)
    except user_errors() as err:
        fail(str(err))
    if result.metrics:  # empty on non-main processes under torchrun
        typer.echo(format_summary(result.metrics))
        typer.echo(f"model saved to {result.output} in {result.seconds:.0f} s")


@app.command()
def predict(
    texts: Annotated[list[str], typer.Argument(help="Statements to label; '-' reads one per line "
                                               "from standard input.")],
    model: Annotated[Path | None, typer.Option(help="Model folder (default: the default model).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per statement.")] = False,
    batch_size: Annotated[int, typer.Option(help="Statements per forward pass.")] = 32,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Label statements given on the command line or on standard input."""
    from serve.loading import load_classifier

    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        fail("no statements given")
    try:
        classifier = load_classifier(model, allow_pickle=allow_pickle)
    except user_errors() as err:
        fail(str(err))
    for text, pred in zip(texts, classifier.predict(texts, batch_size=batch_size)):
        if as_json:
            typer.echo(json.dumps({"text": text, **pred.to_dict()}, ensure_ascii=False))
        else:
            probs = "  ".join(f"{k} {v:.2f}" for k, v in pred.stance_probs.items())
            typer.echo(f"{pred.stance:<16} ({probs})  sentiment {pred.sentiment} "
                       f"{pred.sentiment_score:+.2f}  | {text}")


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="Labelled file (CSV, TSV, JSONL, Parquet).")],
    text_column: Annotated[str, typer.Option(help="Column holding the statement.")] = "text",
    stance_column: Annotated[str, typer.Option(help="Column holding the stance label.")]
    = "stance",
    sentiment_column: Annotated[str, typer.Option(help="Column holding the sentiment label.")]
    = "sentiment",
    corpus: Annotated[bool, typer.Option(help="Also require every column of the project's "
                                         "corpus format (id, dispute, split, ...).")] = False,
) -> None:
    """Validate a labelled file; prints every problem with its rows, exit 1 on errors."""
    from model.errors import DataError
    from training.data import ColumnNames, load_labelled
    from training.validation import CORPUS_COLUMNS, validate

    columns = ColumnNames(text=text_column, stance=stance_column, sentiment=sentiment_column)
    try:
        frame = load_labelled(file, columns)
    except DataError as err:
        fail(str(err))
    required = CORPUS_COLUMNS if corpus else ("text",)
    report = validate(frame, str(file), required=required)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


from serve.cli_training import evaluate, retrain  # noqa: E402

app.command()(evaluate)
app.command()(retrain)


from serve.cli_demo import demo  # noqa: E402

app.command()(demo)

from serve.cli_score import score, select_backend  # noqa: E402

app.command()(score)
app.command("select-backend")(select_backend)

from serve.api.command import serve  # noqa: E402

app.command(context_settings=PASSTHROUGH)(serve)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
