"""``detente evaluate``: a model's quality on labelled data, beside baselines, as a report."""

from __future__ import annotations

from pathlib import Path

import typer

from serve.cli.common import description_of, parse_arguments, user_errors_fail
from training.arguments import EvaluateArguments


def evaluate(ctx: typer.Context) -> None:
    """Score a model on labelled data beside baselines; write a report with plots."""
    from serve.loading import model_folder
    from training.evaluation import evaluate as run
    from training.report import summary_table

    # MODEL is positional, as it was: `detente evaluate models/mine --report r`.
    args = parse_arguments(EvaluateArguments, ctx.args, prog="detente evaluate",
                           description=description_of(evaluate), positional=["model"])
    with user_errors_fail():
        args.model = str(model_folder(args.model))  # the default model, trained if absent
        metrics = run(args)
    typer.echo(summary_table(metrics))
    typer.echo(f"report written to {Path(args.report) / 'report.md'}")
