"""``detente score --engine ray``: the same scoring on Ray Data, beyond one machine.

Ray Data reads the input in parallel (``read_parquet``, ``read_csv``; JSONL through
``read_text`` plus the local engine's own JSON typing, so odd rows get the same ``error``
as locally), then ``map_batches`` sends chunks to a pool of ``RayScorer`` actors, each of
which loads the model once. The driver receives the scored chunks in input order
(``preserve_order``), adds row numbers and writes the single output file atomically
through the same writer as the local engine, so both engines give the same file.

Where: a local Ray started for the job, or the cluster at ``RAY_ADDRESS``. Workers need
the ``detente`` package and read the model folder by path, so on a cluster both must be
where every node can see them (a shared file system, or a runtime_env). The backend is
resolved (and an ONNX graph exported) once, in the driver, before any actor starts.

Locally (a laptop, CI) Ray is started with ``include_dashboard=False``, bound to
127.0.0.1, with authentication off (``RAY_AUTH_MODE=disabled``), and the actor pool
leaves one CPU to Ray's read tasks, which otherwise starve (benchmarks/results/
notes_from_code.md). ``DETENTE_RAY_ACTORS`` overrides the pool size. ``--resume`` is not
offered here: a run is one Ray job, and Ray retries failed tasks itself.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from model.classifier import Classifier
from model.config import DetenteConfig
from model.errors import one_line
from serve.loading import resolve
from serve.output_layout import plan_layout
from serve.resume import ScoreWriteError, describe_os_error, write_atomically
from serve.score_job import Job, ScoreResult, make_progress
from serve.scored_rows import output_column_names, score_texts, scored_columns, text_error
from training.tables import MISSING, csv_options, json_values, text_encoding

SCORE_PREFIX = "__detente_"  # scored columns travel beside the input ones, under this prefix
PRE_ERROR = SCORE_PREFIX + "text_error"
WINDOWED = "windowed"  # travels as __detente_windowed: rows read in several windows
log = logging.getLogger("detente.score")


class RayEngineError(RuntimeError):
    """Ray is missing, cannot start, or the job failed; the message says which."""


class BadCell:
    """A text cell already known to be unusable (JSONL parsed on a Ray task)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise RayEngineError(
            "--engine ray needs Ray Data: pip install 'detente[ray]'"
        ) from err
    return ray


