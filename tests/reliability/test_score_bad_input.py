"""Bad input through the real ``detente score`` command: a clear error or every row kept.

Every case runs the CLI (typer's runner, in process) on a real file with the tiny model and
checks one of two outcomes:

- the file is refused: exit code 1, exactly one line ``error: ...`` naming the row, line,
  column or field at fault, no traceback, and no output file (nor temp file) left behind;
- the file is scored: exit code 0 and, in every output format, one output row per input
  row, ids preserved in order, and an ``error`` cell saying why for each row that could not
  be scored (never a silently dropped row).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from serve.cli import app

runner = CliRunner()
OUT_FORMATS = ("csv", "tsv", "jsonl", "parquet")
OUT_PAIRS = (("csv", "parquet"), ("tsv", "jsonl"))
csv.field_size_limit(1 << 26)  # the output holds 1-3 MB cells
OK = "We are ready to sit down with them tomorrow and talk about a ceasefire."
ONE_MB = "word " * 210_000  # 1,050,000 characters
JUNK = random.Random(7).randbytes(4096) + b"\x00\x01\x02"


@dataclass
class Case:
    """An input file and what ``detente score`` must make of it."""

    name: str
    fmt: str
    data: bytes | Callable[[Path], None]
    ids: list | None = None  # expected output ids, in order (None: the run must fail)
    errors: list[str | None] = field(default_factory=list)  # per row: text in `error`, or None
    fails: str | None = None  # regex the one-line error must match
    every_output: bool = False  # write all four output formats (else two, in turn)

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}.{self.fmt}"
        if callable(self.data):
            self.data(path)
        else:
            path.write_bytes(self.data)
        return path


def text_file(fmt: str, rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    """A CSV or TSV file written by Python's csv module (minimal quoting, LF line ends)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n").writerows(
        rows)
    return buffer.getvalue().encode(encoding)


def jsonl(*rows: object) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet(table: pa.Table) -> Callable[[Path], None]:
    return lambda path: pq.write_table(table, path)


def corrupt_parquet(path: Path) -> None:
    """A valid footer over a damaged data page: readable schema, unreadable rows."""
    texts = [f"{OK} ({i}) {random.Random(i).random()}" for i in range(200)]
    pq.write_table(pa.table({"text": texts}), path, compression="none")
    data = bytearray(path.read_bytes())
    start = len(b"PAR1") + 64
    data[start:start + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))


