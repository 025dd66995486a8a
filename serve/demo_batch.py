"""The demo's batch tab: read pasted lines or an upload, score them, chart and save them.

An upload is read, scored and written exactly as ``detente score`` reads, scores and
writes it: through ``training.tables`` (``scan_input``, ``read_chunks``, ``TableWriter``)
and ``serve.output_layout`` (``plan_layout``), so the scored file has the columns and types
of ``detente score``'s output for the same file (issue 5): every input column as
``detente score`` types it, preceded by an int64 ``id`` (the 1-based row number) when the
input has none, then ``stance``, ``p_<label>`` per stance label, ``sentiment``,
``sentiment_score``, ``model_version`` and ``error``. Input columns whose names collide with
an output column (a labelled file's gold ``stance``) are kept as ``input_<name>``. A file
that cannot be read gets ``detente score``'s sentence (the file's name, not its path).
Pasted lines are a one-column table, ``text``, as a CSV file of them would be.

Rows are scored by the same per-row logic as ``detente score``
(``serve.scored_rows.score_texts`` through ``ModelRunner.score_rows``): a row that cannot be
scored (missing, empty, non-text, invalid or over-long text) keeps its place with the same
reason in ``error``, and a text longer than the model's window is split into sentence
windows whose probabilities are averaged, never silently truncated. So a row gets the
same numbers here as from ``detente score --backend torch`` (the ONNX fp32 backend's
differ only in rounding: benchmarks/results/notes_from_code.md). The demo's own per-row
limit ``max_row_chars`` (default: ``detente score``'s) only ever adds an error, never
changes a number. Unlike ``detente score``, a text column that holds no text at all
(Parquet numbers) is scored row by row, each row saying why, rather than refused.

Scoring runs in memory in chunks of at most ``CHUNK_ROWS`` rows and about ``CHUNK_CHARS``
characters, each under the runner's fair lock, so a single-statement request waits for one
chunk at most (see ``serve.demo_runner``).
``serve.scoring.score_file`` is the tool for large files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from model.errors import DataError
from model.files import atomic_path
from serve.demo_runner import ModelRunner
from serve.output_layout import Layout, plan_layout
from serve.scored_rows import MAX_TEXT_CHARS, Scores, scored_columns, text_error
from training.tables import TableWriter, detect_format, read_chunks, scan_input

CHUNK_ROWS = 64
CHUNK_CHARS = 32_000  # about 64 statements of 500 characters; a longer row is a chunk alone
STANCE_COLOURS = {"pro_negotiation": "#2a9d8f", "accusatory": "#d1495b", "neutral": "#8d99ae"}
OUTPUT_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}


@dataclass(frozen=True)
class BatchLimits:
    """What one batch request may hold; past these the user gets a message, not a hang."""

    max_rows: int = 5_000
    max_bytes: int = 5 * 1024 * 1024
    max_chars: int = 2_000  # the single-statement tab's text box (explained word by word)
    max_row_chars: int = MAX_TEXT_CHARS  # per batch row: windowed, as detente score does


class BatchError(ValueError):
    """An input the batch tab cannot score as a whole; the message says what to change."""


@dataclass
class BatchInput:
    """Rows to score, as ``detente score`` reads them."""

    table: pa.Table  # the input columns, typed as detente score types them
    texts: list[Any]  # the raw cells of the text column (a JSON 42 stays 42: an error)
    text_column: str
    id_column: str | None  # the input's id column; None: ``id``, added when missing
    fmt: str  # the output format: the upload's own, csv for pasted lines


@dataclass
class BatchResult:
    table: pd.DataFrame  # the scored rows, in input order, for the page and the charts
    output: pa.Table  # the same rows as detente score writes them: what the download holds
    fmt: str
    seconds: float
    source: str
    text_column: str = "text"  # names of the text and id columns in ``table``/``output``
    id_column: str = "id"


def read_pasted(text: str, limits: BatchLimits) -> BatchInput:
    """One statement per non-blank line: a ``text`` column, numbered from 1 when scored."""
    size = len((text or "").encode("utf-8", errors="replace"))
    if size > limits.max_bytes:
        raise BatchError(
            f"the pasted text is {size / 2**20:.1f} MB; the demo takes up to "
            f"{limits.max_bytes / 2**20:.0f} MB. Score larger files with detente score."
        )
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise BatchError("paste at least one statement (one per line) or upload a file")
    check_row_count(len(lines), limits)
    return BatchInput(pa.table({"text": pa.array(lines, pa.string())}), lines, "text", None,
                      "csv")


def read_upload(
    path: str | Path, limits: BatchLimits, text_column: str = "text", id_column: str = "id"
) -> BatchInput:
    """Read an uploaded CSV/TSV/JSONL/Parquet file within the limits, as detente score would.

    The row count comes from the scan, before any row is held in memory.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise BatchError(
            f"the file is {size / 2**20:.1f} MB; the demo takes files up to "
            f"{limits.max_bytes / 2**20:.0f} MB. Score larger files with detente score."
        )
    text_column = (text_column or "text").strip()
    id_column = (id_column or "id").strip()
    try:
        fmt = detect_format(path)
        info = scan_input(path, fmt, text_column, check_text=False)
        if text_column not in info.schema.names:
            raise BatchError(
                f"the file has no column {text_column!r}; its columns are "
                f"{info.schema.names}. Name the text column in 'Text column'."
            )
        if info.num_rows == 0:
            raise BatchError("the file has a header but no rows")
        check_row_count(info.num_rows, limits)
        chunk = next(read_chunks(info, info.num_rows))
    except DataError as err:
        raise BatchError(str(err).replace(str(path), path.name)) from err
    ids = id_column if id_column in info.schema.names else None  # absent: numbered rows
    return BatchInput(chunk.table, chunk.texts, text_column, ids, fmt)


