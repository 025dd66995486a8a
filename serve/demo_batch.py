"""The demo's batch tab: read pasted lines or an upload, score them, chart and save them.

The output has the columns of ``detente score`` (issue 5): every input column, then
``stance``, ``p_<label>`` per stance label, ``sentiment``, ``sentiment_score``,
``model_version`` and ``error``; an ``id`` (the 1-based row number) is added when the input
has none. Input columns whose names collide with an output column (a labelled file's gold
``stance``) are kept as ``input_<name>``.

Rows are scored by the same per-row logic as ``detente score``
(``serve.scoring.score_texts`` through ``ModelRunner.score_rows``): a row that cannot be
scored (missing, empty, non-text, invalid or over-long text) keeps its place with the same
reason in ``error``, and a text longer than the model's window is split into sentence
windows whose probabilities are averaged, never silently truncated. So a row gets the
same numbers here as from ``detente score --backend torch`` (and within 1e-4 of the
ONNX fp32 backend). The demo's own per-row limit ``max_row_chars`` (default: ``detente
score``'s) only ever adds an error, never changes a number.

Scoring runs in memory in chunks of at most ``CHUNK_ROWS`` rows and about ``CHUNK_CHARS``
characters, each under the runner's fair lock, so a single-statement request waits for one
chunk at most (see ``serve.runner``).
``serve.scoring.score_file`` is the tool for large files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from model.errors import DataError
from serve.runner import ModelRunner
from serve.scoring import MAX_TEXT_CHARS, Scores, scored_columns, text_error
from serve.tabular_io import escape_formula as escape_text_formula
from training.data import detect_format, read_table

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
class BatchResult:
    table: pd.DataFrame  # the scored rows, in input order
    fmt: str  # the output format: the upload's own, csv for pasted lines
    seconds: float
    source: str


def read_pasted(text: str, limits: BatchLimits) -> pd.DataFrame:
    """One statement per non-blank line, numbered from 1."""
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
    return pd.DataFrame({"id": [str(i) for i in range(1, len(lines) + 1)], "text": lines})


def read_upload(
    path: str | Path, limits: BatchLimits, text_column: str = "text", id_column: str = "id"
) -> tuple[pd.DataFrame, str]:
    """Read an uploaded CSV/TSV/JSONL/Parquet file within the limits; returns (table, format)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise BatchError(
            f"the file is {size / 2**20:.1f} MB; the demo takes files up to "
            f"{limits.max_bytes / 2**20:.0f} MB. Score larger files with detente score."
        )
    try:
        fmt = detect_format(path)
        frame = read_table(path, fmt)
    except DataError as err:
        raise BatchError(str(err).replace(str(path), path.name)) from err
    text_column = (text_column or "text").strip()
    if text_column not in frame.columns:
        raise BatchError(
            f"the file has no column {text_column!r}; its columns are {list(frame.columns)}. "
            "Name the text column in 'Text column'."
        )
    if len(frame) == 0:
        raise BatchError("the file has a header but no rows")
    check_row_count(len(frame), limits)
    return normalise_input(frame, text_column, (id_column or "id").strip()), fmt


def check_row_count(rows: int, limits: BatchLimits) -> None:
    if rows > limits.max_rows:
        raise BatchError(
            f"{rows:,} statements; the demo scores at most {limits.max_rows:,} at once. "
            "Split the file, or score it with detente score."
        )


def normalise_input(frame: pd.DataFrame, text_column: str, id_column: str) -> pd.DataFrame:
    """Canonical ``id`` and ``text`` columns first; colliding columns renamed ``input_*``."""
    frame = frame.reset_index(drop=True)
    ids = frame[id_column] if id_column in frame.columns else pd.Series(
        [str(i) for i in range(1, len(frame) + 1)])
    texts = frame[text_column]
    rest = frame.drop(columns=[c for c in (text_column, id_column) if c in frame.columns])
    out = pd.DataFrame({"id": ids.to_numpy(dtype=object), "text": texts.to_numpy(dtype=object)})
    for column in rest.columns:
        name = str(column)
        out[name if name not in RESERVED else f"input_{name}"] = rest[column].to_numpy()
    return out


RESERVED = {"id", "text", "stance", "sentiment", "sentiment_score", "model_version", "error"}


