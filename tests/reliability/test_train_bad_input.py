"""Bad input through the real ``detente data check``, ``train`` and ``retrain`` commands.

Every case runs the CLI (typer's runner, in process) on a real file with the tiny encoder or
the tiny model and checks one of two outcomes:

- the file is refused: exit code 1 (not an escaped exception, not a traceback), a message
  that names the line, row or field at fault, and nothing written: no model folder, no
  checkpoints, no staging folder;
- the file is fine (UTF-16 with a byte-order mark; a 1 MB statement, which training
  truncates to the model's window): the run succeeds and writes a complete model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from serve.cli import app
from tests.conftest import STATEMENTS

runner = CliRunner()
MODEL_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
               "README.md", "training_summary.json")
ONE_MB_STATEMENT = "The envoy said the talks would resume. " * 27_000  # 1,053,000 characters


def labelled_rows() -> list[dict]:
    """36 labelled rows, unique texts and ids (4 numbered copies of 9 statements)."""
    return [{"id": f"r{copy}-{i}", "text": f"{text} (item {copy}-{i})", "stance": stance,
             "sentiment": sentiment}
            for copy in range(4) for i, (text, stance, sentiment) in enumerate(STATEMENTS)]


def frame(**changes: dict[str, object]) -> pd.DataFrame:
    """The labelled rows with cells changed: ``frame(text={3: ""})`` (0-based row keys)."""
    table = pd.DataFrame(labelled_rows())
    for column, cells in changes.items():
        table[column] = table[column].astype(object)
        for row, value in cells.items():
            table.at[row, column] = value
    return table


def csv_bytes(table: pd.DataFrame, sep: str = ",") -> bytes:
    return table.to_csv(index=False, sep=sep).encode("utf-8")


def jsonl_bytes(rows: list[object]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def changed_rows(**changes: dict[int, object]) -> list[dict]:
    rows = labelled_rows()
    for column, cells in changes.items():
        for row, value in cells.items():
            rows[row][column] = value
    return rows


def broken_line(line_no: int, edit: Callable[[str], str]) -> bytes:
    """The labelled rows as CSV with file line ``line_no`` (1-based, header = 1) edited."""
    lines = csv_bytes(frame()).decode("utf-8").splitlines()
    lines[line_no - 1] = edit(lines[line_no - 1])
    return ("\n".join(lines) + "\n").encode("utf-8")


def parquet_writer(table: pa.Table) -> Callable[[Path], None]:
    return lambda path: pq.write_table(table, path)


def corrupt_parquet(path: Path) -> None:
    """A Parquet file with valid magic bytes and footer but scrambled data pages."""
    pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False), path,
                   compression="snappy")
    data = bytearray(path.read_bytes())
    for i in range(8, 1200):
        data[i] = (data[i] * 7 + 3) % 256
    path.write_bytes(bytes(data))


@dataclass
class Case:
    name: str
    suffix: str
    data: bytes | Callable[[Path], None]
    error: str | None  # regex the message must match; None: the file is fine

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}{self.suffix}"
        if callable(self.data):
            self.data(path)
        else:
            path.write_bytes(self.data)
        return path


JUNK = bytes(range(256)) * 40  # line 2 starts after the 0x0a at offset 10
INT_TEXT = pa.table({"id": [f"r{i}" for i in range(36)], "text": list(range(36)),
                     "stance": ["neutral"] * 36, "sentiment": ["neutral"] * 36})
NULL_TEXT = pa.Table.from_pandas(frame(text={1: None}), preserve_index=False)

BAD = [
    Case("empty", ".csv", b"", r"empty\.csv is empty"),
    Case("empty", ".jsonl", b"", r"empty\.jsonl is empty"),
    Case("header_only", ".csv", b"id,text,stance,sentiment\n", r"header but no rows"),
    Case("header_only_bom", ".tsv", b"\xef\xbb\xbfid\ttext\tstance\tsentiment\r\n",
         r"header but no rows"),
    Case("no_text_column", ".csv", csv_bytes(frame().rename(columns={"text": "body"})),
         r"no text column 'text'; columns are \['id', 'body', 'stance', 'sentiment'\]"),
    Case("empty_texts", ".csv", csv_bytes(frame(text={3: "", 5: "   \t "})),
         r"empty or whitespace-only text \(rows 4, 6\)"),
    Case("nan_texts", ".jsonl", jsonl_bytes(changed_rows(text={2: float("nan"), 4: None})),
         r"missing text \(rows 3, 5\)"),
    Case("null_text", ".parquet", parquet_writer(NULL_TEXT), r"missing text \(rows 2\)"),
    Case("binary", ".csv", JUNK, r"not valid UTF-8 text: line 2 has the byte 0x80 at column 118"),
    Case("binary", ".jsonl", JUNK, r"not valid UTF-8 text: line 2 has the byte 0x80 at column 118"),
    Case("binary", ".parquet", JUNK, r"could not parse .*binary\.parquet as parquet"),
    Case("corrupt", ".parquet", corrupt_parquet, r"could not (read|parse) .*corrupt\.parquet"),
    # one byte that is never valid in UTF-8 (0xff) in the middle of file line 5
    Case("invalid_utf8", ".csv", csv_bytes(frame()).replace(b"(item 0-3)", b"(item \xff 0-3)"),
         r"not valid UTF-8 text: line 5 has the byte 0xff at column \d+"),
    Case("unclosed_quote", ".csv", broken_line(37, lambda s: s.replace('",', ",", 1)),
         r"quoted field that starts on line 37 is never closed"),
    Case("stray_quote", ".csv", broken_line(6, lambda s: s.replace(",", ',"', 1)),
         r"line 6 has 5 fields where the header has 4"),
    Case("extra_fields", ".csv", broken_line(8, lambda s: s + ",extra,fields"),
         r"line 8 has 6 fields where the header has 4"),
    Case("duplicate_ids", ".csv", csv_bytes(frame(id={6: "r0-1"})), r"duplicate id \(rows 2, 7\)"),
    Case("duplicate_texts", ".jsonl",  # row 10 repeats row 1 (same labels), in capitals
         jsonl_bytes(changed_rows(text={9: labelled_rows()[0]["text"].upper()})),
         r"duplicate text \(same statement more than once\) \(rows 1, 10\)"),
    Case("unknown_label", ".csv", csv_bytes(frame(stance={6: "hostile"})),
         r"unknown stance label\(s\) \['hostile'\].*\(rows 7\)"),
    Case("numbers_in_text", ".jsonl",
         jsonl_bytes(changed_rows(text={3: 12345, 6: ["a", "b"], 7: {"x": 1}, 8: True})),
         r"text is not a string \(rows 4, 7, 8, 9\)"),
    Case("numbers_in_text", ".parquet", parquet_writer(INT_TEXT),
         r"text is not a string \(rows 1, 2, 3"),
    Case("numbers_as_labels", ".jsonl",
         jsonl_bytes(changed_rows(stance={3: 5}, sentiment={4: 1.5})),
         r"unknown stance label\(s\) \['5'\].*\(rows 4\)"),
    Case("mixed_split_column", ".jsonl",
         jsonl_bytes([{**r, "split": ["train", 3, None, {"a": 1}][i % 4],
                       "dispute": [["d"], "e"][i % 2]} for i, r in enumerate(labelled_rows())]),
         r"unknown split; allowed: \['train', 'validation', 'test'\] or test_<name> "
         r"\(an evaluation-only split\) \(rows 2, 3, 4, 6"),
    Case("not_an_object", ".jsonl", jsonl_bytes(labelled_rows()[:2] + [[1, 2]]),
         r"line 3: expected a JSON object"),
    Case("broken_json", ".jsonl", jsonl_bytes(labelled_rows()[:2]) + b'{"text": "a",\n',
         r"line 3: not valid JSON"),
]


def utf16_with_bom(path: Path) -> None:
    text = frame(text={2: "Les négociations reprendront à Genève, a dit l’envoyée."})
    path.write_bytes(text.to_csv(index=False).encode("utf-16"))  # BOM + UTF-16-LE


def with_one_mb_statement(path: Path) -> None:
    path.write_bytes(csv_bytes(frame(text={2: ONE_MB_STATEMENT})))


FINE = [Case("utf16_bom", ".csv", utf16_with_bom, None),
        Case("one_mb_statement", ".csv", with_one_mb_statement, None)]


def ids(cases: list[Case]) -> list[str]:
    return [f"{c.name}{c.suffix}" for c in cases]


def assert_refused(result, pattern: str) -> str:
    """Exit 1 through the CLI's own error path, the message matches, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not escaped
    assert "Traceback" not in result.output
    assert re.search(pattern, result.output), result.output
    return result.output


