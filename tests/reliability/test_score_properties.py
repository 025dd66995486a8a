"""Property-based tests: any table of strings survives the readers, the writers and scoring.

Tables are drawn by hypothesis: random Unicode (control characters and NUL included), quotes,
commas, tabs, CR, LF, formula starters (= + - @, also after white space), numbers, empty
strings and nulls. Files are written and read back with independent code (Python's csv and
json modules, pyarrow), and the chunk size is small so that multi-chunk paths run.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.classifier import Classifier
from model.errors import DataError
from serve.scoring import score_file
from training.tables import (
    TableWriter,
    escape_formula,
    escape_formulas,
    read_chunks,
    rechunk,
    scan_input,
)

FORMATS = ("csv", "tsv", "jsonl", "parquet")
COLUMNS = ("id", "text", "note")
SPECIAL = ["", " ", "  ", "\t", "\r", "\n", "\r\n", '"', '""', "'", ",", ";", "=", "+", "-",
           "@", "=1+1", "=HYPERLINK(\"http://x\")", "@SUM(A1)", "-5", "+1.5e3", ".25", "-.5e-3",
           "1,5", "-5 ", " -5", " =cmd|' /C calc'!A0", "\t=x", "\n+1", "\x00=1", "NaN", "null",
           "None", "true", "\x00", "\ufeff", "é", "✓", "\u2028", "\U0001d11e", "a\x1fb"]
cells = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(SPECIAL),
    st.lists(st.sampled_from(SPECIAL + ["word", "x"]), min_size=2, max_size=4).map("".join),
)
tables = st.lists(st.tuples(cells, cells, cells), max_size=12)
SCORING_SETTINGS = settings(max_examples=25, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
IO_SETTINGS = settings(max_examples=50, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def formula_escaped(cell: str) -> str:
    """The rule of the scoring module's docstring, written out independently."""
    if not cell or NUMBER.fullmatch(cell):
        return cell
    stripped = cell.lstrip(" \t\r\n\f\v")
    risky = cell[0] in "=+-@\t\r\n\x00" or (stripped != cell and stripped[:1] in tuple("=+-@"))
    return "'" + cell if risky else cell


# ----------------------------------------------------------------------------- files


def write_input(path: Path, fmt: str, rows: list[tuple], data) -> None:
    """Write ``rows`` as ``fmt`` with code that is not detente's."""
    if fmt in ("csv", "tsv"):
        minimal = data.draw(st.booleans(), label="minimal quoting")
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(  # a bare CR is only quoted when it ends lines
                handle, delimiter="\t" if fmt == "tsv" else ",",
                quoting=csv.QUOTE_MINIMAL if minimal else csv.QUOTE_ALL,
                lineterminator="\r\n" if minimal else "\n",
            )
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    elif fmt == "jsonl":
        ascii_only = data.draw(st.booleans(), label="ensure_ascii")
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(dict(zip(COLUMNS, row)), ensure_ascii=ascii_only) + "\n")
    else:
        columns = {name: pa.array([row[i] for row in rows], pa.string())
                   for i, name in enumerate(COLUMNS)}
        pq.write_table(pa.table(columns), path, row_group_size=data.draw(
            st.integers(1, 6), label="row group size"))


def read_output(path: Path, fmt: str) -> list[dict]:
    """An output file's rows, read with code that is not detente's."""
    if fmt in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ","))
    if fmt == "jsonl":
        with path.open(encoding="utf-8", newline="\n") as handle:
            return [json.loads(line) for line in handle]
    return pq.read_table(path).to_pylist()


def as_read(value, in_fmt: str):
    """What the reader makes of a cell: CSV and TSV cannot hold a null, it reads as ''."""
    return "" if value is None and in_fmt in ("csv", "tsv") else value


def as_written(value, out_fmt: str):
    """What the writer makes of a cell: CSV and TSV escape formulas and write null as ''."""
    if out_fmt in ("csv", "tsv"):
        return "" if value is None else formula_escaped(value)
    return value


