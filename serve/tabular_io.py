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

CSV/TSV output escapes text cells that a spreadsheet would run as a formula (see
``escape_formulas``).
"""

from __future__ import annotations

import codecs
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.data import DataError

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


@dataclass
class InputInfo:
    """What ``scan_input`` learned about a file: enough to read it in chunks and resume."""

    path: Path
    fmt: str
    schema: pa.Schema
    num_rows: int
    text_column: str


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
    scanner = {"csv": _scan_csv, "tsv": _scan_csv, "jsonl": _scan_jsonl, "parquet": _scan_parquet}
    schema, num_rows = scanner[fmt](path, fmt)
    duplicates = sorted({n for n in schema.names if schema.names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path} has duplicate column names {duplicates}; rename them first")
    if text_column not in schema.names:
        raise DataError(
            f"{path} has no column {text_column!r}; its columns are {schema.names} "
            "(choose the text column with --text-column)"
        )
    _check_text_type(path, schema.field(text_column))
    return InputInfo(path, fmt, schema, num_rows, text_column)


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


def csv_options(path: Path, fmt: str, names: list[str] | None = None):
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_SIZE, encoding=_encoding(path))
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names or []},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return read, parse, convert


def _encoding(path: Path) -> str:
    """UTF-8 (a BOM is skipped) unless the file starts with a UTF-16 byte-order mark."""
    with path.open("rb") as handle:
        head = handle.read(2)
    return "utf-16" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf8"


def _open_csv(path: Path, fmt: str, names: list[str] | None = None) -> pacsv.CSVStreamingReader:
    read, parse, convert = csv_options(path, fmt, names)
    try:
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise DataError(f"could not read {path} as {fmt.upper()}: {_arrow_message(err)}") from err


def _arrow_message(err: Exception) -> str:
    return str(err).replace("CSV parse error: ", "").strip()


def _scan_csv(path: Path, fmt: str) -> tuple[pa.Schema, int]:
    names = _open_csv(path, fmt).schema.names
    if len(set(names)) != len(names):
        return pa.schema([pa.field(n, pa.string()) for n in names]), 0  # scan_input says why
    reader = _open_csv(path, fmt, names)
    rows = 0
    try:
        for batch in reader:
            rows += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as err:
        raise DataError(
            f"could not read {path} as {fmt.upper()} after data row {rows}: {_arrow_message(err)}"
        ) from err
    return reader.schema, rows


def _scan_parquet(path: Path, fmt: str) -> tuple[pa.Schema, int]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"could not read {path} as Parquet: {err}") from err
    return parquet.schema_arrow, parquet.metadata.num_rows


def _iter_json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, with a DataError naming a bad line."""
    with path.open("r", encoding="utf-8-sig", errors="strict", newline=None) as handle:
        line_no = 0
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path} line {line_no}: not valid JSON ({err.msg})") from err
                if not isinstance(row, dict):
                    raise DataError(
                        f"{path} line {line_no}: expected a JSON object, got {line.strip():.60}"
                    )
                yield line_no, row
        except UnicodeDecodeError as err:
            raise DataError(f"{path} near line {line_no + 1} is not valid UTF-8: {err}") from err


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
    reader = _open_csv(info.path, info.fmt, info.schema.names)
    try:
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as err:
        raise DataError(f"could not read {info.path}: {_arrow_message(err)}") from err


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
        try:
            for batch in parquet.iter_batches(batch_size=16_384, row_groups=groups):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as err:
            raise DataError(f"could not read {info.path} as Parquet: {err}") from err

    return tables(), start_row


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
    pq.write_table(table, tmp)
    fsync_file(tmp)
    os.replace(tmp, path)


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
    return pa.schema([pa.field(f.name, _csv_type(f.type)) for f in schema])


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


FORMULA_START = r"^[=+\-@\t\r]"
PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def escape_formulas(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Prefix ``'`` to text cells starting with = + - @ (or tab / carriage return).

    Spreadsheets run such cells as formulas when the CSV is opened ("CSV injection", e.g.
    ``=HYPERLINK(...)`` in a scraped quote). Plain numbers such as ``-5`` or ``+1.5e3``
    are left alone: they cannot run anything and a leading quote would turn them into text.
    """
    risky = pc.and_(
        pc.match_substring_regex(column, FORMULA_START),
        pc.invert(pc.match_substring_regex(column, PLAIN_NUMBER)),
    )
    if not pc.any(risky).as_py():
        return column
    return pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
