"""Batch scoring of files: ``score_file`` (``detente score``), streaming, resumable, in order.

Input: CSV, TSV, JSONL or Parquet (by extension or ``fmt``), read in chunks of
``chunk_size`` rows so memory stays flat however large the file (see ``training.tables``).

Output: one row per input row, in input order, in any of the same formats:

- every input column as it is (a column whose name clashes with an output column below is
  kept as ``input_<name>``), preceded by ``id`` (the 1-based row number) when the input
  has no ``id`` column and no ``id_column`` was named;
- ``stance`` and ``p_pro_negotiation``, ``p_accusatory``, ``p_neutral`` (calibrated
  probabilities), ``sentiment`` and ``sentiment_score`` = P(positive) - P(negative);
- ``model_version``: the content hash of the weights (``model.persistence.weights_hash``);
- ``error``: empty for a scored row; for a row that cannot be scored (text missing, null,
  NaN, empty or blank, not a string, not valid Unicode, or longer than
  ``MAX_TEXT_CHARS`` characters) a sentence naming the problem, with the label and
  probability columns empty. No row is ever dropped.

Long texts: a text longer than the model's ``max_seq_length`` tokens is not truncated. It
is split at sentence boundaries into windows of at most ``max_seq_length`` tokens (a
longer sentence is cut at word boundaries); each window is scored and the row gets the
mean of the windows' probabilities weighted by their token counts, labels being the
argmax of those means (``model.long_text``; ``model.classifier`` does this for every
front end).

Speed: rows are scored in groups sorted by length (little padding), in inference mode,
on the backend chosen by ``model.backends`` (``auto``: the fastest one that kept the labels
of torch fp32 on the model's validation split, measured when it was trained).

Crash safety: finished chunks are kept as part files with a manifest in
``<output>.parts/``; ``resume=True`` continues an interrupted run with no row lost or
repeated, and the output file appears atomically at the end (see ``serve.resume``).
A write that fails (disk full, file size limit) stops the run with ``ScoreWriteError``,
one sentence naming the file and the reason; the finished parts are kept for ``--resume``.

Untrusted input: cells are data, never code. They are parsed as CSV/JSON/Parquet values and
passed to the tokenizer as text; nothing is evaluated, imported or unpickled, and output
paths come from the caller, never from cell content. The output must be a regular file (or
not exist yet): a device such as /dev/null or a pipe is refused, because the finished file
is renamed over the output path.

CSV formula escaping ("CSV injection", OWASP; CWE-1236): in CSV and TSV output, a text
cell, header names included, that a spreadsheet would run as a formula gets a leading
``'``, which spreadsheets display as text. That is a cell whose first character is ``=``,
``+``, ``-`` or ``@``, or tab, carriage return, line feed or NUL (OWASP's list, plus LF
and ASVS's NUL), or whose first character after leading white space (space, tab, CR, LF,
form feed, vertical tab) is ``=``, ``+``, ``-`` or ``@``: several spreadsheets trim
leading white space before deciding that a cell is a formula, so `` =1+1`` is escaped
too. A cell that is exactly a plain number (``-5``, ``+1.5e3``, ``.25``; no white space)
is left alone: it cannot run anything, and a quote would turn the number into text. Only
cells are changed, never the characters inside them; JSONL and Parquet output, which
spreadsheets do not open as formulas, are written as they are. Rules in
``training.tables.FORMULA_START`` and ``PLAIN_NUMBER``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from model.backends import BACKENDS
from model.classifier import Classifier
from model.config import DetenteConfig
from model.errors import DataError
from model.probabilities import sentiment_score
from serve.loading import load_classifier
from serve.resume import (
    Manifest,
    ScoreWriteError,
    WorkDir,
    describe_os_error,
    fingerprint,
    write_atomically,
)
from training.tables import MISSING, InputInfo, detect_format, read_chunks, scan_input

DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_BATCH_SIZE = 32
MAX_TEXT_CHARS = 100_000
ENGINES = ("local", "ray")
SCORE_PREFIX = "__detente_"  # scored columns travelling beside the input ones (Ray)
log = logging.getLogger("detente.score")


@dataclass
class ScoreResult:
    """What a finished run did."""

    output: Path
    rows: int
    errors: int
    windowed_rows: int
    backend: str
    model_version: str
    seconds: float
    resumed_rows: int = 0

    @property
    def rows_per_second(self) -> float:
        return (self.rows - self.resumed_rows) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Scores:
    """Per-row probabilities (NaN rows where ``errors`` has a message)."""

    stance: np.ndarray
    sentiment: np.ndarray
    errors: list[str | None]
    windowed: np.ndarray  # bool per row: read in several windows

    @property
    def error_count(self) -> int:
        return sum(e is not None for e in self.errors)

    @property
    def windowed_rows(self) -> int:
        return int(self.windowed.sum())


# ----------------------------------------------------------------------------- rows


def text_error(value: Any, column: str = "text") -> str | None:
    """Why a raw cell cannot be scored, or None when it can."""
    if value is MISSING:
        return f"the row has no {column!r} field"
    if value is None:
        return f"{column!r} is missing (null)"
    if isinstance(value, float) and math.isnan(value):
        return f"{column!r} is missing (NaN)"
    if not isinstance(value, str):
        return f"{column!r} is {type(value).__name__}, not text: {value!r:.60}"
    if not value.strip():
        return f"{column!r} is empty" if not value else f"{column!r} is blank (only white space)"
    if len(value) > MAX_TEXT_CHARS:
        return (
            f"{column!r} is too long: {len(value):,} characters (the limit is "
            f"{MAX_TEXT_CHARS:,}; split such documents before scoring)"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{column!r} is not valid Unicode (it holds a lone surrogate)"
    return None


def score_texts(
    values: Sequence[Any],
    classifier: Classifier,
    *,
    column: str = "text",
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> Scores:
    """Score raw cells: bad ones get an error, the rest go through ``Classifier.score``."""
    errors = [text_error(v, column) for v in values]
    ok = [i for i, e in enumerate(errors) if e is None]
    config = classifier.config
    stance = np.full((len(values), len(config.stance_labels)), np.nan, dtype=np.float64)
    sentiment = np.full((len(values), len(config.sentiment_labels)), np.nan, dtype=np.float64)
    windowed = np.zeros(len(values), dtype=bool)
    if ok:
        scored = classifier.score([values[i] for i in ok], batch_size, on_progress)
        stance[ok], sentiment[ok] = scored.stance, scored.sentiment
        windowed[ok] = scored.windows > 1
    return Scores(stance, sentiment, errors, windowed)


def scored_columns(scores: Scores, config: DetenteConfig, version: str) -> dict[str, pa.Array]:
    """The output columns (``stance`` ... ``error``) of scored rows, as Arrow arrays."""
    n = len(scores.errors)
    invalid = np.array([e is not None for e in scores.errors], dtype=bool)
    stance_idx = np.nan_to_num(scores.stance, nan=-1.0).argmax(axis=1)
    sentiment_idx = np.nan_to_num(scores.sentiment, nan=-1.0).argmax(axis=1)
    stance_labels = np.array(config.stance_labels, dtype=object)
    sentiment_labels = np.array(config.sentiment_labels, dtype=object)
    columns: dict[str, pa.Array] = {
        "stance": _labels(stance_labels[stance_idx], invalid),
    }
    for j, label in enumerate(config.stance_labels):
        columns[f"p_{label}"] = _floats(scores.stance[:, j], invalid)
    columns["sentiment"] = _labels(sentiment_labels[sentiment_idx], invalid)
    score = sentiment_score(scores.sentiment, config.sentiment_labels)
    columns["sentiment_score"] = _floats(score, invalid)
    columns["model_version"] = pa.array([version] * n, type=pa.string())
    columns["error"] = pa.array(scores.errors, type=pa.string())
    return columns


def _labels(values: np.ndarray, invalid: np.ndarray) -> pa.Array:
    return pa.array([None if bad else v for v, bad in zip(values, invalid)], type=pa.string())


def _floats(values: np.ndarray, invalid: np.ndarray) -> pa.Array:
    return pa.array(np.nan_to_num(values).astype(np.float32), type=pa.float32(), mask=invalid)


def output_column_names(config: DetenteConfig) -> list[str]:
    return (
        ["stance"] + [f"p_{label}" for label in config.stance_labels]
        + ["sentiment", "sentiment_score", "model_version", "error"]
    )


# ----------------------------------------------------------------------------- layout


@dataclass
class Layout:
    """How input columns and scored columns make an output row."""

    input_schema: pa.Schema
    renamed: list[str]
    add_id: bool
    scored_schema: pa.Schema

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field("id", pa.int64())] if self.add_id else []
        fields += [f.with_name(name) for f, name in zip(self.input_schema, self.renamed)]
        return pa.schema(fields + list(self.scored_schema))

    def build(self, inputs: pa.Table, scored: dict[str, pa.Array], first_row: int) -> pa.Table:
        """The output table of rows ``first_row ...`` (0-based) from their parts."""
        inputs = inputs.cast(self.input_schema) if inputs.schema != self.input_schema else inputs
        arrays = list(inputs.columns)
        if self.add_id:
            ids = np.arange(first_row + 1, first_row + 1 + inputs.num_rows, dtype=np.int64)
            arrays.insert(0, pa.array(ids))
        arrays += [scored[f.name] for f in self.scored_schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def plan_layout(schema: pa.Schema, id_column: str | None, config: DetenteConfig) -> Layout:
    """Rename clashing input columns to ``input_<name>`` and decide whether to add ``id``."""
    outputs = output_column_names(config)
    if id_column is not None and id_column not in schema.names:
        raise DataError(
            f"the input has no id column {id_column!r}; its columns are {schema.names}"
        )
    taken = set(schema.names) | set(outputs)
    add_id = id_column is None and "id" not in schema.names
    if add_id:
        taken.add("id")
    renamed = []
    for name in schema.names:
        new = name
        if name in outputs:
            new = f"input_{name}"
            while new in taken:
                new = f"input_{new}"
            taken.add(new)
            log.warning("input column %r clashes with an output column: kept as %r", name, new)
        renamed.append(new)
    scored = pa.schema(
        [pa.field(name, pa.float32() if name.startswith("p_") or name == "sentiment_score"
                  else pa.string()) for name in outputs]
    )
    return Layout(schema, renamed, add_id, scored)


# ----------------------------------------------------------------------------- files


@dataclass
class Job:
    """A checked request: paths, formats, the scanned input and the options."""

    input: Path
    output: Path
    input_format: str
    output_format: str
    info: InputInfo
    text_column: str
    id_column: str | None
    chunk_size: int
    batch_size: int


def default_output(input_path: Path) -> Path:
    """``statements.csv`` -> ``statements.scored.csv``."""
    return input_path.with_name(f"{input_path.stem}.scored{input_path.suffix}")


def prepare_job(
    input_path: str | Path,
    output: str | Path | None,
    *,
    text_column: str,
    id_column: str | None,
    fmt: str | None,
    output_fmt: str | None,
    chunk_size: int,
    batch_size: int,
) -> Job:
    """Check everything that can be checked before a model is loaded."""
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    source = Path(input_path)
    in_fmt = detect_format(source, fmt, role="input")
    target = Path(output) if output is not None else default_output(source)
    if output_fmt is None and not target.suffix:
        output_fmt = in_fmt  # "scored" with no extension: same format as the input
    out_fmt = detect_format(target, output_fmt, role="output")
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise DataError(f"the output {target} is the input file; choose another output")
    if target.is_dir():
        raise DataError(f"the output {target} is a folder; give a file name")
    if target.exists() and not target.is_file():
        raise DataError(
            f"the output {target} is not a regular file (a device, pipe or socket); give a "
            "file path: the finished output is renamed over it"
        )
    info = scan_input(source, in_fmt, text_column)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Job(source, target, in_fmt, out_fmt, info, text_column, id_column, chunk_size,
               batch_size)


def score_file(
    input: str | Path,
    output: str | Path | None = None,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    model: str | Path | None = None,
    backend: str | Classifier = "auto",
    fmt: str | None = None,
    output_fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resume: bool = False,
    progress: bool = True,
    engine: str = "local",
) -> ScoreResult:
    """Score every row of ``input`` into ``output`` (see the module docstring).

    ``output`` defaults to ``<input stem>.scored<suffix>``; its format comes from its
    extension unless ``output_fmt`` is given. ``model`` is a model folder (None: the
    default model, trained first if absent); ``backend`` one of auto, torch, onnx,
    onnx-int8, or a ``Classifier`` already loaded, to score several files with one loaded
    model (``model`` is then not used); ``engine`` local or ray (Ray Data, on
    ``RAY_ADDRESS`` when set). Raises ``DataError`` for unusable input and
    ``ScoreWriteError`` when the output or a part cannot be written.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use local or ray")
    loaded = None if isinstance(backend, str) else backend
    if loaded is None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if loaded is not None and engine != "local":
        raise ValueError("engine='ray' loads the model in each worker: name the backend")
    job = prepare_job(
        input, output, text_column=text_column, id_column=id_column, fmt=fmt,
        output_fmt=output_fmt, chunk_size=chunk_size, batch_size=batch_size,
    )
    if engine == "ray":
        if resume:
            raise DataError(
                "--resume is not supported with --engine ray (Ray retries failed tasks "
                "itself); run again without --resume"
            )
        from serve.ray_engine import score_with_ray

        return score_with_ray(job, model=model, backend=backend, progress=progress)
    if loaded is None:
        loaded = load_classifier(model, backend=backend)
    return _score_local(job, loaded, resume=resume, progress=progress)


