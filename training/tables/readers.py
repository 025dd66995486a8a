"""Reading tables: streamed in chunks for scoring, whole for training.

Batch scoring (``detente score``, its Ray engine, the demo's batch tab) must keep memory
flat however large the file, so ``scan_input`` and ``read_chunks`` never hold a whole file:
they yield fixed-size ``pyarrow.Table`` chunks. Before any scoring starts, ``scan_input``
reads the whole file once, streaming, to count its rows (the progress bar's total), to fix
one schema for every chunk, and to fail early and clearly on a file that cannot be parsed:
better than failing after hours of scoring. Output columns are then the input columns "as
they are": CSV/TSV cells stay text, Parquet keeps its schema, JSONL is typed per key (see
``training.tables.jsonl``).

Training reads a labelled file whole into a pandas DataFrame (``read_table``): values as
the file holds them (a JSON number stays a number, so validation can say "text is not a
string"), CSV cells as text. Its CSV parser is pandas', whose line numbers its messages
give, and which keeps a lone CR inside a cell of a LF file (see ``lf_lines``).

A file that cannot be read fails with one sentence naming the row (1-based, header not
counted: the number the output's ``id`` gets) or the line: a row with the wrong number of
fields, a cell that is not valid UTF-8 (and its column), a JSON line that does not parse, a
binary file (details in ``training.tables.csv_diagnostics``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from datasets import DatasetDict, load_from_disk

from model.errors import DataError
from training.tables.csv_diagnostics import (
    RowTooLarge,
    check_last_quote,
    csv_error,
    has_line_break,
    header_line,
    line_break_rows,
    parser_message,
    undecodable_message,
)
from training.tables.formats import (
    CSV_BLOCK_SIZE,
    CSV_MAX_BLOCK_SIZE,
    HF,
    delimiter,
    detect_format,
    open_csv,
    python_encoding,
)
from training.tables.jsonl import iter_json_rows, json_table, scan_jsonl
from training.tables.parquet import parquet_tables, scan_parquet

log = logging.getLogger("detente.io")


@dataclass
class InputInfo:
    """What ``scan_input`` learned about a file: enough to read it in chunks and resume."""

    path: Path
    fmt: str
    schema: pa.Schema
    num_rows: int
    text_column: str
    block_size: int = CSV_BLOCK_SIZE  # CSV/TSV: a read block that holds the largest row


@dataclass
class Chunk:
    """Rows ``first_row .. first_row + len(table) - 1`` (0-based) of the input.

    ``texts`` holds the raw values of the text column (``MISSING`` for a JSONL row without
    it), so a number is reported as a number rather than scored as the text ``"3"``.
    """

    first_row: int
    table: pa.Table
    texts: list[Any] = field(default_factory=list)


# ----------------------------------------------------------------------------- scanning


def scan_input(path: Path, fmt: str, text_column: str, *, check_text: bool = True) -> InputInfo:
    """Read the whole file once, streaming: row count, one schema, parse errors up front.

    With ``check_text`` (``detente score``), a missing text column, or one that holds no
    text at all (Parquet numbers: a wrong ``--text-column``), is refused here; the demo
    checks the column itself, with its own words, and scores any cell it finds.
    """
    if not path.exists():
        raise DataError(f"input file {path} does not exist")
    if path.is_dir():
        raise DataError(f"input {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"input file {path} is empty")
    block_size = CSV_BLOCK_SIZE
    if fmt in ("csv", "tsv"):
        schema, num_rows, block_size = _scan_csv(path, fmt)
    elif fmt == "jsonl":
        schema, num_rows = scan_jsonl(path)
    else:
        schema, num_rows = scan_parquet(path)
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path} has duplicate column names {duplicates}; rename them first")
    if check_text:
        if text_column not in schema.names:
            raise DataError(
                f"{path} has no column {text_column!r}; its columns are {schema.names} "
                "(choose the text column with --text-column)"
            )
        _check_text_type(path, schema.field(text_column))
    return InputInfo(path, fmt, schema, num_rows, text_column, block_size)


def _check_text_type(path: Path, column: pa.Field) -> None:
    """A Parquet text column of numbers is a wrong --text-column, not 1M bad rows."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise DataError(
            f"column {column.name!r} of {path} holds {column.type}, not text "
            "(choose the text column with --text-column)"
        )


def _scan_csv(path: Path, fmt: str) -> tuple[pa.Schema, int, int]:
    """Schema, row count and the read block size that holds the file's largest row."""
    block_size = CSV_BLOCK_SIZE
    while True:
        try:
            return (*_count_csv(path, fmt, block_size), block_size)
        except RowTooLarge as err:
            if block_size >= CSV_MAX_BLOCK_SIZE:
                raise DataError(
                    f"could not read {path} as {fmt.upper()}: a row after data row {err} is "
                    f"larger than {CSV_MAX_BLOCK_SIZE >> 20} MiB (a quote that is never "
                    "closed?)"
                ) from None
            block_size *= 4


def _count_csv(path: Path, fmt: str, block_size: int) -> tuple[pa.Schema, int]:
    try:
        names = open_csv(path, fmt, block_size=block_size).schema.names
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        if "Empty CSV file" in str(err) and not has_line_break(path):
            return pa.schema([pa.field(n, pa.string()) for n in header_line(path, fmt)]), 0
        raise csv_error(path, fmt, err, None, 0, block_size) from err
    if len(set(names)) != len(names):
        return pa.schema([pa.field(n, pa.string()) for n in names]), 0  # scan_input says why
    rows, last, multiline, first_multiline = 0, None, 0, None
    try:
        reader = open_csv(path, fmt, names, block_size)
        for batch in reader:
            breaks = line_break_rows(batch)
            if breaks and first_multiline is None:
                first_multiline = rows + breaks[0] + 1
            multiline += len(breaks)
            rows += batch.num_rows
            last = batch if batch.num_rows else last
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise csv_error(path, fmt, err, names, rows, block_size) from err
    if last is not None:
        check_last_quote(path, last, rows)
    if multiline:
        log.info("%s: %s row(s) have a line break inside a quoted cell (the first: row %s); "
                 "if that is unexpected, look for a stray quote that merged rows",
                 path, f"{multiline:,}", f"{first_multiline:,}")
    return reader.schema, rows


