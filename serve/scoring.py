"""Batch scoring of files: ``score_file`` (``detente score``), streaming, resumable, in order.

Input: CSV, TSV, JSONL or Parquet (by extension or ``fmt``), read in chunks of
``chunk_size`` rows so memory stays flat however large the file (see ``training.tables``).

Output: one row per input row, in input order, in any of the same formats:

- every input column as it is (a column whose name clashes with an output column below is
  kept as ``input_<name>``), preceded by ``id`` (the 1-based row number) when the input
  has no ``id`` column and no ``id_column`` was named (``serve.output_layout``);
- ``stance`` and ``p_pro_negotiation``, ``p_accusatory``, ``p_neutral`` (calibrated
  probabilities), ``sentiment`` and ``sentiment_score`` = P(positive) - P(negative);
- ``model_version``: the content hash of the weights (``model.persistence.weights_hash``);
- ``error``: empty for a scored row; for a row that cannot be scored (text missing, null,
  NaN, empty or blank, not a string, not valid Unicode, or longer than
  ``MAX_TEXT_CHARS`` characters) a sentence naming the problem, with the label and
  probability columns empty. No row is ever dropped (``serve.scored_rows``).

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
This module is that local run and its resume checks; the request, its progress bar and
result are ``serve.score_job``, and ``engine="ray"`` runs the same rows on Ray Data
(``serve.ray_engine``, which starts or imports Ray only when called).

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
import time
from pathlib import Path

from model.backends import BACKENDS
from model.classifier import Classifier
from model.errors import DataError
from serve.loading import load_classifier
from serve.output_layout import plan_layout
from serve.ray_engine import score_with_ray
from serve.resume import Manifest, WorkDir, fingerprint
from serve.score_job import ChunkProgress, Job, ScoreResult, make_progress, prepare_job
from serve.scored_rows import DEFAULT_BATCH_SIZE, score_texts, scored_columns
from training.tables import read_chunks

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SIZE", "ENGINES", "ScoreResult", "score_file",
           "score_texts"]

DEFAULT_CHUNK_SIZE = 10_000
ENGINES = ("local", "ray")
log = logging.getLogger("detente.score")


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
        return score_with_ray(job, model=model, backend=backend, progress=progress)
    if loaded is None:
        loaded = load_classifier(model, backend=backend)
    return _score_local(job, loaded, resume=resume, progress=progress)


def _score_local(
    job: Job, classifier: Classifier, *, resume: bool, progress: bool
) -> ScoreResult:
    """Score chunk by chunk into part files, then assemble the output (``serve.resume``)."""
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
                tracker = ChunkProgress(bar, chunk.first_row, chunk.table.num_rows)
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
    """Refuse to write an output whose row count differs from the scan's (a changed input)."""
    if manifest.rows_done != job.info.num_rows:
        raise DataError(
            f"{job.input} changed while it was scored: read {manifest.rows_done} rows, "
            f"expected {job.info.num_rows}"
        )


def _settings(job: Job, classifier: Classifier) -> dict:
    """What must match for a resumed run to give the rows an uninterrupted one would."""
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
