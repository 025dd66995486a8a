"""``detente train``: train a model from ``TrainArguments`` (flags, or a YAML/JSON file)."""

from __future__ import annotations

import typer

from serve.cli.common import description_of, user_errors_fail
from training.arguments import TrainArguments


def train(ctx: typer.Context) -> None:
    """Train a model (no arguments: the default model from the bundled data).

    --config reads the arguments from a YAML or JSON file; flags given beside it win.
    """
    from serve.option_parsing import DataclassParser
    from training.trainer import format_summary
    from training.trainer import train as run_training

    parser = DataclassParser(TrainArguments, prog="detente train",
                             description=description_of(train))
    with user_errors_fail():  # a bad value, a bad config file, a bad data file
        args = parser.parse(ctx.args)
        if args.config:
            args = TrainArguments.from_file(args.config, **parser.given(ctx.args))
        result = run_training(args)
    if result.metrics:  # empty on non-main processes under torchrun
        typer.echo(format_summary(result.metrics))
        typer.echo(f"model saved to {result.output} in {result.seconds:.0f} s")