def _score_local(
    job: Job, classifier: Classifier, *, resume: bool, progress: bool
) -> ScoreResult:
    layout = plan_layout(job.info.schema, job.id_column, classifier.config)
    work = WorkDir(job.output)
    work.lock()
    manifest = None
    try:
        manifest = _start_or_resume(work, job, classifier, resume)
        resumed = manifest.rows_done
        started = time.perf_counter()
        with make_progress(job.info.num_rows, resumed, progress) as bar:
            for chunk in read_chunks(job.info, manifest.chunk_size, resumed):
                tracker = _ChunkProgress(bar, chunk.first_row, chunk.table.num_rows)
                scores = score_texts(
                    chunk.texts, classifier, column=job.text_column,
                    batch_size=manifest.batch_size, on_progress=tracker,
                )
                table = layout.build(
                    chunk.table,
                    scored_columns(scores, classifier.config, classifier.model_version),
                    chunk.first_row,
                )
                work.add_part(manifest, table, chunk.first_row,
                              errors=scores.error_count, windowed_rows=scores.windowed_rows)
                tracker.finish()
        _check_complete(manifest, job)
        written = work.assemble(manifest, job.output_format, layout.schema)
        if written != job.info.num_rows:
            raise RuntimeError(f"wrote {written} rows for {job.info.num_rows} input rows")
        work.remove()
    except BaseException:
        if not work.exists() or (manifest is not None and not manifest.parts):
            work.remove()  # nothing finished to resume from: leave no folder behind
        raise
    finally:
        work.unlock()
    return ScoreResult(
        job.output, written, sum(p.get("errors", 0) for p in manifest.parts),
        sum(p.get("windowed_rows", 0) for p in manifest.parts), classifier.backend_name,
        classifier.model_version, time.perf_counter() - started, resumed,
    )