# ----------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    """One loaded model for every example (``score_file`` takes a loaded backend)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield Classifier.load(tiny_model_dir)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("in_fmt", FORMATS)
@SCORING_SETTINGS
@given(rows=tables, data=st.data())
def test_scoring_keeps_every_row_in_order_with_its_id(backend, in_fmt, rows, data):
    out_fmt = data.draw(st.sampled_from(FORMATS), label="output format")
    chunk_size = data.draw(st.sampled_from([2, 3, 50]), label="chunk size")
    with tempfile.TemporaryDirectory() as folder:
        src, out = Path(folder) / f"in.{in_fmt}", Path(folder) / f"out.{out_fmt}"
        write_input(src, in_fmt, rows, data)
        if in_fmt == "jsonl" and not rows:  # an empty file: no rows, no columns
            with pytest.raises(DataError, match="is empty"):
                score_file(src, out, backend=backend, progress=False)
            return
        result = score_file(src, out, backend=backend, chunk_size=chunk_size, batch_size=4,
                            progress=False)
        got = read_output(out, out_fmt)
        assert sorted(p.name for p in Path(folder).iterdir()) == sorted([src.name, out.name])
    assert result.rows == len(got) == len(rows)
    read = [[as_read(v, in_fmt) for v in row] for row in rows]
    expected = [[as_written(v, out_fmt) for v in row] for row in read]
    assert [[g[name] for name in COLUMNS] for g in got] == expected  # ids, order, cells
    for row, (_id, text, _note) in zip(got, read):
        blank = text is None or not text.strip()
        assert bool(row["error"]) == blank, (text, row["error"])
        assert bool(row["stance"]) == (not blank)
    assert result.errors == sum(bool(row["error"]) for row in got)


# ----------------------------------------------------------------------------- tables


@pytest.mark.parametrize("fmt", FORMATS)
@IO_SETTINGS
@given(rows=tables, data=st.data())
def test_writer_then_reader_gives_the_same_table_from_any_row(fmt, rows, data):
    schema = pa.schema([pa.field(name, pa.string()) for name in COLUMNS])
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)},
                     schema=schema)
    pieces = data.draw(st.integers(1, 4), label="writes")
    chunk_size = data.draw(st.integers(1, 6), label="chunk size")
    start = data.draw(st.integers(0, len(rows)), label="start row")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t.{fmt}"
        writer = TableWriter(path, fmt, schema)
        step = max(1, -(-len(rows) // pieces))
        for first in range(0, len(rows), step):
            writer.write(table.slice(first, step))
        writer.close()
        if fmt == "jsonl" and not rows:  # an empty file: no rows, no columns
            with pytest.raises(DataError, match="is empty"):
                scan_input(path, fmt, "text")
            return
        info = scan_input(path, fmt, "text")
        chunks = list(read_chunks(info, chunk_size, start_row=start))
    assert info.num_rows == len(rows)
    assert [c.first_row for c in chunks] == list(range(start, len(rows), chunk_size))
    got = [row for c in chunks for row in zip(*(c.table.column(n).to_pylist() for n in COLUMNS))]
    expected = [tuple(as_read(as_written(v, fmt), fmt) for v in row) for row in rows[start:]]
    assert [list(r) for r in got] == [list(r) for r in expected]
    texts = [t for c in chunks for t in c.texts]
    assert texts == [row[1] for row in expected]


VALID = {
    "csv": b'id,text,note\r\na,"x, ""y""",1\r\nb,"two\nlines",\r\nc,=z,-5\r\n',
    "tsv": b'id\ttext\tnote\na\t"x\t""y"""\t1\nb\t"two\nlines"\t\n',
    "jsonl": b'{"id": "a", "text": "x", "note": 1}\n{"id": "b", "text": null}\n',
}
SPICE = [b'"', b",", b"\t", b"\n", b"\r", b"\x00", b"\xff", b"\xe9", b"{", b"}", b"\\u",
         b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"]", b"\\", b" "]


@st.composite
def damaged(draw, fmt: str) -> bytes:
    """A valid file with bytes inserted, deleted or replaced, or raw junk."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=200))
    data = bytearray(VALID[fmt])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(SPICE))
        if action == "insert":
            data[at:at] = piece
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 3))]
        else:
            data[at:at + len(piece)] = piece
    return bytes(data)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_files_give_rows_or_a_data_error_never_a_crash(fmt, data):
    blob = data.draw(damaged(fmt), label="file")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in.{fmt}"
        path.write_bytes(blob)
        try:
            info = scan_input(path, fmt, "text")
        except DataError as err:
            assert "\n" not in str(err) and str(err).isprintable(), str(err)
            return
        chunks = list(read_chunks(info, 2))
    assert sum(c.table.num_rows for c in chunks) == info.num_rows
    assert sum(len(c.texts) for c in chunks) == info.num_rows


def test_damaged_parquet_files_give_rows_or_a_data_error_never_a_crash(tmp_path):
    """Bytes flipped anywhere in a Parquet file (fixed seed: a crash here would be pyarrow's)."""
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": list(range(40)), "text": [f"statement {i}" for i in range(40)],
                             "tags": [[f"t{i}"] for i in range(40)]}),
                   good, row_group_size=15, compression="none")
    base, rng, outcomes = good.read_bytes(), random.Random(11), set()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = tmp_path / "damaged.parquet"
        path.write_bytes(bytes(data))
        try:
            info = scan_input(path, "parquet", "text")
            rows = sum(c.table.num_rows for c in read_chunks(info, 7))
            assert rows == info.num_rows
            outcomes.add("rows")
        except DataError as err:
            assert "\n" not in str(err)
            outcomes.add("error")
    assert outcomes == {"rows", "error"}


