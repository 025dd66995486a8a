"""Resuming a scoring run: finished chunks kept as part files plus a manifest.

A run scoring ``out.csv`` works in the folder ``out.csv.parts/`` beside it:

- each finished chunk is written to ``part-NNNNNN.parquet`` (temp file, fsync, rename:
  ``model.files.atomic_path``), and only then is it added to ``manifest.json`` (the same),
  so the manifest never lists a part that is not completely on disk;
- a run killed at any point (even SIGKILL) leaves the parts the manifest lists; ``--resume``
  checks that the input, the model and the options are those of the interrupted run and
  goes on from the first row that no listed part holds: no row lost, none scored twice;
- when every row is scored, the parts are written into a temp file beside the output,
  which is fsynced and renamed over the output (``os.replace``): the output appears
  complete or not at all. Then the folder is removed.

A lock file keeps two runs from writing the same folder at once.

A failed write (disk full, file size limit, quota, read-only disk) raises
``ScoreWriteError`` with one sentence naming the file, the reason and what is kept: the
parts finished before it stay listed in the manifest, a half-written part or temp file is
removed, and ``--resume`` finishes the job once there is room. The temp output is created
with a random name and ``O_EXCL``, and a work folder that is a symbolic link is refused, so
a link planted at a predictable name beside the output (in a shared folder such as /tmp)
is never written through.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from model.errors import DataError
from model.files import atomic_path, atomic_write_text
from training.tables import TableWriter, write_part

MANIFEST = "manifest.json"
LOCK = "lock"
MANIFEST_VERSION = 1
FINGERPRINT_BYTES = 1 << 20


class ScoreWriteError(RuntimeError):
    """A part, the manifest or the output could not be written; the message says what to do."""


def describe_os_error(err: OSError) -> str:
    """The OS's words for a failed write ("No space left on device"), on one line."""
    code = err.errno
    found = re.search(r"\[errno (\d+)\]", str(err))  # pyarrow: "... Detail: [errno 28] ..."
    if found:
        code = int(found[1])
    if code:
        return os.strerror(code)
    return " ".join(str(err).split()) or type(err).__name__


@dataclass
class Manifest:
    """What a run has finished, and what it must match to be resumed."""

    input: str
    fingerprint: dict
    settings: dict
    chunk_size: int
    batch_size: int
    total_rows: int
    parts: list[dict] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @property
    def rows_done(self) -> int:
        return sum(part["rows"] for part in self.parts)


