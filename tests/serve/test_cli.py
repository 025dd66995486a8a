from __future__ import annotations

import json

from typer.testing import CliRunner

from serve.cli import app
from tests.conftest import write_jsonl

runner = CliRunner()


def test_predict_json_gives_one_object_per_statement(tiny_model_dir):
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "--json",
                                 "We are ready to talk.", "They shelled the port."])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["text"] for line in lines] == ["We are ready to talk.", "They shelled the port."]
    assert set(lines[0]) == {"text", "stance", "stance_probs", "sentiment", "sentiment_probs",
                             "sentiment_score"}


def test_predict_reads_stdin(tiny_model_dir):
    result = runner.invoke(app, ["predict", "--model", str(tiny_model_dir), "-"],
                           input="first statement\n\nsecond statement\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 2


def test_predict_with_a_broken_model_folder_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope"), "hello"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_data_check_passes_and_fails_with_row_numbers(tmp_path, corpus_file):
    ok = runner.invoke(app, ["data", "check", str(corpus_file), "--corpus"])
    assert ok.exit_code == 0, ok.output
    assert "no problems found" in ok.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"text": "fine", "stance": "neutral", "sentiment": "neutral"},
        {"text": "odd", "stance": "furious", "sentiment": "neutral"},
    ])
    result = runner.invoke(app, ["data", "check", str(bad)])
    assert result.exit_code == 1
    assert "unknown stance label(s) ['furious']" in result.output and "(rows 2)" in result.output


def test_data_check_names_a_missing_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sentence,stance\nhello,neutral\n")
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 1 and "no text column 'text'" in result.output
    result = runner.invoke(app, ["data", "check", str(path), "--text-column", "sentence"])
    assert result.exit_code == 0, result.output
