"""Labelled data as one normalised table: the user's column names mapped to canonical ones.

``load_labelled`` reads a file through ``training.tables.read_table`` (the one home of file
formats, shared with scoring and the demo) and returns a pandas DataFrame with the canonical
columns ``text``, ``stance``, ``sentiment`` (missing labels as None) plus whatever else the
file had (``id``, ``split``, ...). Column names in the user's file are mapped through
``ColumnNames``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from model.errors import DataError
from training.tables import read_table


@dataclass
class ColumnNames:
    """Which columns of the user's file hold the text and the labels."""

    text: str = "text"
    stance: str = "stance"
    sentiment: str = "sentiment"
    split: str = "split"
    id: str = "id"


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