def assert_one_error_line(output: str) -> None:
    """``error: ...`` opens the message; a validation report follows it, nothing else."""
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert all(line.startswith(("  ERROR:", "  WARNING:")) for line in lines[errors[0] + 1:]), (
        output)


def assert_nothing_written(folder: Path, keep: set[str]) -> None:
    """Only the inputs are left: no model, no checkpoints, no hidden staging folder."""
    assert {p.name for p in folder.iterdir()} == keep


@pytest.mark.parametrize("case", BAD, ids=ids(BAD))
def test_data_check_refuses_bad_files_with_the_place(tmp_path, case):
    path = case.write(tmp_path)
    result = runner.invoke(app, ["data", "check", str(path)])
    assert_refused(result, case.error)


@pytest.mark.parametrize("case", FINE, ids=ids(FINE))
def test_data_check_accepts_the_fine_files(tmp_path, case):
    result = runner.invoke(app, ["data", "check", str(case.write(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "36 rows, no problems found" in result.output


def train_args(data: Path, encoder: Path, output: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--base_model", str(encoder), "--output", str(output),
            "--epochs", "1", "--batch_size", "8", "--max_seq_length", "32",
            "--select_backend", "false", *extra]


@pytest.mark.parametrize("case", BAD, ids=ids(BAD))
def test_train_refuses_bad_files_before_training(tmp_path, tiny_encoder_dir, case):
    path = case.write(tmp_path)
    result = runner.invoke(app, train_args(path, tiny_encoder_dir, tmp_path / "model"))
    assert_one_error_line(assert_refused(result, case.error))
    assert_nothing_written(tmp_path, {path.name})


@pytest.mark.parametrize("case", FINE, ids=ids(FINE))
def test_train_accepts_the_fine_files(tmp_path, tiny_encoder_dir, case):
    path = case.write(tmp_path)
    result = runner.invoke(app, train_args(path, tiny_encoder_dir, tmp_path / "model"))
    assert result.exit_code == 0, result.output
    for name in MODEL_FILES:
        assert (tmp_path / "model" / name).is_file(), name
    summary = json.loads((tmp_path / "model" / "training_summary.json").read_text())
    assert summary["rows"]["train"] + summary["rows"]["validation"] == 36
    assert_nothing_written(tmp_path, {path.name, "model"})  # checkpoints and staging gone


@pytest.mark.parametrize(("args", "message"), [
    (["--config", "missing.yaml"], r"config file missing\.yaml does not exist"),
    (["--config", "{config}"], r"is not valid YAML at line 2"),
    (["--validation_fraction", "2"], r"validation_fraction must be between 0 and 1"),
])
def test_bad_arguments_and_config_files_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "train.yaml"
    config.write_text("epochs: [1\nseed: 3\n", encoding="utf-8")
    result = runner.invoke(app, ["train", *[a.format(config=config) for a in args]])
    assert_one_error_line(assert_refused(result, message))


def test_an_output_under_a_file_fails_before_training(tmp_path, tiny_encoder_dir):
    data = Case("ok", ".csv", csv_bytes(frame()), None).write(tmp_path)
    blocker = tmp_path / "models"
    blocker.write_text("a file where a folder should be", encoding="utf-8")
    result = runner.invoke(app, train_args(data, tiny_encoder_dir, blocker / "mine"))
    assert_one_error_line(assert_refused(result, r"models is a file, not a folder"))
    assert_nothing_written(tmp_path, {"ok.csv", "models"})


# --- retrain: the same files as new rows for a fine-tuned model -----------------------------

# Retraining reads new labels as new classes, and a repeated statement as a later correction
# (both documented): those files fail only against explicit --stance-labels/--sentiment-labels
# or not at all. Every other bad file fails as for training.
NEW_LABELS = ("unknown_label", "numbers_as_labels")
RETRAIN_BAD = [c for c in BAD if c.name not in (*NEW_LABELS, "duplicate_texts")]


def retrain_args(model: Path, data: Path, output: Path, replay: Path, *extra: str) -> list[str]:
    return ["retrain", "--from", str(model), "--data", str(data), "--output", str(output),
            "--replay-data", str(replay), "--epochs", "1", *extra]


@pytest.mark.parametrize("case", RETRAIN_BAD, ids=ids(RETRAIN_BAD))
def test_retrain_refuses_bad_files_before_training(tmp_path, tiny_model_dir, corpus_file, case):
    path = case.write(tmp_path)
    result = runner.invoke(app, retrain_args(tiny_model_dir, path, tmp_path / "new",
                                             corpus_file))
    assert_one_error_line(assert_refused(result, case.error))
    assert_nothing_written(tmp_path, {path.name, corpus_file.name})


@pytest.mark.parametrize("case", [c for c in BAD if c.name in NEW_LABELS],
                         ids=ids([c for c in BAD if c.name in NEW_LABELS]))
def test_retrain_unknown_labels_against_explicit_label_sets(
    tmp_path, tiny_model_dir, corpus_file, case
):
    path = case.write(tmp_path)
    result = runner.invoke(app, retrain_args(
        tiny_model_dir, path, tmp_path / "new", corpus_file,
        "--stance-labels", "pro_negotiation,accusatory,neutral",
        "--sentiment-labels", "negative,neutral,positive"))
    assert_one_error_line(assert_refused(result, case.error))
    assert_nothing_written(tmp_path, {path.name, corpus_file.name})


def test_retrain_reports_rows_of_the_file_not_of_the_deduplicated_rows(
    tmp_path, tiny_model_dir, corpus_file
):
    """Row 3 corrects row 1 (the later label wins, both are fine); row 5 is empty."""
    rows = changed_rows(text={2: labelled_rows()[0]["text"], 4: "  "},
                        stance={2: "accusatory"})
    path = tmp_path / "corrections.jsonl"
    path.write_bytes(jsonl_bytes(rows))
    result = runner.invoke(app, retrain_args(tiny_model_dir, path, tmp_path / "new",
                                             corpus_file))
    assert_refused(result, r"empty or whitespace-only text \(rows 5\)")


def test_retrain_accepts_utf16_with_a_one_mb_statement(tmp_path, tiny_model_dir, corpus_file):
    path = tmp_path / "new.csv"
    path.write_bytes(frame(text={2: ONE_MB_STATEMENT}).to_csv(index=False).encode("utf-16"))
    result = runner.invoke(app, retrain_args(tiny_model_dir, path, tmp_path / "new",
                                             corpus_file))
    assert result.exit_code == 0, result.output
    for name in MODEL_FILES:
        assert (tmp_path / "new" / name).is_file(), name
    assert_nothing_written(tmp_path, {path.name, corpus_file.name, "new"})
