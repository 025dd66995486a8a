"""A scoring run's request and report: the checked ``Job``, its progress bar, ``ScoreResult``.

Both engines (``serve.scoring``'s local one and ``serve.ray_engine``) start from the same
``Job``, show the same bar and return the same ``ScoreResult``. ``prepare_job`` checks
everything that can be checked before a model is loaded (formats, paths, the text column),
so a mistake costs a second, not a model load. Output paths come from the caller, never
from cell content, and the output must be a regular file (or not exist yet): a device such
as /dev/null or a pipe is refused, because the finished file is renamed over it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from model.errors import DataError
from training.tables import InputInfo, detect_format, scan_input


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
        """Rows scored by this run (not the resumed ones) per second."""
        return (self.rows - self.resumed_rows) / self.seconds if self.seconds > 0 else 0.0


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


def make_progress(total: int, initial: int, enabled: bool) -> tqdm:
    """A statements/s bar with an ETA on stderr (sparse updates when not a terminal)."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total, initial=initial, desc="scoring", unit=" statements", unit_scale=True,
        disable=not enabled, file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
        mininterval=0.5 if interactive else 15.0,
    )


class ChunkProgress:
    """Moves the bar by rows while a chunk's windows are scored, exact at chunk end.

    Moved only at chunk ends, the bar would stand still through a long chunk, like a hang.
    """

    def __init__(self, bar: tqdm, first_row: int, rows: int) -> None:
        self.bar, self.first_row, self.rows = bar, first_row, rows
        self.done_windows = 0

    def __call__(self, windows: int, total_windows: int) -> None:
        self.done_windows += windows
        target = self.first_row + self.rows * self.done_windows // max(total_windows, 1)
        self.bar.update(max(0, target - self.bar.n))

    def finish(self) -> None:
        self.bar.update(self.first_row + self.rows - self.bar.n)