def _check_complete(manifest: Manifest, job: Job) -> None:
    if manifest.rows_done != job.info.num_rows:
        raise DataError(
            f"{job.input} changed while it was scored: read {manifest.rows_done} rows, "
            f"expected {job.info.num_rows}"
        )


def _settings(job: Job, classifier: Classifier) -> dict:
    return {
        "input_format": job.input_format,
        "text_column": job.text_column,
        "id_column": job.id_column,
        "backend": classifier.backend_name,
        "model_version": classifier.model_version,
    }


def _start_or_resume(work: WorkDir, job: Job, classifier: Classifier, resume: bool) -> Manifest:
    """The manifest to work with: a checked one to resume, or a fresh one."""
    previous = None
    if work.exists():
        try:
            previous = work.load()
        except DataError:
            if resume:
                raise
    if previous is not None:
        if previous.parts and not resume:
            raise DataError(
                f"an interrupted run left {len(previous.parts)} finished part(s) "
                f"({previous.rows_done:,} of {previous.total_rows:,} rows) in {work.path}: "
                "pass --resume to continue it, or delete that folder to start over"
            )
        if resume:
            return _resumable(work, previous, job, classifier)
    if resume:
        log.info("nothing to resume for %s: starting from the first row", job.output)
    for stale in work.path.glob("part-*"):
        stale.unlink()
    manifest = Manifest(
        input=str(job.input.resolve()), fingerprint=fingerprint(job.input),
        settings=_settings(job, classifier), chunk_size=job.chunk_size,
        batch_size=job.batch_size, total_rows=job.info.num_rows,
    )
    work.save(manifest)
    return manifest


