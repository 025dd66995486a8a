"""``detente score`` (label every row of a file) and ``detente select-backend``.

Both are about batch scoring: ``select-backend`` chooses what ``score --backend auto``
runs. Their options are ``serve.arguments.ScoreArguments`` and ``SelectBackendArguments``.
"""

from __future__ import annotations

import typer

from serve.cli.common import fail, log_to_stderr, parse_arguments, user_errors_fail

SCORE_HELP = """\
Label every row of a CSV, TSV, JSONL or Parquet file, streaming, in input order.

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

SELECT_BACKEND_HELP = """\
Choose what `detente score --backend auto` runs for a model, on validation statements.

Times torch, ONNX fp32 and int8 variants on the validation rows and keeps the fastest
that agrees with torch fp32 on >= 99 percent of stance labels and loses <= 0.5 macro-F1
points. `detente train` and `detente retrain` do this already; run it for a model
copied without its onnx/ folder, or after moving to another machine.
"""


def score(ctx: typer.Context) -> None:
    """Label every row of a CSV, TSV, JSONL or Parquet file, streaming, in input order."""
    from transformers.utils import logging as hf_logging

    from serve.arguments import ScoreArguments
    from serve.ray_engine import RayEngineError
    from serve.resume import ScoreWriteError
    from serve.scoring import score_file

    args = parse_arguments(ScoreArguments, ctx.args, prog="detente score",
                           description=SCORE_HELP, positional=["input"])
    hf_logging.disable_progress_bar()  # our bar is the one that matters
    log_to_stderr()
    try:
        with user_errors_fail(ScoreWriteError, RayEngineError):
            result = score_file(
                args.input, args.output, text_column=args.text_column,
                id_column=args.id_column, model=args.model, backend=args.backend,
                fmt=args.format, output_fmt=args.output_format, chunk_size=args.chunk_size,
                batch_size=args.batch_size, resume=args.resume, progress=args.progress,
                engine=args.engine,
            )
    except KeyboardInterrupt:
        fail("interrupted; finished parts are kept: run the same command with --resume "
             "to go on", code=130)
    errors = f", {result.errors:,} with an error (see the error column)" if result.errors else ""
    split = f", {result.windowed_rows:,} long texts windowed" if result.windowed_rows else ""
    typer.echo(
        f"scored {result.rows:,} rows{errors}{split} with {result.backend} "
        f"(model {result.model_version}) at {result.rows_per_second:,.0f} statements/s "
        f"-> {result.output}",
        err=True,
    )


def select_backend(ctx: typer.Context) -> None:
    """Choose what `detente score --backend auto` runs for a model, on validation statements."""
    from transformers.utils import logging as hf_logging

    from serve.arguments import SelectBackendArguments
    from serve.loading import model_folder
    from training.backend_selection import describe_selection, select_backend_on_file
    from training.bundled_data import selection_data_file

    args = parse_arguments(SelectBackendArguments, ctx.args, prog="detente select-backend",
                           description=SELECT_BACKEND_HELP)
    hf_logging.disable_progress_bar()  # a "Loading weights" bar per candidate is noise here
    log_to_stderr()
    with user_errors_fail():
        folder = model_folder(args.model)
        selection = select_backend_on_file(folder, args.data or selection_data_file())
    typer.echo(describe_selection(selection))
    typer.echo(f"saved to {selection.get('file', '(not written)')}")