def check_row_count(rows: int, limits: BatchLimits) -> None:
    if rows > limits.max_rows:
        raise BatchError(
            f"{rows:,} statements; the demo scores at most {limits.max_rows:,} at once. "
            "Split the file, or score it with detente score."
        )


def row_error(value: object, max_chars: int, column: str = "text") -> str | None:
    """Why a cell cannot be scored: ``detente score``'s reasons, then the demo's limit."""
    error = text_error(value, column)
    if error is None and len(value) > max_chars:
        return (f"{column!r} is too long for the demo: {len(value):,} characters (the limit "
                f"here is {max_chars:,}; score it with detente score)")
    return error


def score_rows(
    batch: BatchInput,
    runner: ModelRunner,
    limits: BatchLimits,
    progress: Callable[[float, str], None] | None = None,
) -> Scores:
    """Score the text cells of ``batch``, a chunk at a time under the model's lock."""
    values = batch.texts
    n = len(values)
    scores = Scores(
        np.full((n, len(runner.stance_labels)), np.nan),
        np.full((n, len(runner.sentiment_labels)), np.nan),
        [row_error(v, limits.max_row_chars, batch.text_column) for v in values],
        np.zeros(n, dtype=bool),
    )
    todo = [i for i, e in enumerate(scores.errors) if e is None]
    done = 0
    for rows in chunks(todo, [len(v) if isinstance(v, str) else 0 for v in values]):
        part = runner.score_rows([values[i] for i in rows], column=batch.text_column)
        scores.stance[rows], scores.sentiment[rows] = part.stance, part.sentiment
        scores.windowed[rows] = part.windowed
        done += len(rows)
        if progress is not None:
            progress(done / len(todo), f"scored {done:,} of {len(todo):,}")
    return scores


def chunks(rows: list[int], chars: list[int]) -> list[list[int]]:
    """Rows in order, at most ``CHUNK_ROWS`` and about ``CHUNK_CHARS`` characters a chunk.

    Each chunk holds the model lock while it is scored, so long texts (many windows) make
    smaller chunks and a waiting single-statement request still gets its turn soon.
    """
    out: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in rows:
        if current and (len(current) == CHUNK_ROWS or size + chars[i] > CHUNK_CHARS):
            out.append(current)
            current, size = [], 0
        current.append(i)
        size += chars[i]
    if current:
        out.append(current)
    return out


def output_table(batch: BatchInput, scores: Scores, runner: ModelRunner) -> tuple[pa.Table, Layout]:
    """The rows as ``detente score`` writes them: its layout, its scored columns."""
    config = runner.classifier.config
    layout = plan_layout(batch.table.schema, batch.id_column, config)
    scored = scored_columns(scores, config, runner.classifier.model_version)
    return layout.build(batch.table, scored, 0), layout


def output_name(layout: Layout, column: str | None) -> str:
    """The name an input column has in the output (``input_<name>`` after a clash)."""
    if column is None:
        return "id"
    return layout.renamed[layout.input_schema.names.index(column)]