def delimited_cases(fmt: str) -> list[Case]:
    sep = "\t" if fmt == "tsv" else ","
    rows = [["id", "text"], ["a", OK], ["b", OK]]
    return [
        Case(f"{fmt}-empty-file", fmt, b"", fails=r"input file \S+ is empty"),
        Case(f"{fmt}-header-only", fmt, f"id{sep}text\n".encode(), ids=[]),
        Case(f"{fmt}-header-only-no-newline", fmt, f"id{sep}text".encode(), ids=[]),
        Case(f"{fmt}-no-text-column", fmt, text_file(fmt, [["id", "body"], ["a", OK]]),
             fails=r"has no column 'text'; its columns are \['id', 'body'\]"),
        Case(f"{fmt}-empty-blank-and-nan-text", fmt,
             text_file(fmt, [["id", "text"], ["a", ""], ["b", "   "], ["c", "\t \t"],
                             ["d", "NaN"], ["e", OK], ["f", "null"]]),
             ids=list("abcdef"), every_output=True,
             errors=["'text' is empty", "'text' is blank", "'text' is blank", None, None, None]),
        Case(f"{fmt}-numbers-and-bools-are-text", fmt,
             text_file(fmt, [["id", "text"], ["1", "42"], ["2", "true"], ["3", "-0.5"]]),
             ids=["1", "2", "3"], errors=[None, None, None]),
        Case(f"{fmt}-1mb-statement", fmt,
             text_file(fmt, [["id", "text"], ["a", OK], ["b", ONE_MB], ["c", OK]]),
             ids=["a", "b", "c"], errors=[None, "'text' is too long: 1,050,000 characters",
                                          None]),
        Case(f"{fmt}-3mb-statement-quoted", fmt,
             text_file(fmt, [["id", "text"], ["a", OK], ["b", "a, \"b\"\n" * 450_000]]),
             ids=["a", "b"], errors=[None, "'text' is too long"]),
        Case(f"{fmt}-binary-junk", fmt, JUNK, fails=r"holds NUL bytes, so it is not a text file"),
        Case(f"{fmt}-invalid-utf8-in-one-cell", fmt,
             f"id{sep}text\na{sep}{OK}\nb{sep}".encode() + b"caf\xe9 au lait\n"
             + f"c{sep}{OK}\n".encode(),
             fails=r"row 2, column 'text' is not valid UTF-8 \(b'caf\\xe9 au lait'\)"),
        Case(f"{fmt}-latin1-file", fmt, text_file(fmt, [["id", "text"], ["a", "naïve"],
                                                        ["b", "café"]], "latin-1"),
             fails=r"row 1, column 'text' is not valid UTF-8 .* save it as UTF-8"),
        Case(f"{fmt}-invalid-utf8-header", fmt, f"id{sep}".encode() + b"t\xe9xt\na" +
             f"{sep}{OK}\n".encode(), fails=r"a column name in its header is not valid UTF-8"),
        Case(f"{fmt}-utf16-le-bom", fmt,
             codecs.BOM_UTF16_LE + text_file(fmt, rows + [["c", "Ünïcödé ✓"]], "utf-16-le"),
             ids=["a", "b", "c"], errors=[None, None, None]),
        Case(f"{fmt}-utf16-be-bom", fmt,
             codecs.BOM_UTF16_BE + text_file(fmt, rows, "utf-16-be"), ids=["a", "b"],
             errors=[None, None]),
        Case(f"{fmt}-utf8-bom-and-crlf", fmt,
             codecs.BOM_UTF8 + f"id{sep}text\r\na{sep}{OK}\r\nb{sep}\"two\r\nlines\"\r\n".encode(),
             ids=["a", "b"], errors=[None, None]),
        Case(f"{fmt}-unterminated-quote", fmt,
             f"id{sep}text\na{sep}{OK}\nb{sep}\"never closed\nc{sep}{OK}\nd{sep}{OK}\n".encode(),
             fails=r"row 2 opens a quote in column 'text' that is never closed, so the last 3 "),
        Case(f"{fmt}-quote-inside-a-cell", fmt,
             f"id{sep}text\na{sep}he said \"no\" twice\nb{sep}{OK}\n".encode(),
             ids=["a", "b"], errors=[None, None]),
        Case(f"{fmt}-too-many-fields", fmt,
             f"id{sep}text\na{sep}{OK}\nb{sep}x{sep}\"y\"\nc{sep}{OK}\n".encode(),
             fails=r"row 2 \(line 3\) has 3 field\(s\) where the header has 2: 'b"),
        Case(f"{fmt}-too-few-fields-after-multiline-cell", fmt,
             f"id{sep}text\na{sep}\"one\ntwo\nthree\"\nb\nc{sep}{OK}\n".encode(),
             fails=r"row 2 \(line 5\) has 1 field\(s\) where the header has 2: 'b'"),
        Case(f"{fmt}-duplicate-ids", fmt,
             text_file(fmt, [["id", "text"], ["x", OK], ["x", ""], ["x", OK]]),
             ids=["x", "x", "x"], errors=[None, "'text' is empty", None]),
        Case(f"{fmt}-duplicate-columns", fmt, text_file(fmt, [["text", "text"], ["a", "b"]]),
             fails=r"duplicate column names \['text'\]"),
    ]


