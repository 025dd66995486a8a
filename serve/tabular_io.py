"""Chunked, typed reading and writing of CSV, TSV, JSONL and Parquet files with pyarrow.

Batch scoring must keep memory flat however large the file, so nothing here ever holds a
whole file: readers yield fixed-size ``pyarrow.Table`` chunks and writers append them.

Before any scoring starts, ``scan_input`` reads the whole file once, streaming, to count
its rows (the progress bar's total), to fix one schema for every chunk, and to fail early
and clearly on a file that cannot be parsed: better than failing after hours of scoring.

Types are chosen so that output columns are the input columns "as they are":

- CSV/TSV cells are read as text, never converted (``007`` stays ``007``; a column of
  numbers that turns into words after the first megabyte cannot break the run);
- Parquet keeps its own schema;
- JSONL keys become columns in first-seen order with one type per key over the whole
  file: bool, int64, float64 (ints and floats mixed) or string. A key whose values are
  all objects or arrays is kept as JSON text in tabular outputs and written back as JSON
  in JSONL output. A key with mixed types (``"a"`` here, ``3`` there) becomes text, its
  non-string values written as JSON (``3``, ``true``). The raw value of the text column
  is kept aside (``Chunk.texts``) so scoring can say "text is int, not a string".

Text files are UTF-8 (a BOM is skipped) or UTF-16 with a byte-order mark (Excel's
"Unicode text", PowerShell's ``>``). A file that cannot be read fails in the scan, before
any scoring, with a sentence naming the row (1-based, header not counted: the number the
output's ``id`` gets) or the line: a row with the wrong number of fields, a cell that is
not valid UTF-8 (and its column), a JSON line that does not parse, a binary file. A CSV row
may be as large as ``CSV_MAX_BLOCK_SIZE``: the read block grows to hold the largest one.
The scan reads only a Parquet file's metadata; its data is fully validated as it is read
(a damaged file can hold invalid UTF-8 or offsets), the error naming the row and column.

Broken quoting: a quote opened in the last row and never closed would swallow the rest of
the file into one cell without any parse error; the scan refuses it. A stray quote that
is closed further down merges the lines in between into one cell, which CSV cannot tell
from a real multi-line cell: the scan logs how many rows hold line breaks inside a cell
and the first of them, so an unexpected merge does not go unnoticed.

CSV/TSV output escapes text cells that a spreadsheet would run as a formula (see
``escape_formulas`` and the module docstring of ``serve.scoring``).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "parquet")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Field metadata marking a string column that holds JSON objects/arrays (decoded for JSONL).
JSON_FIELD_KEY = b"detente.json"
MISSING = object()  # the raw value of a JSONL row that has no text key at all
CSV_BLOCK_SIZE = 1 << 20
CSV_MAX_BLOCK_SIZE = 1 << 28  # a CSV row may be up to 256 MiB (the read block grows to fit)
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
    """Rows ``first_row .. first_row + len(table) - 1`` (0-based) of the input."""

    first_row: int
    table: pa.Table
    texts: list[Any] = field(default_factory=list)


def detect_format(path: Path, fmt: str | None = None, *, role: str = "input") -> str:
    """The file format from ``fmt`` or the extension, with a sentence naming both if neither."""
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise DataError(f"unknown {role} format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"cannot tell the format of {role} file {path} from its extension {suffix!r}; "
            f"use .csv, .tsv, .jsonl or .parquet, or pass the format"
        )
    return SUFFIXES[suffix]


# ----------------------------------------------------------------------------- scanning


def scan_input(path: Path, fmt: str, text_column: str) -> InputInfo:
    """Read the whole file once, streaming: row count, one schema, parse errors up front."""
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
        schema, num_rows = _scan_jsonl(path, fmt)
    else:
        schema, num_rows = _scan_parquet(path, fmt)
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path} has duplicate column names {duplicates}; rename them first")
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


def csv_options(
    path: Path, fmt: str, names: list[str] | None = None, block_size: int = CSV_BLOCK_SIZE,
    types: pa.DataType = pa.string(),
):
    """Arrow's read, parse and convert options for this file (every column read as ``types``)."""
    read = pacsv.ReadOptions(block_size=block_size, encoding=text_encoding(path))
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={name: types for name in names or []},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return read, parse, convert