def to_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` for pandas: text as Python objects, None where there is none.

    pandas' own string type would turn a missing label or error into NaN.
    """
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns)


def display_table(
    scored: pd.DataFrame, stance_labels: list[str], text_column: str = "text",
    id_column: str = "id",
) -> pd.DataFrame:
    """The columns a person reads on screen, as ``id`` and ``text``; the download has all."""
    columns = [id_column, text_column, "stance", *[f"p_{label}" for label in stance_labels],
               "sentiment", "sentiment_score", "error"]
    view = scored[columns].copy()
    view.columns = ["id", "text", *columns[2:]]
    numeric = [c for c in columns if c.startswith("p_")] + ["sentiment_score"]
    view[numeric] = view[numeric].round(3)
    view["id"] = view["id"].map(_id_text)
    view["text"] = view["text"].map(lambda t: t if isinstance(t, str) else "")
    view["error"] = view["error"].map(lambda e: e or "")
    return view


def _id_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def write_scored(
    scored: pa.Table | pd.DataFrame, fmt: str, folder: Path, stem: str = "scored"
) -> Path:
    """Write the scored rows in ``fmt`` (csv, tsv, jsonl, parquet) under ``folder``.

    ``detente score``'s writer: formula-looking text escaped in CSV/TSV, types kept. A
    DataFrame is converted with Arrow's rules first; ``BatchResult.output`` needs none.
    """
    if isinstance(scored, pd.DataFrame):
        scored = pa.Table.from_pandas(scored, preserve_index=False)
    fmt = fmt if fmt in OUTPUT_SUFFIX else "csv"
    path = folder / f"{stem}{OUTPUT_SUFFIX[fmt]}"
    with atomic_path(path, durable=False) as tmp:
        writer = TableWriter(tmp, fmt, scored.schema)
        try:
            writer.write(scored)
        finally:
            writer.close()
    return path


def stance_chart(scored: pd.DataFrame, labels: list[str]) -> Figure:
    """Bar chart: how many statements got each stance label (rows with errors left out)."""
    counts = scored["stance"].value_counts().reindex(labels, fill_value=0)
    total = max(int(counts.sum()), 1)
    fig = Figure(figsize=(5.6, 3.2), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(labels, counts.to_numpy(),
                  color=[STANCE_COLOURS.get(label, "#577590") for label in labels])
    ax.bar_label(bars, labels=[f"{c:,} ({100 * c / total:.0f}%)" for c in counts], padding=2)
    ax.set_ylabel("statements")
    ax.set_title("Stance distribution")
    ax.set_ylim(0, max(1, int(counts.max())) * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def sentiment_histogram(scored: pd.DataFrame) -> Figure:
    """Histogram of sentiment scores on the fixed -1..1 scale, with the mean marked."""
    scores = scored["sentiment_score"].dropna().to_numpy()
    fig = Figure(figsize=(5.6, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(scores, bins=np.linspace(-1, 1, 21), color="#577590", edgecolor="white")
    if len(scores):
        mean = float(scores.mean())
        ax.axvline(mean, color="#222222", linestyle="--", linewidth=1)
        ax.annotate(f"mean {mean:+.2f}", (mean, 0.95), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", va="top")
    ax.set_xlim(-1, 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("sentiment score  (negative -1 … +1 positive)")
    ax.set_ylabel("statements")
    ax.set_title("Sentiment scores")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def summary_markdown(result: BatchResult, stance_labels: list[str]) -> str:
    table = result.table
    n, errors = len(table), int(table["error"].notna().sum())
    seconds = max(result.seconds, 1e-3)
    took = f"{seconds:.2f} s" if seconds < 10 else f"{seconds:,.0f} s"
    lines = [f"Scored **{n - errors:,}** of {n:,} statements from {result.source} in {took} "
             f"({(n - errors) / seconds:,.0f}/s)."]
    if errors:
        lines.append(f"**{errors:,} row(s) could not be scored**; they keep their place with "
                     "the reason in the `error` column.")
    shares = table["stance"].value_counts(normalize=True)
    lines.append("Stance: " + ", ".join(
        f"{label} {100 * shares.get(label, 0.0):.0f}%" for label in stance_labels) + ".")
    return "  \n".join(lines)


def run_batch(
    runner: ModelRunner,
    limits: BatchLimits,
    *,
    pasted: str | None,
    upload: str | Path | None,
    text_column: str = "text",
    id_column: str = "id",
    progress: Callable[[float, str], None] | None = None,
) -> BatchResult:
    """Read (file wins over pasted lines), score, and time one batch."""
    if upload:
        batch = read_upload(upload, limits, text_column, id_column)
        source = f"`{Path(upload).name}`"
    else:
        batch, source = read_pasted(pasted or "", limits), "the pasted lines"
    started = time.perf_counter()
    scores = score_rows(batch, runner, limits, progress)
    output, layout = output_table(batch, scores, runner)
    return BatchResult(to_frame(output), output, batch.fmt, time.perf_counter() - started,
                       source, output_name(layout, batch.text_column),
                       output_name(layout, batch.id_column))
