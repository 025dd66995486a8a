"""``detente data check``: validate a labelled file before training on it."""

from __future__ import annotations

import typer

from serve.cli.common import description_of, parse_arguments, user_errors_fail
from training.arguments import DataCheckArguments


def check(ctx: typer.Context) -> None:
    """Validate a labelled file; prints every problem with its rows, exit 1 on errors."""
    from training.data import ColumnNames, load_labelled
    from training.validation import CORPUS_COLUMNS, validate

    args = parse_arguments(DataCheckArguments, ctx.args, prog="detente data check",
                           description=description_of(check), positional=["file"])
    columns = ColumnNames(text=args.text_column, stance=args.stance_column,
                          sentiment=args.sentiment_column)
    with user_errors_fail():
        frame = load_labelled(args.file, columns)
    required = CORPUS_COLUMNS if args.corpus else ("text",)
    report = validate(frame, args.file, required=required)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)
