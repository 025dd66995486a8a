"""JSON Lines: one object per line, parsed with a sentence naming the line that is wrong.

Arrow tables need one type per column, JSON gives one per value. The typing rule, the same
for ``detente score``, its Ray engine and the demo: keys become columns in first-seen order
with one type per key over the whole file: bool, int64, float64 (ints and floats mixed) or
string. A key whose values are all objects or arrays is kept as JSON text (marked with
``JSON_FIELD_KEY``) and written back as JSON in JSONL output. A key with mixed types
(``"a"`` here, ``3`` there) becomes text, its non-string values written as JSON (``3``,
``true``). The raw value of the text column is kept aside so scoring can say "text is int,
not a string" instead of scoring ``"3"``.

Training reads the same lines (``iter_json_rows``) but keeps every value as it is: its
checks report a non-string text per row.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from model.errors import DataError
from training.tables.formats import JSON_FIELD_KEY, MISSING, preview, text_encoding


def json_lines(path: Path) -> Iterator[tuple[int, str]]:
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
                        f"of the line: {preview(piece[err.start:err.start + 4])}); save the "
                        "file as UTF-8"
                    ) from err


def iter_json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, with a DataError naming a bad line."""
    for line_no, line in json_lines(path):
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
                f"{path} line {line_no:,}: expected a JSON object, got {preview(line.strip())}"
            )
        yield line_no, row


def json_kind(value: Any) -> str:
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


def arrow_type_of(kinds: set[str]) -> tuple[pa.DataType, bool]:
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


def scan_jsonl(path: Path) -> tuple[pa.Schema, int]:
    """One schema for the whole file (see the module docstring) and its row count."""
    kinds: dict[str, set[str]] = {}
    rows = 0
    for _line_no, row in iter_json_rows(path):
        rows += 1
        for key, value in row.items():
            kinds.setdefault(key, set()).add(json_kind(value))
    if rows == 0:
        raise DataError(f"{path} has no JSON rows")
    fields = []
    for key, seen in kinds.items():
        kind, holds_json = arrow_type_of(seen)
        fields.append(pa.field(key, kind, metadata={JSON_FIELD_KEY: b"1"} if holds_json else None))
    return pa.schema(fields), rows


def json_table(rows: list[dict], schema: pa.Schema, text_column: str) -> tuple[pa.Table, list]:
    """The rows as a table of ``schema``, and the raw values of the text column."""
    columns = [
        pa.array(json_values([row.get(f.name) for row in rows], f), type=f.type) for f in schema
    ]
    texts = [row.get(text_column, MISSING) for row in rows]
    return pa.Table.from_arrays(columns, schema=schema), texts


def json_values(values: list[Any], column: pa.Field) -> list[Any]:
    """Python values that fit the column's one type (see the module docstring)."""
    if not pa.types.is_string(column.type):
        return [None if json_kind(v) == "null" else v for v in values]
    out = []
    for value in values:
        if value is None:
            out.append(None)
        elif isinstance(value, str):
            out.append(valid_utf8(value))
        else:
            out.append(json.dumps(value, ensure_ascii=False))
    return out


def valid_utf8(text: str) -> str:
    """Lone surrogates (legal in JSON, not in UTF-8) replaced so Arrow can store the text."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