# ----------------------------------------------------------------------------- chunks


def read_chunks(info: InputInfo, chunk_size: int, start_row: int = 0) -> Iterator[Chunk]:
    """Chunks of ``chunk_size`` rows (the last may be shorter) from row ``start_row`` on."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if start_row >= info.num_rows:
        return
    if info.fmt == "jsonl":
        yield from _jsonl_chunks(info, chunk_size, start_row)
        return
    if info.fmt in ("csv", "tsv"):
        tables, skip = _csv_tables(info), start_row
    else:
        tables, skip = parquet_tables(info.path, start_row)
    first_row = start_row
    for table in rechunk(tables, chunk_size, skip):
        texts = table.column(info.text_column).to_pylist()
        yield Chunk(first_row, table, texts)
        first_row += table.num_rows


def rechunk(tables: Iterable[pa.Table], chunk_size: int, skip: int = 0) -> Iterator[pa.Table]:
    """Regroup a stream of tables into tables of exactly ``chunk_size`` rows, after ``skip``."""
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in tables:
        if skip:
            dropped = min(skip, table.num_rows)
            table = table.slice(dropped)
            skip -= dropped
        if table.num_rows == 0:
            continue
        pending.append(table)
        pending_rows += table.num_rows
        while pending_rows >= chunk_size:
            merged = pa.concat_tables(pending).combine_chunks()
            yield merged.slice(0, chunk_size)
            rest = merged.slice(chunk_size)
            pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
    if pending_rows:
        yield pa.concat_tables(pending).combine_chunks()


def _csv_tables(info: InputInfo) -> Iterator[pa.Table]:
    rows = 0
    try:
        for batch in open_csv(info.path, info.fmt, info.schema.names, info.block_size):
            rows += batch.num_rows
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:  # the file changed since the scan
        raise csv_error(
            info.path, info.fmt, err, info.schema.names, rows, info.block_size
        ) from err


def _jsonl_chunks(info: InputInfo, chunk_size: int, start_row: int) -> Iterator[Chunk]:
    rows: list[dict] = []
    first_row = start_row
    for index, (_line_no, row) in enumerate(iter_json_rows(info.path)):
        if index < start_row:
            continue
        rows.append(row)
        if len(rows) == chunk_size:
            yield Chunk(first_row, *json_table(rows, info.schema, info.text_column))
            first_row += len(rows)
            rows = []
    if rows:
        yield Chunk(first_row, *json_table(rows, info.schema, info.text_column))


# ----------------------------------------------------------------------------- training


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a whole labelled file, strings where possible, raising DataError in words.

    CSV/TSV cells are strings (an empty cell is ``""``), JSONL and Parquet values are kept
    as they are; a saved Hugging Face dataset gets a ``split`` column per split.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    fmt = detect_format(path, fmt, role="data", folders=True)
    try:
        if fmt == HF:
            return _read_hf(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty")
        encoding = python_encoding(path)
        if fmt == "jsonl":
            return _read_jsonl(path, encoding)
        return pd.read_csv(
            path, sep=delimiter(fmt), dtype=str, keep_default_na=False, na_values=[],
            encoding=encoding, quoting=csv.QUOTE_MINIMAL,
            lineterminator="\n" if lf_lines(path, encoding) else None,
        )
    except DataError:
        raise
    except UnicodeDecodeError as err:
        raise DataError(undecodable_message(path, err)) from err
    except (pd.errors.ParserError, ValueError, TypeError, NotImplementedError) as err:
        # pyarrow's ArrowInvalid / ArrowTypeError / ArrowNotImplementedError derive from these
        raise DataError(f"could not parse {path} as {fmt}: {parser_message(err)}") from err
    except OSError as err:  # unreadable, or a corrupt Parquet page (pyarrow raises OSError)
        reason = " ".join(str(err.strerror or err).split())
        raise DataError(f"could not read {path}: {reason}") from err


def lf_lines(path: Path, encoding: str) -> bool:
    """Does the header line end in a bare LF (``\\n``, not ``\\r\\n`` or ``\\r``)?

    Then a lone CR inside a field is data: pandas' ``to_csv`` (and Python's csv module with
    ``lineterminator="\\n"``) write such a field unquoted, and the parser's default, which
    also ends a line at a bare CR, would split that row in two. Files with CRLF or CR line
    ends keep the default (their writers quote fields holding a CR).
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16).decode(encoding, errors="ignore")
    first, newline, _ = head.partition("\n")
    return bool(newline) and "\r" not in first


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    """Every JSON line as a row, values as they are (see ``training.tables.jsonl``).

    The whole file is decoded first, so a file that is not text at all is named by its
    first undecodable line and byte, before any line is parsed as JSON.
    """
    path.read_bytes().decode(encoding)  # raises UnicodeDecodeError: see read_table
    rows = [row for _line_no, row in iter_json_rows(path)]
    if not rows:
        raise DataError(f"{path} has no rows")
    return pd.DataFrame(rows)


def _read_hf(path: Path) -> pd.DataFrame:
    data = load_from_disk(str(path))
    if isinstance(data, DatasetDict):
        frames = []
        for split, part in data.items():
            frame = part.to_pandas()
            if "split" not in frame.columns:
                frame["split"] = split
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
    return data.to_pandas()
