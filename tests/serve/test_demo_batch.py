"""The batch tab's reading, scoring and writing, without a server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from model.probabilities import calibrated
from serve.demo_batch import (
    CHUNK_CHARS,
    CHUNK_ROWS,
    BatchError,
    BatchLimits,
    chunks,
    read_pasted,
    read_upload,
    run_batch,
    sentiment_histogram,
    stance_chart,
    write_scored,
)
from serve.demo_runner import ModelRunner
from serve.scoring import score_file
from training.tables import escape_formula, read_chunks, read_table, scan_input

LIMITS = BatchLimits(max_rows=50, max_bytes=20_000, max_row_chars=300)


@pytest.fixture(scope="module")
def runner(tiny_classifier) -> ModelRunner:
    return ModelRunner(tiny_classifier)


def test_pasted_lines_skip_blanks_and_are_numbered(runner):
    batch = read_pasted("first\n\n  second  \n\n", LIMITS)
    assert batch.table.to_pydict() == {"text": ["first", "second"]} and batch.fmt == "csv"
    table = run_batch(runner, LIMITS, pasted="first\n\n  second  \n\n", upload=None).table
    assert table["id"].tolist() == [1, 2] and table["text"].tolist() == ["first", "second"]


def test_too_many_rows_get_a_clear_message(tmp_path):
    with pytest.raises(BatchError, match="51 statements; the demo scores at most 50"):
        read_pasted("\n".join(f"s{i}" for i in range(51)), LIMITS)
    path = tmp_path / "big.csv"
    pd.DataFrame({"text": [f"s{i}" for i in range(51)]}).to_csv(path, index=False)
    with pytest.raises(BatchError, match="detente score"):
        read_upload(path, LIMITS)


def test_too_large_a_file_gets_a_clear_message(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("text\n" + "x" * 30_000 + "\n", encoding="utf-8")
    with pytest.raises(BatchError, match="files up to"):
        read_upload(path, LIMITS)


def test_a_missing_text_column_is_named(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("body,id\nhello,1\n", encoding="utf-8")
    with pytest.raises(BatchError, match="no column 'text'.*'body'"):
        read_upload(path, LIMITS)
    batch = read_upload(path, LIMITS, text_column="body")
    assert batch.fmt == "csv" and batch.texts == ["hello"] and batch.id_column == "id"


def test_bad_rows_keep_their_place_with_the_reason(tmp_path, runner):
    path = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "We are ready to talk."}, {"id": "b", "text": "   "},
            {"id": "c", "text": None}, {"id": "d", "text": 42},
            {"id": "e", "text": "x" * 301}, {"id": "f", "text": "They shelled the port."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_batch(runner, LIMITS, pasted="ignored", upload=path)
    table = result.table
    assert table["id"].tolist() == list("abcdef") and result.fmt == "jsonl"
    assert table["error"].tolist() == [  # detente score's reasons, plus the demo's limit
        None, "'text' is blank (only white space)", "'text' is missing (null)",
        "'text' is int, not text: 42",
        "'text' is too long for the demo: 301 characters (the limit here is 300; score it "
        "with detente score)", None]
    assert table["stance"].notna().tolist() == [True, False, False, False, False, True]
    probs = table[["p_pro_negotiation", "p_accusatory", "p_neutral"]].iloc[[0, 5]].sum(axis=1)
    assert probs.round(4).tolist() == [1.0, 1.0]
    assert set(table["model_version"]) == {runner.classifier.model_version}


def test_output_keeps_input_columns_and_renames_collisions(tmp_path, runner):
    path = tmp_path / "gold.csv"
    pd.DataFrame({"text": ["Talks now.", "They lied."], "stance": ["pro_negotiation",
                  "accusatory"], "source": ["x", "y"]}).to_csv(path, index=False)
    table = run_batch(runner, LIMITS, pasted=None, upload=path).table
    assert table["id"].tolist() == [1, 2]  # detente score's id: the row number, int64
    assert table["input_stance"].tolist() == ["pro_negotiation", "accusatory"]
    assert table["source"].tolist() == ["x", "y"]
    assert list(table.columns[-7:]) == ["p_pro_negotiation", "p_accusatory", "p_neutral",
                                        "sentiment", "sentiment_score", "model_version", "error"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_the_scored_file_reads_back_with_every_row(tmp_path, runner, fmt):
    result = run_batch(runner, LIMITS, pasted="one\n=HYPERLINK(\"x\")\nthree", upload=None)
    path = write_scored(result.table, fmt, tmp_path)
    back = read_table(path)
    assert len(back) == 3 and back["id"].astype(str).tolist() == ["1", "2", "3"]
    if fmt in ("csv", "tsv"):
        assert back["text"].tolist()[1] == "'=HYPERLINK(\"x\")"  # not a live formula
        assert float(back["sentiment_score"].iloc[0]) == pytest.approx(
            result.table["sentiment_score"].iloc[0], abs=1e-6)


def test_formula_escaping_leaves_numbers_and_plain_text():
    assert escape_formula("@SUM(A1)") == "'@SUM(A1)"
    assert escape_formula("-negative tone") == "'-negative tone"
    assert escape_formula("plain") == "plain" and escape_formula("-0.5") == "-0.5"


def test_charts_are_figures_with_every_label(runner):
    result = run_batch(runner, LIMITS, pasted="a\nb\nc", upload=None)
    bars = stance_chart(result.table, runner.stance_labels)
    labels = [t.get_text() for t in bars.axes[0].get_xticklabels()]
    assert labels == runner.stance_labels
    hist = sentiment_histogram(result.table)
    assert hist.axes[0].get_xlim() == (-1.0, 1.0)


LONG_TEXT = " ".join(
    f"Sentence {i} of the statement says the delegation will return to Geneva for talks "
    f"on the ceasefire, and the rebels accused the army of shelling village {i}." for i in
    range(8)
)  # about 8 x 30 tokens: several windows of the tiny model's 64 tokens


def test_a_long_text_gets_the_same_numbers_as_score_file(tmp_path, runner, tiny_model_dir):
    columns = ["p_pro_negotiation", "p_accusatory", "p_neutral", "sentiment_score"]
    rows = pd.DataFrame({"id": ["short", "long", "empty"],
                         "text": ["We are ready to talk.", LONG_TEXT, ""]})
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    demo = run_batch(runner, LIMITS_LONG, pasted=None, upload=path).table
    score_file(path, tmp_path / "scored.csv", model=tiny_model_dir, backend="torch",
               progress=False)
    cli = pd.read_csv(tmp_path / "scored.csv", keep_default_na=False, na_values=[""])
    np.testing.assert_allclose(demo[columns].to_numpy(dtype=float),
                               cli[columns].to_numpy(dtype=float), atol=1e-6)
    assert demo["stance"].tolist()[:2] == cli["stance"].tolist()[:2]
    assert demo["error"].tolist()[2] == cli["error"].tolist()[2] == "'text' is empty"
    # Windowed, not truncated: the row differs from the model reading its first 64 tokens.
    truncated, _ = calibrated(*runner.classifier.predict_logits([LONG_TEXT]),
                              runner.classifier.config)
    assert runner.classifier.tokenizer(LONG_TEXT, return_length=True)["length"][0] > 64 * 3
    assert np.abs(demo.loc[1, columns[:3]].to_numpy(dtype=float) - truncated[0]).max() > 1e-4


LIMITS_LONG = BatchLimits(max_rows=50, max_bytes=200_000)


def test_chunks_hold_the_model_lock_for_a_bounded_amount_of_text():
    short = chunks(list(range(100)), [10] * 100)
    assert [len(c) for c in short] == [CHUNK_ROWS, 100 - CHUNK_ROWS]
    sizes = [100, CHUNK_CHARS, 100, 100]  # a long row makes a chunk of its own
    assert chunks([0, 1, 2, 3], sizes) == [[0], [1], [2, 3]]
    assert chunks([1, 3], sizes) == [[1], [3]] and chunks([], []) == []


# --- the download is detente score's output -------------------------------------------------

MIXED_JSONL = [
    {"id": "a", "text": "We are ready to talk.", "n": 1, "meta": {"k": [1]}, "stance": "x"},
    {"id": 7, "text": 42, "n": 2.5, "meta": [2], "flag": True},
    {"text": None, "n": None, "flag": False},
    {"id": "d", "note": "=HYPERLINK(\"x\")", "text": "They shelled the port."},
]


def typed_parquet(path):
    table = pa.table({
        "text": ["Talks now.", None, "=1+1 they lied"], "n": pa.array([1, None, 3], pa.int32()),
        "score": [0.5, 1.5, None], "ok": [True, None, False],
        "when": pa.array([0, 86_400, None], pa.timestamp("s")),
        "sentiment": ["positive", "negative", None],  # gold labels: kept as input_sentiment
    })
    pq.write_table(table, path)


UPLOADS = {
    "csv": lambda p: p.write_text('text,stance,id,source\nTalks now.,neutral,r1,=wire\n'
                                  ',accusatory,r2,tv\n"Two\nlines",,r3,radio\n',
                                  encoding="utf-8"),
    "tsv": lambda p: p.write_text("text\tscore\n-5 said no\t0.5\nWe talk.\t\n", encoding="utf-8"),
    "jsonl": lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in MIXED_JSONL),
                                    encoding="utf-8"),
    "parquet": typed_parquet,
}


def column_types(path, fmt) -> list[tuple[str, str]]:
    """(name, type) of each column as a reader of that format sees the file."""
    if fmt == "parquet":
        schema = pq.read_schema(path)
    elif fmt == "jsonl":
        schema = scan_input(path, fmt, "text", check_text=False).schema
    else:  # CSV holds text: compare what type inference makes of each column
        schema = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(
            delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True)).schema
    return [(f.name, str(f.type)) for f in schema]


@pytest.mark.parametrize("fmt", list(UPLOADS))
def test_the_download_has_the_columns_and_types_of_score_file(tmp_path, runner,
                                                              tiny_model_dir, fmt):
    upload = tmp_path / f"in.{fmt}"
    UPLOADS[fmt](upload)
    result = run_batch(runner, LIMITS_LONG, pasted=None, upload=upload)
    demo = write_scored(result.output, result.fmt, tmp_path)  # what demo.py does
    cli = tmp_path / f"cli.{fmt}"
    score_file(upload, cli, model=tiny_model_dir, backend="torch", progress=False)
    assert demo.suffix == cli.suffix
    assert column_types(demo, fmt) == column_types(cli, fmt)
    assert result.output.schema.equals(pq.read_schema(  # the table behind the download too
        score_parquet(upload, tmp_path, tiny_model_dir)), check_metadata=False)
    for column in ("id", "text", "error", "model_version"):
        if column in result.output.column_names:
            assert read_column(demo, fmt, column) == read_column(cli, fmt, column), column


def score_parquet(upload, folder, model):
    out = folder / "cli-typed.parquet"
    score_file(upload, out, model=model, backend="torch", progress=False)
    return out


def read_column(path, fmt, name) -> list:
    if fmt == "parquet":
        return pq.read_table(path).column(name).to_pylist()
    info = scan_input(path, fmt, "text", check_text=False)
    return [v for chunk in read_chunks(info, 100) for v in chunk.table.column(name).to_pylist()]