def _resumable(work: WorkDir, manifest: Manifest, job: Job, classifier: Classifier) -> Manifest:
    """Check that the interrupted run is this one; keep its intact parts."""
    if manifest.fingerprint != fingerprint(job.input):
        raise DataError(
            f"cannot resume: {job.input} is not the file the interrupted run was scoring "
            f"({manifest.input}); delete {work.path} to start over"
        )
    wanted = _settings(job, classifier)
    changed = [
        f"{key} was {manifest.settings.get(key)!r}, now {value!r}"
        for key, value in wanted.items() if manifest.settings.get(key) != value
    ]
    if changed:
        raise DataError(
            "cannot resume with different options: " + "; ".join(changed)
            + f" (use the interrupted run's options, or delete {work.path} to start over)"
        )
    if (job.chunk_size, job.batch_size) != (manifest.chunk_size, manifest.batch_size):
        log.info("resuming with the interrupted run's chunk size %d and batch size %d",
                 manifest.chunk_size, manifest.batch_size)
    kept = work.valid_prefix(manifest)
    if len(kept) != len(manifest.parts):
        log.warning("%d damaged part(s) in %s will be scored again",
                    len(manifest.parts) - len(kept), work.path)
        manifest.parts = kept
        work.save(manifest)
    work.clean_temp_files()
    log.info("resuming %s: %s of %s rows already scored", job.output,
             f"{manifest.rows_done:,}", f"{manifest.total_rows:,}")
    return manifest