def init_ray():
    """Connect to RAY_ADDRESS, or start a small local Ray fit for a laptop or CI."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet = {"log_to_driver": False, "configure_logging": False}
    try:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **quiet)
        else:
            ray.init(
                num_cpus=max(2, os.cpu_count() or 2), include_dashboard=False,
                _node_ip_address="127.0.0.1", **quiet,
            )
    except Exception as err:
        raise RayEngineError(f"could not start or reach Ray: {err}") from err
    return ray


def actor_count(ray) -> int:
    """Actors in the pool: every CPU but one, which the read tasks need."""
    env = os.environ.get("DETENTE_RAY_ACTORS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus - 1)


class RayScorer:
    """One per actor: loads the backend once, then scores every chunk it is given."""

    def __init__(self, model_dir: str, backend: str, text_column: str, batch_size: int,
                 threads: int) -> None:
        self.classifier = Classifier.load(model_dir, backend=backend, threads=threads)
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        values = batch.column(self.text_column).to_pylist()
        if PRE_ERROR in batch.column_names:
            marks = batch.column(PRE_ERROR).to_pylist()
            values = [BadCell(m) if m is not None else v for v, m in zip(values, marks)]
            batch = batch.drop_columns([PRE_ERROR])
        scores = score_texts(
            [None if isinstance(v, BadCell) else v for v in values], self.classifier,
            column=self.text_column, batch_size=self.batch_size,
        )
        for i, value in enumerate(values):
            if isinstance(value, BadCell):
                scores.errors[i] = value.message
        columns = scored_columns(scores, self.classifier.config,
                                 self.classifier.model_version)
        columns[WINDOWED] = pa.array(scores.windowed)
        for name, array in columns.items():
            batch = batch.append_column(SCORE_PREFIX + name, array)
        return batch


def parse_json_lines(batch: pa.Table, schema: pa.Schema, text_column: str) -> pa.Table:
    """``read_text`` lines to typed columns, exactly as the local JSONL reader types them."""
    rows = []
    for line in batch.column("text").to_pylist():
        line = line.lstrip("\ufeff")
        if line.strip():
            rows.append(json.loads(line))
    columns = [
        pa.array(json_values([row.get(f.name) for row in rows], f), type=f.type)
        for f in schema
    ]
    marks = []
    for row in rows:
        value = row.get(text_column, MISSING)
        marks.append(None if isinstance(value, str) else text_error(value, text_column))
    table = pa.Table.from_arrays(columns, schema=schema)
    return table.append_column(PRE_ERROR, pa.array(marks, type=pa.string()))


def read_dataset(ray, job: Job):
    """The input as a Ray Dataset with the columns and types the local engine would read."""
    path = str(job.input.resolve())
    info = job.info
    if job.input_format == "parquet":
        return ray.data.read_parquet(path)
    if job.input_format in ("csv", "tsv"):
        read, parse, convert = csv_options(
            job.input, job.input_format, info.schema.names, info.block_size
        )
        return ray.data.read_csv(
            path, read_options=read, parse_options=parse, convert_options=convert,
            file_extensions=None,
        )
    encoding = "utf-16" if text_encoding(job.input) == "utf-16" else "utf-8"
    lines = ray.data.read_text(path, encoding=encoding, drop_empty_lines=True)
    return lines.map_batches(
        parse_json_lines, batch_format="pyarrow", batch_size=None,
        fn_kwargs={"schema": info.schema, "text_column": job.text_column},
    )


def score_with_ray(
    job: Job, *, model: str | Path | None, backend: str, progress: bool
) -> ScoreResult:
    """Score ``job`` on Ray Data and write its output file (see the module docstring)."""
    ray = init_ray()
    resolved = resolve(model, backend)
    config = DetenteConfig.from_pretrained(resolved.folder, local_files_only=True)
    layout = plan_layout(job.info.schema, job.id_column, config)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    scored = read_dataset(ray, job).map_batches(
        RayScorer,
        fn_constructor_kwargs={
            "model_dir": str(resolved.folder), "backend": resolved.name,
            "text_column": job.text_column, "batch_size": job.batch_size, "threads": 1,
        },
        batch_size=job.chunk_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actor_count(ray)), num_cpus=1,
    )
    counts = {"rows": 0, "errors": 0, "windowed": 0}
    started = time.perf_counter()
    score_names = [SCORE_PREFIX + n for n in [*output_column_names(config), WINDOWED]]

    def tables() -> Iterator[pa.Table]:
        with make_progress(job.info.num_rows, 0, progress) as bar:
            for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                inputs = batch.drop_columns(score_names)
                columns = {n[len(SCORE_PREFIX):]: batch.column(n) for n in score_names}
                yield layout.build(inputs, columns, counts["rows"])
                counts["rows"] += batch.num_rows
                counts["errors"] += batch.num_rows - columns["error"].null_count
                counts["windowed"] += sum(columns[WINDOWED].to_pylist())
                bar.update(batch.num_rows)

    try:
        written = write_output(job, layout.schema, tables())
    except ray.exceptions.RayError as err:
        raise RayEngineError(f"the Ray job failed: {one_line(err, last=True)}") from err
    if written != job.info.num_rows:
        raise RayEngineError(f"Ray returned {written} rows for {job.info.num_rows} input rows")
    return ScoreResult(job.output, written, counts["errors"], counts["windowed"], resolved.name,
                       resolved.version, time.perf_counter() - started)


def write_output(job: Job, schema: pa.Schema, tables: Iterable[pa.Table]) -> int:
    """Write an ordered stream of output tables atomically, as the local engine's output is.

    The local engine assembles its part files with the same writer (``serve.resume``).
    """
    try:
        return write_atomically(job.output, job.output_format, schema, tables)
    except OSError as err:
        raise ScoreWriteError(
            f"could not write the output {job.output}: {describe_os_error(err)}"
        ) from err
