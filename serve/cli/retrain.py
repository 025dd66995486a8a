"""``detente retrain``: continue a fine-tuned model on new rows, replaying original data."""

from __future__ import annotations

import typer

from serve.cli.common import description_of, parse_arguments, user_errors_fail
from training.arguments import RetrainArguments


def retrain(ctx: typer.Context) -> None:
    """Continue training on new rows while replaying original data; print before/after."""
    from training.retrain import format_comparison
    from training.retrain import retrain as run

    args = parse_arguments(RetrainArguments, ctx.args, prog="detente retrain",
                           description=description_of(retrain))
    with user_errors_fail():
        summary = run(args, log=typer.echo)
    typer.echo(format_comparison(summary))
    selection = summary.get("backend_selection")
    if selection:
        from training.backend_selection import describe_selection

        typer.echo(f"backend selection failed ({selection['error']}); --backend auto runs "
                   "ONNX fp32" if "error" in selection else describe_selection(selection))
    typer.echo(f"new model saved to {args.output or args.from_model}")
