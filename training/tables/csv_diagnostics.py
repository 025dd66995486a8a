"""What went wrong in a CSV/TSV file, said as a sentence naming the row, line and column.

Parsers report a problem by byte offset or by the text of a row, if at all; a person fixing
the file needs its row (1-based, header not counted: the number ``detente score`` gives the
row in ``id``) or its line. These helpers run only once reading has failed (or, for the
unclosed quote, once at the end of a scan), so they may re-read the file slowly.

Two readers use them: the streaming Arrow reader of ``detente score`` and the demo
(``csv_error``, ``check_last_quote``), and the whole-file pandas reader of training
(``parser_message``, ``undecodable_message``), each keeping the sentences its users know.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from model.errors import DataError
from training.tables.formats import (
    CSV_MAX_BLOCK_SIZE,
    delimiter,
    joined_on_one_line,
    open_csv,
    preview,
    python_encoding,
    separator_name,
    text_encoding,
)


class RowTooLarge(Exception):
    """A CSV row does not fit in one read block (arrow: 'straddling object').

    Not a user error: the scan retries with a larger block. Its argument is the number of
    rows read before it.
    """


def arrow_message(err: Exception) -> str:
    return str(err).replace("CSV parse error: ", "").strip()


def csv_error(
    path: Path, fmt: str, err: Exception, names: list[str] | None, rows_before: int,
    block_size: int,
) -> Exception:
    """A DataError naming the row (1-based, header not counted) and the problem.

    Returns ``RowTooLarge`` instead when the only problem is the read block's size.
    """
    message = arrow_message(err)
    what = f"could not read {path} as {fmt.upper()}"
    if "straddl" in message:
        return RowTooLarge(rows_before)
    if isinstance(err, UnicodeDecodeError) and text_encoding(path) == "utf-16":
        return DataError(f"{what}: it starts with a UTF-16 byte-order mark but is not valid "
                         f"UTF-16 ({err.reason} at byte {err.start:,})")
    if isinstance(err, UnicodeDecodeError):  # arrow decodes the header's names in Python
        return DataError(f"{what}: a column name in its header is not valid UTF-8 "
                         f"({preview(err.object)}); save the file as UTF-8")
    if is_binary(path):
        return DataError(
            f"{what}: it holds NUL bytes, so it is not a text file (a spreadsheet workbook? "
            f"save it as {fmt.upper()} text, UTF-8)"
        )
    if "invalid UTF8" in message and names is not None:
        found = find_invalid_utf8(path, fmt, names, block_size)
        if found is not None:
            row, column, value = found
            return DataError(
                f"{what}: row {row:,}, column {column!r} is not valid UTF-8 ({preview(value)}); "
                "the file is probably in another encoding (Windows-1252, Latin-1...): save "
                "it as UTF-8"
            )
    # pyarrow's serial reader (one CPU) opens this message with "Row #N: "
    counts = re.search(r"Expected (\d+) columns?, got (\d+): (.*)", message, re.DOTALL)
    if counts:
        expected, got, text = int(counts[1]), int(counts[2]), counts[3]
        where = find_ragged_row(path, fmt, expected)
        place = f"row {where[0]:,} (line {where[1]:,})" if where else "a row"
        return DataError(
            f"{what}: {place} has {got} field(s) where the header has {expected}: "
            f"{preview(text)} (check the quoting and the {separator_name(fmt)}s of that row)"
        )
    return DataError(f"{what}: {joined_on_one_line(message)}")


def is_binary(path: Path) -> bool:
    """NUL bytes near the start of a file without a UTF-16 BOM: not text (xlsx, zip, junk)."""
    if text_encoding(path) == "utf-16":
        return False
    with path.open("rb") as handle:
        return b"\x00" in handle.read(8192)


def find_invalid_utf8(
    path: Path, fmt: str, names: list[str], block_size: int
) -> tuple[int, str, bytes] | None:
    """(row, column, raw value) of the first cell that is not valid UTF-8."""
    rows = 0
    for batch in open_csv(path, fmt, names, block_size, types=pa.binary()):
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


def find_ragged_row(path: Path, fmt: str, expected: int) -> tuple[int, int] | None:
    """(row, line) of the first record with a field count other than ``expected``.

    Arrow names the row's text but not its number; Python's csv module, which splits records
    the same way, counts them (only on this error path, so speed does not matter).
    """
    limit = csv.field_size_limit()
    csv.field_size_limit(CSV_MAX_BLOCK_SIZE)
    try:
        with path.open("r", encoding=python_encoding(path), errors="replace",
                       newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter(fmt))
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


def check_last_quote(path: Path, last: pa.RecordBatch, rows: int) -> None:
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


def line_break_rows(batch: pa.RecordBatch) -> list[int]:
    """Indices of the rows of ``batch`` with a line break inside any cell.

    A stray quote closed further down merges the lines in between into one cell, which CSV
    cannot tell from a real multi-line cell; counting such rows lets the scan say so.
    """
    found = None
    for column in batch.columns:
        hits = pc.match_substring(column, "\n")
        found = hits if found is None else pc.or_(found, hits)
    if found is None or not pc.any(found).as_py():
        return []
    return pc.indices_nonzero(found).to_pylist()


def has_line_break(path: Path) -> bool:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if b"\n" in block or b"\r" in block:
                return True
    return False


def header_line(path: Path, fmt: str) -> list[str]:
    """The column names of a file that is one header line without a line break."""
    encoding = python_encoding(path)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise DataError(f"the header of {path} is not valid {encoding.upper()}: {err}") from err
    return next(csv.reader([text], delimiter=delimiter(fmt)))


# ----------------------------------------------------------------------------- pandas


def parser_message(err: Exception) -> str:
    """pandas' tokenizer errors, said with the file's 1-based line numbers and on one line."""
    text = " ".join(str(err).split())
    text = text.removeprefix("Error tokenizing data. C error: ")
    if match := re.fullmatch(r"Expected (\d+) fields in line (\d+), saw (\d+)", text):
        expected, line, saw = match.groups()
        return (f"line {line} has {saw} fields where the header has {expected} "
                "(an unquoted separator or a broken quote on that line?)")
    if match := re.fullmatch(r"EOF inside string starting at row (\d+)", text):
        return (f"the quoted field that starts on line {int(match.group(1)) + 1} is never "
                "closed (a missing \" on that line?)")
    return text


def undecodable_message(path: Path, err: UnicodeDecodeError) -> str:
    """Name the first line holding bytes that are not valid in the file's encoding."""
    encoding = python_encoding(path)
    if encoding.startswith("utf-8"):  # b"\n" never occurs inside a UTF-8 sequence
        with path.open("rb") as handle:
            for line_no, line in enumerate(handle, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError as bad:
                    return (f"{path} is not valid UTF-8 text: line {line_no} has the byte "
                            f"0x{line[bad.start]:02x} at column {bad.start + 1} ({bad.reason}); "
                            "save the file as UTF-8")
    return f"{path} is not valid {encoding} text (byte {err.start}): {err.reason}"
