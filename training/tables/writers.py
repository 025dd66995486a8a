"""Writing tables: one writer for every format, so each output has one set of columns.

``detente score`` (both engines) and the demo's batch tab write through ``TableWriter``, so
a file scored in the demo has exactly the columns and types of one scored on the command
line. Writers append chunks and never hold a whole table.

CSV/TSV output escapes text cells (header names too) that a spreadsheet would run as a
formula: see ``escape_formulas`` and the module docstring of ``serve.scoring`` for why.
JSONL output writes JSON columns back as JSON and float32 scores in their shortest form;
Parquet output keeps every type.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.files import atomic_path
from training.tables.formats import delimiter, is_json_field


def write_part(table: pa.Table, path: Path) -> None:
    """Write one finished chunk as Parquet, durably, appearing under ``path`` all at once."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


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
        self._handle: IO[str] | None = None
        if fmt == "parquet":
            self._parquet = pq.ParquetWriter(path, schema)
        elif fmt == "jsonl":
            self._handle = path.open("w", encoding="utf-8", newline="\n")
            self._json_columns = {f.name for f in schema if is_json_field(f)}
        else:
            self._csv_schema = csv_schema(schema)
            options = pacsv.WriteOptions(delimiter=delimiter(fmt))
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
