"""Reading labelled data in any of the supported formats into one normalised table.

Every reader returns a pandas DataFrame with the canonical columns ``text``, ``stance``,
``sentiment`` (missing labels as None) plus whatever else the file had (``id``, ``split``,
...). Column names in the user's file are mapped through ``ColumnNames``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from model.errors import DataError

SUPPORTED_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class ColumnNames:
    """Which columns of the user's file hold the text and the labels."""

    text: str = "text"
    stance: str = "stance"
    sentiment: str = "sentiment"
    split: str = "split"
    id: str = "id"


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file format, from ``fmt`` or the file's extension; a saved HF dataset is a folder."""
    if fmt:
        if fmt not in set(SUPPORTED_SUFFIXES.values()) | {"hf"}:
            raise DataError(f"unknown format {fmt!r}; use csv, tsv, jsonl, parquet or hf")
        return fmt
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        raise DataError(f"{path} is a folder but not a saved Hugging Face dataset")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"cannot tell the format of {path} from its extension {suffix!r}; "
            "use .csv, .tsv, .jsonl or .parquet (or pass --format)"
        )
    return SUPPORTED_SUFFIXES[suffix]


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a whole file as strings-where-possible, raising DataError with a clear message."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    fmt = detect_format(path, fmt)
    try:
        if fmt == "hf":
            return _read_hf(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        if path.stat().st_size == 0:
            raise DataError(f"{path} is empty")
        encoding = sniff_encoding(path)
        if fmt == "jsonl":
            return _read_jsonl(path, encoding)
        sep = "\t" if fmt == "tsv" else ","
        return pd.read_csv(
            path, sep=sep, dtype=str, keep_default_na=False, na_values=[], encoding=encoding,
            quoting=csv.QUOTE_MINIMAL, lineterminator="\n" if lf_lines(path, encoding) else None,
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
    encoding = sniff_encoding(path)
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


def sniff_encoding(path: Path) -> str:
    """utf-8, or utf-16 when the file starts with a UTF-16 byte-order mark."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf-8-sig"


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    import json

    rows = []
    with path.open(encoding=encoding) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path} line {line_no}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise DataError(f"{path} line {line_no}: expected a JSON object, got {row!r:.60}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path} has no rows")
    return pd.DataFrame(rows)


def _read_hf(path: Path) -> pd.DataFrame:
    from datasets import DatasetDict, load_from_disk

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


def normalise_columns(frame: pd.DataFrame, columns: ColumnNames, source: str) -> pd.DataFrame:
    """Rename the user's columns to the canonical ones; a missing text column is an error."""
    if columns.text not in frame.columns:
        raise DataError(
            f"{source}: no text column {columns.text!r}; columns are {list(frame.columns)} "
            "(choose one with --text-column)"
        )
    mapping = {
        getattr(columns, name): name
        for name in ("text", "stance", "sentiment", "split", "id")
        if getattr(columns, name) in frame.columns
    }
    frame = frame.rename(columns=mapping)
    for head in ("stance", "sentiment"):
        if head not in frame.columns:
            frame[head] = None
        # object dtype keeps None as None (pandas would turn it into NaN in a str column)
        frame[head] = pd.Series([_label_or_none(v) for v in frame[head]], index=frame.index,
                                dtype=object)
    return frame


def _label_or_none(value: object) -> str | None:
    """Empty cells, NaN and null all mean 'no label for this head'."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    text = str(value).strip()
    return text or None


def load_labelled(
    path: str | Path, columns: ColumnNames | None = None, fmt: str | None = None
) -> pd.DataFrame:
    """Read and normalise a labelled file (no validation; see ``training.validation``)."""
    frame = read_table(path, fmt)
    if len(frame) == 0:
        raise DataError(f"{path} has a header but no rows")
    return normalise_columns(frame, columns or ColumnNames(), str(path))