JSONL_CASES = [
    Case("jsonl-empty-file", "jsonl", b"", fails=r"input file \S+ is empty"),
    Case("jsonl-blank-lines-only", "jsonl", b"\n \n\t\n", fails=r"has no JSON rows"),
    Case("jsonl-no-text-field", "jsonl", jsonl({"id": 1, "body": OK}),
         fails=r"has no column 'text'; its columns are \['id', 'body'\]"),
    Case("jsonl-mixed-types-in-text", "jsonl",
         jsonl({"id": 1, "text": OK}, {"id": 2, "text": 42}, {"id": 3, "text": 1.5},
               {"id": 4, "text": True}, {"id": 5, "text": None}, {"id": 6},
               {"id": 7, "text": ["a"]}, {"id": 8, "text": {"q": "a"}}, {"id": 9, "text": ""},
               {"id": 10, "text": " \n "}) + b'{"id": 11, "text": NaN}\n',
         ids=list(range(1, 12)), every_output=True,
         errors=[None, "'text' is int, not text: 42", "'text' is float, not text: 1.5",
                 "'text' is bool, not text: True", "'text' is missing (null)",
                 "the row has no 'text' field", "'text' is list, not text",
                 "'text' is dict, not text", "'text' is empty", "'text' is blank",
                 "'text' is missing (NaN)"]),
    Case("jsonl-mixed-types-in-other-columns", "jsonl",
         jsonl({"id": "a", "text": OK, "n": 1, "meta": "x"},
               {"id": "b", "text": OK, "n": 2.5, "meta": {"k": [1, None]}},
               {"id": "c", "text": OK, "n": None, "meta": True}),
         ids=["a", "b", "c"], errors=[None, None, None]),
    Case("jsonl-all-numbers-in-text", "jsonl", jsonl({"text": 1}, {"text": 2}),
         fails=r"column 'text' of \S+ holds int64, not text"),
    Case("jsonl-1mb-statement", "jsonl", jsonl({"id": 1, "text": ONE_MB}, {"id": 2, "text": OK}),
         ids=[1, 2], errors=["'text' is too long: 1,050,000 characters", None]),
    Case("jsonl-binary-junk", "jsonl", JUNK, fails=r"line 1 is not valid UTF-8 \(byte \d+ of"),
    Case("jsonl-invalid-utf8-in-one-line", "jsonl",
         jsonl({"id": 1, "text": OK}) + b'{"id": 2, "text": "caf\xe9"}\n' + jsonl({"text": OK}),
         fails=r"line 2 is not valid UTF-8 \(byte 23 of the line: b'\\xe9\"}'\)"),
    Case("jsonl-utf16-le-bom", "jsonl",
         codecs.BOM_UTF16_LE + '{"id": 1, "text": "Ünïcödé ✓"}\r\n{"id": 2, "text": "b"}\r\n'
         .encode("utf-16-le"), ids=[1, 2], errors=[None, None]),
    Case("jsonl-utf16-without-bom", "jsonl", '{"id": 1, "text": "a"}\n'.encode("utf-16-le"),
         fails=r"line 1: not valid JSON .*UTF-16 without a byte-order mark"),
    Case("jsonl-broken-line", "jsonl", jsonl({"text": OK}) + b'{"text": "open\n' + jsonl({}),
         fails=r"line 2: not valid JSON \(Unterminated string"),
    Case("jsonl-not-an-object", "jsonl", jsonl({"text": OK}, ["a", "b"]),
         fails=r"line 2: expected a JSON object, got '\[\"a\", \"b\"\]'"),
    Case("jsonl-nested-too-deeply", "jsonl",
         jsonl({"text": OK}) + b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
         fails=r"line 2: JSON nested too deeply"),
    Case("jsonl-lone-surrogate", "jsonl", b'{"id": 1, "text": "a\\ud800b"}\n' + jsonl(
        {"id": 2, "text": OK}), ids=[1, 2], errors=["not valid Unicode", None]),
    Case("jsonl-duplicate-ids", "jsonl", jsonl({"id": 7, "text": OK}, {"id": 7, "text": OK}),
         ids=[7, 7], errors=[None, None]),
]