def text_encoding(path: Path) -> str:
    """UTF-8 (a BOM is skipped) unless the file starts with a UTF-16 byte-order mark."""
    with path.open("rb") as handle:
        head = handle.read(2)
    return "utf-16" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf8"


def _open_csv(
    path: Path, fmt: str, names: list[str] | None = None, block_size: int = CSV_BLOCK_SIZE,
    types: pa.DataType = pa.string(),
) -> pacsv.CSVStreamingReader:
    """A streaming reader; arrow parses the first block here, so errors can come from it."""
    read, parse, convert = csv_options(path, fmt, names, block_size, types)
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def _arrow_message(err: Exception) -> str:
    return str(err).replace("CSV parse error: ", "").strip()


class _RowTooLarge(Exception):
    """A CSV row does not fit in one read block (arrow: 'straddling object')."""


def _scan_csv(path: Path, fmt: str) -> tuple[pa.Schema, int, int]:
    """Schema, row count and the read block size that holds the file's largest row."""
    block_size = CSV_BLOCK_SIZE
    while True:
        try:
            return (*_count_csv(path, fmt, block_size), block_size)
        except _RowTooLarge as err:
            if block_size >= CSV_MAX_BLOCK_SIZE:
                raise DataError(
                    f"could not read {path} as {fmt.upper()}: a row after data row {err} is "
                    f"larger than {CSV_MAX_BLOCK_SIZE >> 20} MiB (a quote that is never "
                    "closed?)"
                ) from None
            block_size *= 4


def _count_csv(path: Path, fmt: str, block_size: int) -> tuple[pa.Schema, int]:
    try:
        names = _open_csv(path, fmt, block_size=block_size).schema.names
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        if "Empty CSV file" in str(err) and not _has_line_break(path):
            return pa.schema([pa.field(n, pa.string()) for n in _header_line(path, fmt)]), 0
        raise _csv_error(path, fmt, err, None, 0, block_size) from err
    if len(set(names)) != len(names):
        return pa.schema([pa.field(n, pa.string()) for n in names]), 0  # scan_input says why
    rows, last, multiline, first_multiline = 0, None, 0, None
    try:
        reader = _open_csv(path, fmt, names, block_size)
        for batch in reader:
            breaks = _line_break_rows(batch)
            if breaks and first_multiline is None:
                first_multiline = rows + breaks[0] + 1
            multiline += len(breaks)
            rows += batch.num_rows
            last = batch if batch.num_rows else last
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise _csv_error(path, fmt, err, names, rows, block_size) from err
    if last is not None:
        _check_last_quote(path, last, rows)
    if multiline:
        log.info("%s: %s row(s) have a line break inside a quoted cell (the first: row %s); "
                 "if that is unexpected, look for a stray quote that merged rows",
                 path, f"{multiline:,}", f"{first_multiline:,}")
    return reader.schema, rows


def _line_break_rows(batch: pa.RecordBatch) -> list[int]:
    """Indices of the rows of ``batch`` with a line break inside any cell."""
    found = None
    for column in batch.columns:
        hits = pc.match_substring(column, "\n")
        found = hits if found is None else pc.or_(found, hits)
    if found is None or not pc.any(found).as_py():
        return []
    return pc.indices_nonzero(found).to_pylist()


def _has_line_break(path: Path) -> bool:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if b"\n" in block or b"\r" in block:
                return True
    return False


def _header_line(path: Path, fmt: str) -> list[str]:
    """The column names of a file that is one header line without a line break."""
    encoding = "utf-16" if text_encoding(path) == "utf-16" else "utf-8-sig"
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"the header of {path} is not valid {encoding.upper()}: {err}") from err
    return next(csv.reader([text], delimiter="\t" if fmt == "tsv" else ","))


