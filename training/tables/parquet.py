"""Parquet input: the schema from the footer, rows validated as they are read.

The scan reads only a Parquet file's metadata, so it is quick however large the file. Its
data is fully validated as it is read: Parquet readers do not check the UTF-8 or the
offsets of a damaged file, which would otherwise reach the tokenizer or the output; the
error names the row and the column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from model.errors import DataError
from training.tables.formats import joined_on_one_line, preview

PICKLED_EXTENSION = b"arrow.py_extension_type"
BATCH_ROWS = 16_384


def scan_parquet(path: Path) -> tuple[pa.Schema, int]:
    """Schema and row count from the footer; a file that has none is refused here."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        message = joined_on_one_line(str(err))
        raise DataError(f"could not read {path} as Parquet: {message}") from err
    return without_pickled_types(schema), parquet.metadata.num_rows


def without_pickled_types(schema: pa.Schema) -> pa.Schema:
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


def parquet_tables(path: Path, start_row: int) -> tuple[Iterator[pa.Table], int]:
    """Tables from the row group holding ``start_row`` on, and the rows left to skip in it.

    Row groups wholly before ``start_row`` are never read, so resuming near the end of a
    large Parquet file is quick.
    """
    parquet = pq.ParquetFile(path)
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
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=groups)
        while True:
            try:
                batch = next(batches, None)
                if batch is not None:
                    check_batch(path, batch, first)
            except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
                raise DataError(
                    f"could not read {path} as Parquet after row {first:,} (a damaged "
                    f"file?): {joined_on_one_line(str(err))}"
                ) from err
            if batch is None:
                return
            yield pa.Table.from_batches([batch])
            first += batch.num_rows

    return tables(), start_row


def check_batch(path: Path, batch: pa.RecordBatch, first_row: int) -> None:
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
                    f"{name!r} is not valid UTF-8 ({preview(value)}); a damaged file?"
                ) from None
        raise pa.ArrowInvalid(f"column {name!r} is damaged")
