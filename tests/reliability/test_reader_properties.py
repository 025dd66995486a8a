"""Property-based tests of the data readers: any table of strings survives a round trip.

A table of random unicode strings (commas, quotes, tabs, newlines, carriage returns, leading
``= + - @``, non-Latin scripts, emoji) written as CSV, TSV, JSONL or Parquet by the usual
writers comes back through ``training.tables.read_table`` and ``load_labelled`` with the same
row count, order, ids and texts. And whatever JSON values a labelled file holds, reading and
validating it gives a report, never a crash.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.errors import DataError
from training.data import load_labelled
from training.tables import read_table
from training.validation import validate

SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Every code point but surrogates (which no UTF-8 file can hold); NUL is a control character
# that CSV files cannot carry either, and is covered for JSONL and Parquet only.
NO_SURROGATES = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TRICKY = st.sampled_from([",", '"', "'", "\t", "\n", "\r\n", "\r", "=", "+", "-", "@", ";",
                          "=HYPERLINK(\"x\")", "@SUM(A1)", "+1", "-1", "\\", "\ufeff", " ",
                          "NaN", "null", "None", "", "#", "\u2028", "😀", "中文", "שָׁלוֹם"])
CELL = st.lists(st.one_of(TRICKY, st.text(NO_SURROGATES, max_size=12)), max_size=5).map(
    "".join)


@st.composite
def tables(draw) -> pd.DataFrame:
    """1-25 rows: unique string ids, any text, and an extra column of any strings."""
    ids = draw(st.lists(CELL, min_size=1, max_size=25, unique=True))
    texts = draw(st.lists(CELL, min_size=len(ids), max_size=len(ids)))
    notes = draw(st.lists(CELL, min_size=len(ids), max_size=len(ids)))
    return pd.DataFrame({"id": ids, "text": texts, "note": notes}, dtype=object)


def write(frame: pd.DataFrame, fmt: str, folder: Path) -> Path:
    path = folder / f"table.{fmt}"
    if fmt in ("csv", "tsv"):
        frame.to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n"
                                for row in frame.to_dict("records")), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def assert_round_trip(frame: pd.DataFrame, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(frame, fmt, Path(folder))
        for back in (read_table(path), load_labelled(path)):
            assert len(back) == len(frame)
            assert back["id"].tolist() == frame["id"].tolist()
            assert back["text"].tolist() == frame["text"].tolist()
            assert back["note"].tolist() == frame["note"].tolist()


@SETTINGS
@given(tables())
def test_csv_round_trip(frame):
    assert_round_trip(frame, "csv")


@SETTINGS
@given(tables())
def test_tsv_round_trip(frame):
    assert_round_trip(frame, "tsv")


@SETTINGS
@given(tables())
def test_jsonl_round_trip(frame):
    assert_round_trip(frame, "jsonl")


@SETTINGS
@given(tables())
def test_parquet_round_trip(frame):
    assert_round_trip(frame, "parquet")


@SETTINGS
@given(tables(), st.sampled_from(["utf-8-sig", "utf-16"]), st.sampled_from(["\n", "\r\n"]))
def test_csv_with_a_byte_order_mark_or_crlf_round_trips(frame, encoding, line_end):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        path.write_bytes(frame.to_csv(index=False, lineterminator=line_end).encode(encoding))
        back = read_table(path)
        assert back["id"].tolist() == frame["id"].tolist()
        assert back["text"].tolist() == frame["text"].tolist()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_infinity=False)
    | st.sampled_from(["train", "validation", "test", "neutral", "accusatory", "positive",
                       "the talks in geneva will resume next week", "", "  "])
    | st.text(NO_SURROGATES, max_size=8),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=2),
    max_leaves=3,
)
ROWS = st.lists(st.fixed_dictionaries({}, optional={
    key: JSON_VALUES for key in ("id", "text", "stance", "sentiment", "split", "dispute")}),
    min_size=1, max_size=8)


@SETTINGS
@given(ROWS)
def test_any_json_values_give_a_report_never_a_crash(rows):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        try:
            frame = load_labelled(path)
        except DataError as err:  # no text column, no rows: said in words
            assert "text" in str(err) or "rows" in str(err)
            return
        report = validate(frame, str(path))
        assert report.n_rows == len(rows)
        report.render()