PARQUET_CASES = [
    Case("parquet-empty-file", "parquet", b"", fails=r"input file \S+ is empty"),
    Case("parquet-junk", "parquet", JUNK, fails=r"could not read \S+ as Parquet: .*magic bytes"),
    Case("parquet-zero-rows", "parquet",
         parquet(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())})),
         ids=[]),
    Case("parquet-no-text-column", "parquet", parquet(pa.table({"body": [OK]})),
         fails=r"has no column 'text'; its columns are \['body'\]"),
    Case("parquet-null-empty-blank-text", "parquet",
         parquet(pa.table({"id": [3, 1, 2, 4], "text": [OK, None, "", "  "]})),
         ids=[3, 1, 2, 4], errors=[None, "'text' is missing (null)", "'text' is empty",
                                   "'text' is blank"]),
    Case("parquet-all-null-text", "parquet",
         parquet(pa.table({"id": [1, 2], "text": pa.array([None, None], pa.null())})),
         ids=[1, 2], errors=["missing (null)", "missing (null)"]),
    Case("parquet-int-text", "parquet", parquet(pa.table({"text": [1, 2]})),
         fails=r"column 'text' of \S+ holds int64, not text"),
    Case("parquet-bool-text", "parquet", parquet(pa.table({"text": [True, None]})),
         fails=r"column 'text' of \S+ holds bool, not text"),
    Case("parquet-mixed-column-types", "parquet", parquet(pa.table({
        "id": ["a", "b", "c"],
        "text": pa.array([OK, None, OK], pa.large_string()),
        "n": pa.array([1, None, -3], pa.int32()),
        "x": [0.5, float("nan"), None],
        "flag": [True, None, False],
        "nothing": pa.array([None, None, None], pa.null()),
        "when": pa.array([0, None, 10**15], pa.timestamp("us")),
        "tags": [["=a", "b"], None, []],
        "meta": [{"k": 1}, None, {"k": None}],
        "raw": pa.array([b"\x00\xff", None, b"ok"], pa.binary()),
        "kind": pa.array(["wire", "tv", "wire"]).dictionary_encode(),
        "price": pa.array([None, Decimal("1.50"), Decimal("-2.25")], pa.decimal128(10, 2)),
    })), ids=["a", "b", "c"], errors=[None, "'text' is missing (null)", None],
         every_output=True),
    Case("parquet-1mb-statement", "parquet",
         parquet(pa.table({"id": [1, 2], "text": [ONE_MB, OK]})),
         ids=[1, 2], errors=["'text' is too long", None]),
    Case("parquet-duplicate-ids", "parquet",
         parquet(pa.table({"id": [5, 5, 5], "text": [OK, OK, None]})),
         ids=[5, 5, 5], errors=[None, None, "missing (null)"]),
    Case("parquet-invalid-utf8-in-one-cell", "parquet", parquet(pa.table({
        "id": [1, 2, 3],
        "text": pa.array([OK.encode(), b"caf\xe9 au lait", OK.encode()]).view(pa.string()),
    })), fails=r"row 2, column 'text' is not valid UTF-8 \(b'caf\\xe9 au lait'\)"),
    Case("parquet-damaged-data-page", "parquet", corrupt_parquet,
         fails=r"could not read \S+ as Parquet after row 0 \(a damaged file\?\)"),
]

CASES = delimited_cases("csv") + delimited_cases("tsv") + JSONL_CASES + PARQUET_CASES
PARAMS = [
    pytest.param(case, OUT_FORMATS if case.every_output else OUT_PAIRS[i % 2], id=case.name)
    for i, case in enumerate(CASES)
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: quicker for these tiny batches, above all on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def score(src: Path, out: Path, model: Path):
    result = runner.invoke(app, ["score", str(src), "-o", str(out), "--model", str(model),
                                 "--backend", "torch", "--chunk-size", "2", "--no-progress"])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None:  # typer.Exit shows up as SystemExit
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def read_rows(path: Path) -> list[dict]:
    """The output's rows, read without detente's code."""
    fmt = path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if fmt == "tsv" else ","))
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("out") or
                  p.name.endswith(".tmp"))


@pytest.mark.parametrize(("case", "out_formats"), PARAMS)
def test_bad_input_gives_a_clear_error_or_keeps_every_row(
    case, out_formats, tmp_path, tiny_model_dir
):
    src = case.write(tmp_path)
    if case.fails is not None:
        result = score(src, tmp_path / "out.jsonl", tiny_model_dir)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1, result.output
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert re.search(case.fails, lines[0]), lines[0]
        assert leftovers(tmp_path) == []  # no output, no temp file, no work folder
        return
    for out_fmt in out_formats:
        out = tmp_path / f"out.{out_fmt}"
        result = score(src, out, tiny_model_dir)
        assert result.exit_code == 0, result.output
        assert f"scored {len(case.ids)} rows" in result.output
        rows = read_rows(out)
        assert len(rows) == len(case.ids)
        ids = [row["id"] for row in rows]
        if out_fmt in ("csv", "tsv"):
            assert ids == [str(i) for i in case.ids]
        else:
            assert ids == case.ids
        for row, expected in zip(rows, case.errors or [None] * len(rows)):
            if expected is None:
                assert not row["error"], row["error"]
                assert row["stance"] in ("pro_negotiation", "accusatory", "neutral")
            else:
                assert expected in row["error"], row["error"]
                assert not row["stance"]  # empty labels, never a made-up one
        assert not (tmp_path / f"out.{out_fmt}.parts").exists()
    assert [n for n in leftovers(tmp_path) if n.endswith(".tmp")] == []


def test_header_only_output_has_the_header_and_no_rows(tmp_path, tiny_model_dir):
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text,source")
    result = score(src, tmp_path / "out.csv", tiny_model_dir)
    assert result.exit_code == 0, result.output
    header = (tmp_path / "out.csv").read_text().splitlines()
    assert header == ['"id","text","source","stance","p_pro_negotiation","p_accusatory",'
                      '"p_neutral","sentiment","sentiment_score","model_version","error"']
