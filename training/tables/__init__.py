"""Table files: the formats detente reads and writes, their readers and their writers.

This package owns every CSV, TSV, JSONL and Parquet file that training, ``detente score``
(both engines) and the demo's batch tab read or write, so the three agree on which files
they accept, what a cell means and what an output holds:

- ``formats``: extensions and ``detect_format``, text encodings, Arrow's CSV options,
  ``MISSING`` (a JSONL row without the text key);
- ``readers``: ``scan_input`` and ``read_chunks`` stream a file in fixed-size chunks for
  scoring (memory stays flat); ``read_table`` reads a labelled file whole for training;
- ``jsonl`` and ``parquet``: the typing of JSON lines, the validation of Parquet pages;
- ``csv_diagnostics``: the sentences naming the row, line and column of a broken file;
- ``writers``: ``TableWriter`` (one writer for every output format), ``write_part`` and
  the escaping of cells a spreadsheet would run as formulas.

It lives in ``training`` because training reads tables and the layers go model <- training
<- serve: serving imports it from here, training never imports serving.
"""

from __future__ import annotations

from training.tables.formats import (
    CSV_BLOCK_SIZE,
    CSV_MAX_BLOCK_SIZE,
    FORMATS,
    JSON_FIELD_KEY,
    MISSING,
    SUFFIXES,
    csv_options,
    detect_format,
    is_json_field,
    python_encoding,
    text_encoding,
)
from training.tables.jsonl import json_values
from training.tables.readers import (
    Chunk,
    InputInfo,
    read_chunks,
    read_table,
    rechunk,
    scan_input,
)
from training.tables.writers import (
    FORMULA_START,
    PLAIN_NUMBER,
    TableWriter,
    csv_schema,
    escape_formula,
    escape_formulas,
    to_csv_table,
    write_part,
)

__all__ = [
    "CSV_BLOCK_SIZE",
    "CSV_MAX_BLOCK_SIZE",
    "FORMATS",
    "FORMULA_START",
    "JSON_FIELD_KEY",
    "MISSING",
    "PLAIN_NUMBER",
    "SUFFIXES",
    "Chunk",
    "InputInfo",
    "TableWriter",
    "csv_options",
    "csv_schema",
    "detect_format",
    "escape_formula",
    "escape_formulas",
    "is_json_field",
    "json_values",
    "python_encoding",
    "read_chunks",
    "read_table",
    "rechunk",
    "scan_input",
    "text_encoding",
    "to_csv_table",
    "write_part",
]