@given(st.lists(st.one_of(st.none(), cells), max_size=30))
@settings(max_examples=200, deadline=None)
def test_formula_escaping_follows_the_documented_rule(values):
    got = escape_formulas(pa.array(values, pa.string())).to_pylist()
    assert got == [None if v is None else formula_escaped(v) for v in values]
    assert [escape_formula(v) for v in values if v is not None] == [
        formula_escaped(v) for v in values if v is not None]


@given(sizes=st.lists(st.integers(0, 7), max_size=8), chunk_size=st.integers(1, 5),
       skip=st.integers(0, 12))
@settings(max_examples=100, deadline=None)
def test_rechunk_gives_exact_chunks_in_order(sizes, chunk_size, skip):
    tables, n = [], 0
    for size in sizes:
        tables.append(pa.table({"i": list(range(n, n + size))}))
        n += size
    chunks = list(rechunk(iter(tables), chunk_size, skip))
    assert [v for c in chunks for v in c.column("i").to_pylist()] == list(range(min(skip, n), n))
    assert all(c.num_rows == chunk_size for c in chunks[:-1])
    assert all(0 < c.num_rows <= chunk_size for c in chunks)


def test_the_csv_writer_quotes_what_it_must():
    """A cell with the separator, a quote, CR or LF cannot break a row of CSV output."""
    schema = pa.schema([pa.field("a", pa.string()), pa.field("b", pa.string())])
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        writer = TableWriter(path, "csv", schema)
        writer.write(pa.table({"a": ["x,y", 'say "hi"', "l1\rl2", None],
                               "b": ["\n", "", "=1", "-2"]}, schema=schema))
        writer.close()
        buffer.write(path.read_bytes())
    rows = list(csv.reader(io.StringIO(buffer.getvalue().decode(), newline="")))
    assert rows == [["a", "b"], ["x,y", "'\n"], ['say "hi"', ""], ["l1\rl2", "'=1"], ["", "-2"]]
