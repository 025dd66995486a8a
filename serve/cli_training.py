"""``detente evaluate`` and ``detente retrain`` (``detente train`` lives in serve.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ALLOW_PICKLE_HELP = ("Also load pickled weights (pytorch_model.bin), which can run arbitrary "
                     "code: only for a model from a source you trust.")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def evaluate(
    model: Annotated[Path | None, typer.Argument(help="Model folder (default: the default model).")]
    = None,
    data: Annotated[Path | None, typer.Option(
        help="Labelled file (default: the bundled real statements; per source when the file "
        "has a source column).")] = None,
    report: Annotated[Path, typer.Option(help="Folder for metrics.json, report.md and plots.")]
    = Path("report"),
    split: Annotated[str, typer.Option(help="Split to use when the file has a split column "
                                       "('all' for every row).")] = "test",
    train_data: Annotated[Path | None, typer.Option(help="Training rows for the baselines "
                                                    "(default: the train splits of the bundled "
                                                    "written corpus and real statements).")]
    = None,
    text_column: Annotated[str, typer.Option(help="Column holding the statement.")] = "text",
    stance_column: Annotated[str, typer.Option(help="Column with stance labels.")] = "stance",
    sentiment_column: Annotated[str, typer.Option(help="Column with sentiment labels.")]
    = "sentiment",
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Score a model on labelled data beside baselines; write a report with plots."""
    from serve.cli import user_errors
    from serve.loading import model_folder
    from training.evaluation import EvaluateArguments
    from training.evaluation import evaluate as run
    from training.report import summary_table

    try:
        model = model_folder(model)
    except user_errors() as err:
        _fail(str(err))
    args = EvaluateArguments(
        model=str(model), data=str(data) if data else None,
        report=str(report), split=split, train_data=str(train_data) if train_data else None,
        text_column=text_column, stance_column=stance_column, sentiment_column=sentiment_column,
        allow_pickle=allow_pickle,
    )
    try:
        metrics = run(args)
    except user_errors() as err:
        _fail(str(err))
    typer.echo(summary_table(metrics))
    typer.echo(f"report written to {report / 'report.md'}")


def retrain(
    from_model: Annotated[Path, typer.Option("--from", help="Fine-tuned model to continue from.")],
    data: Annotated[Path, typer.Option(help="Newly labelled rows (e.g. corrections.jsonl).")],
    output: Annotated[Path | None, typer.Option(help="Folder for the new model.")] = None,
    force: Annotated[bool, typer.Option(help="Allow overwriting (with no --output: --from).")]
    = False,
    replay_data: Annotated[Path | None, typer.Option(
        help="Original data to replay (default: the bundled written corpus and real "
        "statements).")] = None,
    replay_ratio: Annotated[float, typer.Option(help="Replayed rows per new row.")] = 2.0,
    holdout_fraction: Annotated[float, typer.Option(help="Share of new rows held out.")] = 0.2,
    stance_labels: Annotated[str | None, typer.Option(help="Comma-separated stance labels of "
                                                      "the new model (default: old + new).")]
    = None,
    sentiment_labels: Annotated[str | None, typer.Option(help="Comma-separated sentiment "
                                                         "labels (default: old + new).")] = None,
    epochs: Annotated[float, typer.Option(help="Maximum epochs.")] = 3.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    select_backend: Annotated[bool, typer.Option(
        help="Choose the scoring backend for `--backend auto` on the validation split "
        "after saving (30-60 s).")] = True,
) -> None:
    """Continue training on new rows while replaying original data; print before/after."""
    from serve.cli import user_errors
    from training.retrain import RetrainArguments, format_comparison
    from training.retrain import retrain as run

    def split_labels(value: str | None) -> list[str] | None:
        return [v.strip() for v in value.split(",") if v.strip()] if value else None

    args = RetrainArguments(
        from_model=str(from_model), data=str(data), output=str(output) if output else None,
        force=force, replay_data=str(replay_data) if replay_data else None,
        replay_ratio=replay_ratio, holdout_fraction=holdout_fraction,
        stance_labels=split_labels(stance_labels),
        sentiment_labels=split_labels(sentiment_labels), epochs=epochs,
        learning_rate=learning_rate, seed=seed, allow_pickle=allow_pickle,
        select_backend=select_backend,
    )
    try:
        summary = run(args, log=typer.echo)
    except user_errors() as err:
        _fail(str(err))
    typer.echo(format_comparison(summary))
    selection = summary.get("backend_selection")
    if selection:
        from training.backend_selection import describe_selection

        typer.echo(f"backend selection failed ({selection['error']}); --backend auto runs "
                   "ONNX fp32" if "error" in selection else describe_selection(selection))
    typer.echo(f"new model saved to {args.output or args.from_model}")