def fingerprint(path: Path) -> dict:
    """Size and hashes of the first and last MiB: a changed input cannot be resumed."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = hashlib.sha256(handle.read(FINGERPRINT_BYTES)).hexdigest()
        handle.seek(max(0, size - FINGERPRINT_BYTES))
        tail = hashlib.sha256(handle.read(FINGERPRINT_BYTES)).hexdigest()
    return {"size": size, "head_sha256": head, "tail_sha256": tail}


class WorkDir:
    """The ``<output>.parts`` folder of one output file."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = output.with_name(output.name + ".parts")
        self._lock_fd: int | None = None

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def part_path(self, index: int) -> Path:
        return self.path / f"part-{index:06d}.parquet"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def lock(self) -> None:
        """Hold an exclusive lock on the folder (released by the OS if the process dies)."""
        if self.path.is_symlink():  # planted in a shared folder: parts would go elsewhere
            raise ScoreWriteError(
                f"the work folder {self.path} is a symbolic link; remove it or choose "
                "another output"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ScoreWriteError(
                f"cannot create the work folder {self.path} beside the output: "
                f"{describe_os_error(err)}"
            ) from err
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks, run unguarded
            return
        try:
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ScoreWriteError(f"cannot write in {self.path}: {describe_os_error(err)}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(
                f"another `detente score` is writing {self.output} (its work folder "
                f"{self.path} is locked); wait for it or choose another output"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> Manifest:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if data.get("version") != MANIFEST_VERSION:
                raise ValueError(f"manifest version {data.get('version')}")
            return Manifest(**data)
        except (OSError, ValueError, TypeError) as err:
            raise DataError(
                f"cannot resume: {self.manifest_path} is unreadable ({err}); "
                f"delete {self.path} to start over"
            ) from err

    def save(self, manifest: Manifest) -> None:
        try:
            atomic_write_text(self.manifest_path, json.dumps(asdict(manifest), indent=1) + "\n")
        except OSError as err:
            raise self._write_error(self.manifest_path, err, manifest) from err

    def add_part(
        self, manifest: Manifest, table: pa.Table, first_row: int, **counts: int
    ) -> None:
        """Write a finished chunk durably, then record it (never the other way round)."""
        index = len(manifest.parts)
        path = self.part_path(index)
        try:
            write_part(table, path)
        except OSError as err:
            raise self._write_error(path, err, manifest) from err
        manifest.parts.append(
            {"file": path.name, "first_row": first_row, "rows": table.num_rows, **counts}
        )
        try:
            self.save(manifest)
        except ScoreWriteError:
            manifest.parts.pop()  # the manifest on disk does not list it: redone on resume
            raise

    def _write_error(self, path: Path, err: OSError, manifest: Manifest) -> ScoreWriteError:
        if not manifest.parts:
            return ScoreWriteError(
                f"could not write {path}: {describe_os_error(err)}. No part was finished: "
                "make room, then run the same command again"
            )
        return ScoreWriteError(
            f"could not write {path}: {describe_os_error(err)}. The {len(manifest.parts)} "
            f"finished part(s) ({manifest.rows_done:,} of {manifest.total_rows:,} rows) are "
            f"kept in {self.path}: make room, then run the same command with --resume"
        )

    def valid_prefix(self, manifest: Manifest) -> list[dict]:
        """The listed parts that are intact and contiguous from row 0 (the rest is redone)."""
        kept, next_row = [], 0
        for part in manifest.parts:
            path = self.path / part["file"]
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except (OSError, pa.ArrowException):
                break
            if rows != part["rows"] or part["first_row"] != next_row:
                break
            kept.append(part)
            next_row += rows
        return kept

    def clean_temp_files(self) -> None:
        """Remove what a killed run left half-written: temp parts and a temp output."""
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        pattern = f".{glob.escape(self.output.name)}.{'?' * 8}.tmp"  # atomic_path's temp names
        for tmp in self.output.parent.glob(pattern):
            tmp.unlink(missing_ok=True)

    def remove(self) -> None:
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)

    def assemble(self, manifest: Manifest, fmt: str, schema: pa.Schema) -> int:
        """Write every part, in order, into the output; atomically. Returns the row count."""
        parts = [self.path / part["file"] for part in manifest.parts]
        try:
            return write_atomically(self.output, fmt, schema, _part_tables(parts))
        except OSError as err:
            raise ScoreWriteError(
                f"could not write the output {self.output}: {describe_os_error(err)}. Every row is "
                f"scored and kept in {self.path}: make room, then run the same command with "
                "--resume to write the output"
            ) from err


def _part_tables(parts: list[Path]):
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=16_384):
            yield pa.Table.from_batches([batch])


def write_atomically(output: Path, fmt: str, schema: pa.Schema, tables) -> int:
    """Stream ``tables`` into a temp file beside ``output``, then rename it into place.

    The temp file (``model.files.atomic_path``) has a random name and is created with
    ``O_EXCL``, so a link planted beside the output is never written through.
    """
    with atomic_path(output) as tmp:
        writer = TableWriter(tmp, fmt, schema)
        try:
            for table in tables:
                writer.write(table)
            writer.close()
        except BaseException:
            with contextlib.suppress(Exception):  # closing flushes: it can fail again
                writer.close()
            raise
    return writer.rows