def _csv_error(
    path: Path, fmt: str, err: Exception, names: list[str] | None, rows_before: int,
    block_size: int,
) -> Exception:
    """A DataError naming the row (1-based, header not counted) and the problem."""
    message = _arrow_message(err)
    what = f"could not read {path} as {fmt.upper()}"
    if "straddl" in message:
        return _RowTooLarge(rows_before)
    if isinstance(err, UnicodeDecodeError) and text_encoding(path) == "utf-16":
        return DataError(f"{what}: it starts with a UTF-16 byte-order mark but is not valid "
                         f"UTF-16 ({err.reason} at byte {err.start:,})")
    if isinstance(err, UnicodeDecodeError):  # arrow decodes the header's names in Python
        return DataError(f"{what}: a column name in its header is not valid UTF-8 "
                         f"({_preview(err.object)}); save the file as UTF-8")
    if _is_binary(path):
        return DataError(
            f"{what}: it holds NUL bytes, so it is not a text file (a spreadsheet workbook? "
            f"save it as {fmt.upper()} text, UTF-8)"
        )
    if "invalid UTF8" in message and names is not None:
        found = _find_invalid_utf8(path, fmt, names, block_size)
        if found is not None:
            row, column, value = found
            return DataError(
                f"{what}: row {row:,}, column {column!r} is not valid UTF-8 ({_preview(value)}); "
                "the file is probably in another encoding (Windows-1252, Latin-1...): save "
                "it as UTF-8"
            )
    counts = re.match(r"Expected (\d+) columns?, got (\d+): (.*)", message, re.DOTALL)
    if counts:
        expected, got, text = int(counts[1]), int(counts[2]), counts[3]
        where = _find_ragged_row(path, fmt, expected)
        place = f"row {where[0]:,} (line {where[1]:,})" if where else "a row"
        return DataError(
            f"{what}: {place} has {got} field(s) where the header has {expected}: "
            f"{_preview(text)} (check the quoting and the {_separator_name(fmt)}s of that row)"
        )
    return DataError(f"{what}: {_one_line(message)}")


def _separator_name(fmt: str) -> str:
    return "tab" if fmt == "tsv" else "comma"


def _one_line(message: str, limit: int = 300) -> str:
    """A library's message on one line, printable, not too long."""
    text = "".join(c if c.isprintable() else " " for c in " ".join(message.split()))
    return text[:limit] + (" ..." if len(text) > limit else "")


def _preview(value: str | bytes, limit: int = 80) -> str:
    """A short, printable rendering of a cell or row for an error message (one line)."""
    return repr(value[:limit]) + (" ..." if len(value) > limit else "")


def _is_binary(path: Path) -> bool:
    """NUL bytes near the start of a file without a UTF-16 BOM: not text (xlsx, zip, junk)."""
    if text_encoding(path) == "utf-16":
        return False
    with path.open("rb") as handle:
        return b"\x00" in handle.read(8192)


def _find_invalid_utf8(
    path: Path, fmt: str, names: list[str], block_size: int
) -> tuple[int, str, bytes] | None:
    """(row, column, raw value) of the first cell that is not valid UTF-8."""
    rows = 0
    for batch in _open_csv(path, fmt, names, block_size, types=pa.binary()):
        for name, column in zip(batch.schema.names, batch.columns):
            try:
                column.cast(pa.string())
                continue
            except pa.ArrowInvalid:
                pass
            for index, value in enumerate(column.to_pylist()):
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    return rows + index + 1, name, value
        rows += batch.num_rows
    return None


def _find_ragged_row(path: Path, fmt: str, expected: int) -> tuple[int, int] | None:
    """(row, line) of the first record with a field count other than ``expected``.

    Arrow names the row's text but not its number; Python's csv module, which splits records
    the same way, counts them (only on this error path, so speed does not matter).
    """
    encoding = "utf-16" if text_encoding(path) == "utf-16" else "utf-8-sig"
    limit = csv.field_size_limit()
    csv.field_size_limit(CSV_MAX_BLOCK_SIZE)
    try:
        with path.open("r", encoding=encoding, errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t" if fmt == "tsv" else ",")
            rows, line = -1, 1  # the header is row 0
            for record in reader:
                if record:  # arrow skips empty lines
                    if rows >= 0 and len(record) != expected:
                        return rows + 1, line
                    rows += 1
                line = reader.line_num + 1
    except csv.Error:
        return None
    finally:
        csv.field_size_limit(limit)
    return None


def _check_last_quote(path: Path, last: pa.RecordBatch, rows: int) -> None:
    """Refuse a quote opened in the last row and never closed.

    Arrow reads such a quote to the end of the file without complaint, so every row after it
    would silently become part of one cell. It can only go unnoticed in the last column of
    the last row (elsewhere the field count is wrong): that cell then holds a line break
    (so it was quoted), the file ends with exactly its text, and no closing quote follows
    it before the final line breaks, as one would after a cell that was closed.
    """
    value = last.column(last.num_columns - 1)[last.num_rows - 1].as_py()
    if not value or ("\n" not in value and "\r" not in value) or text_encoding(path) != "utf8":
        return
    raw = value.encode("utf-8")
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - len(raw) - 64))
        tail = handle.read()
    if tail.endswith(raw) and not tail.rstrip(b"\r\n").endswith(b'"'):
        lines = value.count("\n") or value.count("\r")
        raise DataError(
            f"could not read {path}: row {rows:,} opens a quote in column "
            f"{last.schema.names[-1]!r} that is never closed, so the last {lines:,} line(s) "
            "of the file were read into that one cell; fix the quoting of that row"
        )