# ----------------------------------------------------------------------------- progress


def make_progress(total: int, initial: int, enabled: bool) -> tqdm:
    """A statements/s bar with an ETA on stderr (sparse updates when not a terminal)."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, desc="scoring", unit=" statements", unit_scale=True,
        disable=not enabled, file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
        mininterval=0.5 if interactive else 15.0,
    )


class _ChunkProgress:
    """Moves the bar by rows while a chunk's windows are scored, exact at chunk end."""

    def __init__(self, bar: tqdm, first_row: int, rows: int) -> None:
        self.bar, self.first_row, self.rows = bar, first_row, rows
        self.done_windows = 0

    def __call__(self, windows: int, total_windows: int) -> None:
        self.done_windows += windows
        target = self.first_row + self.rows * self.done_windows // max(total_windows, 1)
        self.bar.update(max(0, target - self.bar.n))

    def finish(self) -> None:
        self.bar.update(self.first_row + self.rows - self.bar.n)


def write_output(job: Job, schema: pa.Schema, tables) -> int:
    """Write an ordered stream of output tables atomically (the Ray engine's path)."""
    try:
        return write_atomically(job.output, job.output_format, schema, tables)
    except OSError as err:
        raise ScoreWriteError(
            f"could not write the output {job.output}: {describe_os_error(err)}"
        ) from err
