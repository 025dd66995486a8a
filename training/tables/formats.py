"""File formats: which one a path is, how its text is encoded, and how its CSV is parsed.

Training, ``detente score`` and the demo accept the same four formats with the same
extensions, so a file that one of them reads is never refused by another for its name.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

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
HF = "hf"  # a dataset saved with Hugging Face ``save_to_disk``: a folder, training only
# Field metadata marking a string column that holds JSON objects/arrays (decoded for JSONL).
JSON_FIELD_KEY = b"detente.json"
MISSING = object()  # the raw value of a JSONL row that has no text key at all
CSV_BLOCK_SIZE = 1 << 20
CSV_MAX_BLOCK_SIZE = 1 << 28  # a CSV row may be up to 256 MiB (the read block grows to fit)


def detect_format(
    path: Path, fmt: str | None = None, *, role: str = "input", folders: bool = False
) -> str:
    """The file format from ``fmt`` or the extension, with a sentence naming both if neither.

    ``role`` names the file in messages ("input", "output", "data"). With ``folders``, a
    saved Hugging Face dataset (a folder) is accepted as ``"hf"``: training reads those,
    the streaming readers do not.
    """
    path = Path(path)
    allowed = (*FORMATS, HF) if folders else FORMATS
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in allowed:
            raise DataError(f"unknown {role} format {fmt!r}; use one of {', '.join(allowed)}")
        return fmt
    if folders and path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return HF
        raise DataError(f"{path} is a folder but not a saved Hugging Face dataset")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"cannot tell the format of {role} file {path} from its extension {suffix!r}; "
            f"use .csv, .tsv, .jsonl or .parquet, or pass the format"
        )
    return SUFFIXES[suffix]


def delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def separator_name(fmt: str) -> str:
    return "tab" if fmt == "tsv" else "comma"


def text_encoding(path: Path) -> str:
    """Arrow's name of the file's encoding: UTF-8 unless it starts with a UTF-16 BOM.

    Those are the two encodings a spreadsheet or a shell saves text in ("Unicode text" and
    PowerShell's ``>`` write UTF-16 with a byte-order mark); a UTF-8 BOM is skipped.
    """
    with Path(path).open("rb") as handle:
        head = handle.read(2)
    return "utf-16" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf8"


def python_encoding(path: Path) -> str:
    """``text_encoding`` as Python's codec name (``utf-8-sig`` skips a UTF-8 BOM)."""
    return "utf-16" if text_encoding(path) == "utf-16" else "utf-8-sig"


def csv_options(
    path: Path, fmt: str, names: list[str] | None = None, block_size: int = CSV_BLOCK_SIZE,
    types: pa.DataType = pa.string(),
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    """Arrow's read, parse and convert options for this file (every column read as ``types``).

    Cells are read as text, never converted: ``007`` stays ``007``, and a column of numbers
    that turns into words after the first block cannot break a run. Empty cells stay empty
    strings, not nulls, as they were written.
    """
    read = pacsv.ReadOptions(block_size=block_size, encoding=text_encoding(path))
    parse = pacsv.ParseOptions(delimiter=delimiter(fmt), newlines_in_values=True)
    convert = pacsv.ConvertOptions(
        column_types={name: types for name in names or []},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return read, parse, convert


def open_csv(
    path: Path, fmt: str, names: list[str] | None = None, block_size: int = CSV_BLOCK_SIZE,
    types: pa.DataType = pa.string(),
) -> pacsv.CSVStreamingReader:
    """A streaming reader; arrow parses the first block here, so errors can come from it."""
    read, parse, convert = csv_options(path, fmt, names, block_size, types)
    return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)


def is_json_field(column: pa.Field) -> bool:
    """Does this string column hold JSON objects/arrays (written back as JSON in JSONL)?"""
    return bool(column.metadata and column.metadata.get(JSON_FIELD_KEY) == b"1")


def joined_on_one_line(message: str, limit: int = 300) -> str:
    """A library's message on one line, printable, not too long: fit for an error sentence."""
    text = "".join(c if c.isprintable() else " " for c in " ".join(message.split()))
    return text[:limit] + (" ..." if len(text) > limit else "")


def preview(value: str | bytes, limit: int = 80) -> str:
    """A short, printable rendering of a cell or row for an error message (one line)."""
    return repr(value[:limit]) + (" ..." if len(value) > limit else "")