def _scan_parquet(path: Path, fmt: str) -> tuple[pa.Schema, int]:
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise DataError(f"could not read {path} as Parquet: {_one_line(str(err))}") from err
    return _without_pickled_types(schema), parquet.metadata.num_rows


PICKLED_EXTENSION = b"arrow.py_extension_type"


def _without_pickled_types(schema: pa.Schema) -> pa.Schema:
    """Drop the mark of pyarrow's pickle-based extension type from the columns.

    Old pyarrow versions unpickle such a column's metadata when reading it, which runs any
    code a crafted file carries (CVE-2023-47248). Current pyarrow reads the column as its
    plain storage type; dropping the mark keeps the payload out of our output files too.
    """
    fields = [
        f.remove_metadata()
        if f.metadata and f.metadata.get(b"ARROW:extension:name") == PICKLED_EXTENSION else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


def _json_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line: UTF-8 (BOM skipped) or UTF-16 with a BOM.

    Lines end at \\n, \\r\\n or \\r. UTF-8 is decoded line by line so that an invalid byte
    is reported on its own line, not somewhere near it.
    """
    if text_encoding(path) == "utf-16":
        with path.open("r", encoding="utf-16", newline=None) as handle:
            line_no = 0
            try:
                for line_no, line in enumerate(handle, start=1):
                    yield line_no, line
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path} starts with a UTF-16 byte-order mark but is not valid UTF-16 "
                    f"after line {line_no:,} ({err.reason})"
                ) from err
        return
    with path.open("rb") as handle:
        line_no = 0
        for raw in handle:
            for piece in raw.splitlines():
                line_no += 1
                if line_no == 1 and piece.startswith(codecs.BOM_UTF8):
                    piece = piece[len(codecs.BOM_UTF8):]
                try:
                    yield line_no, piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path} line {line_no:,} is not valid UTF-8 (byte {err.start + 1:,} "
                        f"of the line: {_preview(piece[err.start:err.start + 4])}); save the "
                        "file as UTF-8"
                    ) from err


def _iter_json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, with a DataError naming a bad line."""
    for line_no, line in _json_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (NUL bytes: UTF-16 without a byte-order mark?)" if "\x00" in line else ""
            raise DataError(
                f"{path} line {line_no:,}: not valid JSON ({err.msg} at column {err.colno})"
                + hint
            ) from err
        except RecursionError as err:
            raise DataError(f"{path} line {line_no:,}: JSON nested too deeply") from err
        if not isinstance(row, dict):
            raise DataError(
                f"{path} line {line_no:,}: expected a JSON object, got {_preview(line.strip())}"
            )
        yield line_no, row


def _json_kind(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "nested"


def _arrow_type_of(kinds: set[str]) -> tuple[pa.DataType, bool]:
    """(type, holds JSON) for the set of JSON kinds one key took over the whole file."""
    kinds = kinds - {"null"}
    if kinds == {"bool"}:
        return pa.bool_(), False
    if kinds == {"int"}:
        return pa.int64(), False
    if kinds and kinds <= {"int", "float"}:
        return pa.float64(), False
    if kinds == {"nested"}:
        return pa.string(), True
    return pa.string(), False


def _scan_jsonl(path: Path, fmt: str) -> tuple[pa.Schema, int]:
    kinds: dict[str, set[str]] = {}
    rows = 0
    for _line_no, row in _iter_json_rows(path):
        rows += 1
        for key, value in row.items():
            kinds.setdefault(key, set()).add(_json_kind(value))
    if rows == 0:
        raise DataError(f"{path} has no JSON rows")
    fields = []
    for key, seen in kinds.items():
        kind, holds_json = _arrow_type_of(seen)
        fields.append(pa.field(key, kind, metadata={JSON_FIELD_KEY: b"1"} if holds_json else None))
    return pa.schema(fields), rows


# ----------------------------------------------------------------------------- reading


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
        tables, skip = _parquet_tables(info, start_row)
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
        for batch in _open_csv(info.path, info.fmt, info.schema.names, info.block_size):
            rows += batch.num_rows
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:  # the file changed since the scan
        raise _csv_error(
            info.path, info.fmt, err, info.schema.names, rows, info.block_size
        ) from err


def _parquet_tables(info: InputInfo, start_row: int) -> tuple[Iterator[pa.Table], int]:
    """Tables from the row group holding ``start_row`` on, and the rows left to skip in it.

    Row groups wholly before ``start_row`` are never read, so resuming near the end of a
    large Parquet file is quick.
    """
    parquet = pq.ParquetFile(info.path)
    groups = []
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if not groups and start_row >= rows:
            start_row -= rows
            continue
        groups.append(group)

    def tables() -> Iterator[pa.Table]:
        if not groups:
            return
        first = sum(parquet.metadata.row_group(g).num_rows for g in range(groups[0]))
        batches = parquet.iter_batches(batch_size=16_384, row_groups=groups)
        while True:
            try:
                batch = next(batches, None)
                if batch is not None:
                    _check_parquet_batch(info.path, batch, first)
            except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
                raise DataError(
                    f"could not read {info.path} as Parquet after row {first:,} (a damaged "
                    f"file?): {_one_line(str(err))}"
                ) from err
            if batch is None:
                return
            yield pa.Table.from_batches([batch])
            first += batch.num_rows

    return tables(), start_row


def _check_parquet_batch(path: Path, batch: pa.RecordBatch, first_row: int) -> None:
    """Fully validate a batch: Parquet readers do not check UTF-8 or offsets of a damaged file.

    A text cell that is not valid UTF-8 is named (row and column); anything else raises
    ``pa.ArrowInvalid`` for the caller to report.
    """
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise
        raw = column.view(pa.large_binary() if pa.types.is_large_string(column.type)
                          else pa.binary())
        raw.validate(full=True)  # sound offsets: only the UTF-8 is wrong, safe to look at
        for index, value in enumerate(raw.to_pylist()):
            try:
                value is None or value.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(
                    f"could not read {path} as Parquet: row {first_row + index + 1:,}, column "
                    f"{name!r} is not valid UTF-8 ({_preview(value)}); a damaged file?"
                ) from None
        raise pa.ArrowInvalid(f"column {name!r} is damaged")


def _jsonl_chunks(info: InputInfo, chunk_size: int, start_row: int) -> Iterator[Chunk]:
    rows: list[dict] = []
    first_row = start_row
    for index, (_line_no, row) in enumerate(_iter_json_rows(info.path)):
        if index < start_row:
            continue
        rows.append(row)
        if len(rows) == chunk_size:
            yield _json_chunk(info, rows, first_row)
            first_row += len(rows)
            rows = []
    if rows:
        yield _json_chunk(info, rows, first_row)


def _json_chunk(info: InputInfo, rows: list[dict], first_row: int) -> Chunk:
    columns = []
    for column in info.schema:
        values = [row.get(column.name) for row in rows]
        columns.append(pa.array(json_values(values, column), type=column.type))
    texts = [row.get(info.text_column, MISSING) for row in rows]
    return Chunk(first_row, pa.Table.from_arrays(columns, schema=info.schema), texts)


def json_values(values: list[Any], column: pa.Field) -> list[Any]:
    """Python values that fit the column's one type (see the module docstring)."""
    if not pa.types.is_string(column.type):
        return [None if _json_kind(v) == "null" else v for v in values]
    out = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, str):
            out.append(_valid_utf8(value))
        else:
            out.append(json.dumps(value, ensure_ascii=False))
    return out


def _valid_utf8(text: str) -> str:
    """Lone surrogates (legal in JSON, not in UTF-8) replaced so Arrow can store the text."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


# ----------------------------------------------------------------------------- writing


def write_part(table: pa.Table, path: Path) -> None:
    """Write one finished chunk as Parquet, durably, appearing under ``path`` all at once."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class TableWriter:
    """Appends tables to one output file of any supported format; ``close`` finishes it."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        self.path = path
        self.fmt = fmt
        self.schema = schema
        self.rows = 0
        self._closed = False
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._handle = None
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(path, schema)
        elif fmt == "jsonl":
            self._handle = path.open("w", encoding="utf-8", newline="\n")
            self._json_columns = {f.name for f in schema if is_json_field(f)}
        else:
            self._csv_schema = csv_schema(schema)
            options = pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",")
            self._csv = pacsv.CSVWriter(path, self._csv_schema, write_options=options)

    def write(self, table: pa.Table) -> None:
        if self._parquet is not None:
            self._parquet.write_table(table)
        elif self._csv is not None:
            self._csv.write_table(to_csv_table(table, self._csv_schema))
        else:
            self._write_jsonl(table)
        self.rows += table.num_rows

    def _write_jsonl(self, table: pa.Table) -> None:
        lines = []
        for row in _rows_for_json(table):
            for key in self._json_columns:
                if isinstance(row.get(key), str):
                    row[key] = json.loads(row[key])
            lines.append(json.dumps(_json_safe(row), ensure_ascii=False, default=str))
        if lines:
            self._handle.write("\n".join(lines) + "\n")

    def close(self) -> None:
        """Finish the file; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._handle is not None:
            self._handle.close()


def _rows_for_json(table: pa.Table) -> list[dict]:
    """Rows as dicts, float32 values in their shortest form (0.3415579, not 0.34155789...)."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_float32(column.type):
            text = pc.cast(column, pa.string()).to_pylist()
            columns[name] = [None if v is None else float(v) for v in text]
        else:
            columns[name] = column.to_pylist()
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*columns.values())]


def is_json_field(column: pa.Field) -> bool:
    return bool(column.metadata and column.metadata.get(JSON_FIELD_KEY) == b"1")


def _json_safe(row: dict) -> dict:
    """NaN and infinities are not JSON: write them as null."""
    for key, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            row[key] = None
    return row


def _csv_type(kind: pa.DataType) -> pa.DataType:
    """The type a column gets in CSV output: nested and binary values become text."""
    if pa.types.is_dictionary(kind):
        return _csv_type(kind.value_type)
    if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pa.string()
    if pa.types.is_large_string(kind):
        return pa.string()
    return kind


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """CSV-writable types, and header names escaped like cells (see ``escape_formulas``)."""
    return pa.schema([pa.field(escape_formula(f.name), _csv_type(f.type)) for f in schema])


def to_csv_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast to CSV-writable types and escape formula-looking text cells."""
    columns = []
    for column, target in zip(table.columns, schema):
        if column.type != target.type:
            column = _to_text(column) if target.type == pa.string() else column.cast(target.type)
        if pa.types.is_string(target.type):
            column = escape_formulas(column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _to_text(column: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type).cast(pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    values = column.to_pylist()
    return pa.array(
        [None if v is None else json.dumps(v, ensure_ascii=False, default=_bytes_or_str)
         for v in values],
        type=pa.string(),
    )


def _bytes_or_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# A cell a spreadsheet may run as a formula: its first character is = + - @, tab, carriage
# return, line feed or NUL, or its first character after leading white space is = + - @.
FORMULA_START = r"(?:[=+\-@\t\r\n\x00]|[ \t\r\n\f\v]+[=+\-@])"
# ... unless the whole cell is a plain number (-5, +1.5e3, .25): it cannot run anything.
PLAIN_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_FORMULA_START_RE = re.compile(FORMULA_START)
_PLAIN_NUMBER_RE = re.compile(PLAIN_NUMBER)


def escape_formulas(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Prefix ``'`` to the text cells a spreadsheet would run as formulas ("CSV injection").

    Which cells: see ``FORMULA_START`` and ``PLAIN_NUMBER`` above, and the module docstring
    of ``serve.scoring`` for why. A cell such as ``=HYPERLINK("http://x", "click")`` in a
    scraped quote becomes ``'=HYPERLINK(...)``, which spreadsheets show as the text it is.
    """
    risky = pc.and_(
        pc.match_substring_regex(column, "^" + FORMULA_START),
        pc.invert(pc.match_substring_regex(column, "^" + PLAIN_NUMBER + "$")),
    )
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)


def escape_formula(text: str) -> str:
    """``escape_formulas`` for one Python string (used for CSV header names)."""
    if _FORMULA_START_RE.match(text) and not _PLAIN_NUMBER_RE.fullmatch(text):
        return "'" + text
    return text