def row_error(value: object, max_chars: int, column: str = "text") -> str | None:
    """Why a cell cannot be scored: ``detente score``'s reasons, then the demo's limit."""
    error = text_error(value, column)
    if error is None and len(value) > max_chars:
        return (f"{column!r} is too long for the demo: {len(value):,} characters (the limit "
                f"here is {max_chars:,}; score it with detente score)")
    return error


def score_table(
    frame: pd.DataFrame,
    runner: ModelRunner,
    limits: BatchLimits,
    progress: Callable[[float, str], None] | None = None,
    column: str = "text",
) -> pd.DataFrame:
    """Add the prediction columns to ``frame`` (which has ``id`` and ``text``).

    ``column`` is the text column's name in the user's file, used in error messages.
    """
    values = frame["text"].tolist()
    n = len(values)
    scores = Scores(
        np.full((n, len(runner.stance_labels)), np.nan),
        np.full((n, len(runner.sentiment_labels)), np.nan),
        [row_error(v, limits.max_row_chars, column) for v in values],
        np.zeros(n, dtype=bool),
    )
    todo = [i for i, e in enumerate(scores.errors) if e is None]
    done = 0
    for rows in chunks(todo, [len(v) if isinstance(v, str) else 0 for v in values]):
        part = runner.score_rows([values[i] for i in rows], column=column)
        scores.stance[rows], scores.sentiment[rows] = part.stance, part.sentiment
        scores.windowed[rows] = part.windowed
        done += len(rows)
        if progress is not None:
            progress(done / len(todo), f"scored {done:,} of {len(todo):,}")
    return add_prediction_columns(frame, scores, runner)


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


def add_prediction_columns(
    frame: pd.DataFrame, scores: Scores, runner: ModelRunner
) -> pd.DataFrame:
    """``frame`` plus the scored columns, built exactly as ``detente score`` builds them."""
    out = frame.copy()
    columns = scored_columns(scores, runner.classifier.config, runner.classifier.model_version)
    for name, values in columns.items():
        if pa.types.is_floating(values.type):  # float32 as written by detente score
            out[name] = values.to_numpy(zero_copy_only=False)
        else:  # labels and errors: None where there is none (not pandas' string NaN)
            out[name] = pd.Series(values.to_pylist(), dtype=object, index=out.index)
    return out


def display_table(scored: pd.DataFrame, stance_labels: list[str]) -> pd.DataFrame:
    """The columns a person reads on screen; the download has everything."""
    columns = ["id", "text", "stance", *[f"p_{label}" for label in stance_labels],
               "sentiment", "sentiment_score", "error"]
    view = scored[columns].copy()
    numeric = [c for c in columns if c.startswith("p_")] + ["sentiment_score"]
    view[numeric] = view[numeric].round(3)
    view["text"] = view["text"].map(lambda t: t if isinstance(t, str) else "")
    view["error"] = view["error"].map(lambda e: e or "")
    return view


def escape_formula(value: object) -> object:
    """Stop a spreadsheet from running a cell as a formula (``=cmd()``, ``@SUM``, ...).

    The same rule as ``detente score`` (``serve.tabular_io.escape_formula``), so a file
    downloaded from the demo is as safe to open as one scored on the command line.
    """
    return escape_text_formula(value) if isinstance(value, str) else value


def write_scored(scored: pd.DataFrame, fmt: str, folder: Path, stem: str = "scored") -> Path:
    """Write the scored table in ``fmt`` (csv, tsv, jsonl, parquet) under ``folder``."""
    fmt = fmt if fmt in OUTPUT_SUFFIX else "csv"
    path = folder / f"{stem}{OUTPUT_SUFFIX[fmt]}"
    if fmt in ("csv", "tsv"):
        text_columns = [c for c in scored.columns if scored[c].dtype == object
                        or pd.api.types.is_string_dtype(scored[c])]
        safe = scored.copy()
        for column in text_columns:
            safe[column] = safe[column].map(escape_formula)
        safe.columns = [escape_text_formula(str(c)) for c in safe.columns]
        safe.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    elif fmt == "jsonl":
        scored.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        scored.astype({"id": str}).to_parquet(path, index=False)
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
        frame, fmt = read_upload(upload, limits, text_column, id_column)
        source = f"`{Path(upload).name}`"
    else:
        frame, fmt, source = read_pasted(pasted or "", limits), "csv", "the pasted lines"
    started = time.perf_counter()
    column = (text_column or "text").strip() if upload else "text"
    scored = score_table(frame, runner, limits, progress, column=column)
    return BatchResult(scored, fmt, time.perf_counter() - started, source)
