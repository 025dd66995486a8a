"""Batch scoring (``score_file`` / ``detente score``) on real files with the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.classifier import Classifier
from model.errors import DataError
from model.long_text import plan_windows, split_text, token_budget
from model.probabilities import calibrated
from serve.scored_rows import score_texts
from serve.scoring import score_file
from training.tables import escape_formulas, read_chunks, scan_input

STATEMENTS = [
    "We are ready to sit down with them tomorrow and talk about a ceasefire.",
    "The junta shelled the villages again and murdered dozens of civilians.",
    "Two rockets struck the port district overnight.",
    "The foreign minister called on both sides to return to talks in Geneva.",
    "It is not us who walked away from the talks, it is them.",
    "Harvest exports rose by ten percent this year, the ministry said.",
]
SCORED = ["stance", "p_pro_negotiation", "p_accusatory", "p_neutral", "sentiment",
          "sentiment_score", "model_version", "error"]
FORMATS = ["csv", "tsv", "jsonl", "parquet"]


@pytest.fixture(scope="module")
def torch_backend(tiny_model_dir):
    return Classifier.load(tiny_model_dir)


def frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame({
        "doc": [f"d{i:03d}" for i in range(n)],
        "text": [f"{STATEMENTS[i % len(STATEMENTS)]} (item {i})" for i in range(n)],
        "source": ["wire" if i % 2 else "tv" for i in range(n)],
    })


def write(df: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        df.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for row in df.to_dict(orient="records"):
                handle.write(json.dumps(row) + "\n")
    else:
        df.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    fmt = path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype={"doc": str},
                           keep_default_na=False, na_values=[""])
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype={"doc": str})
    return pd.read_parquet(path)


def score(tmp_path, src: Path, out_name: str, model, **kwargs):
    kwargs.setdefault("backend", "torch")
    kwargs.setdefault("progress", False)
    out = tmp_path / out_name
    return score_file(src, out, model=model, **kwargs), out


@pytest.mark.parametrize("in_fmt", FORMATS)
def test_every_format_in_and_out_keeps_rows_order_and_columns(tmp_path, tiny_model_dir, in_fmt):
    df = frame(23)
    src = write(df, tmp_path / f"in.{in_fmt}")
    expected = None
    for out_fmt in FORMATS:
        result, out = score(tmp_path, src, f"out.{out_fmt}", tiny_model_dir, chunk_size=5)
        got = read(out)
        assert result.rows == len(got) == 23
        assert list(got.columns) == ["id", "doc", "text", "source", *SCORED]
        assert got["id"].tolist() == list(range(1, 24))  # a 1-based row number is added
        assert got["doc"].tolist() == df["doc"].tolist()
        assert got["text"].tolist() == df["text"].tolist()
        assert got["error"].isna().all()
        assert set(got["stance"]) <= {"pro_negotiation", "accusatory", "neutral"}
        probs = got[["p_pro_negotiation", "p_accusatory", "p_neutral"]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        if expected is None:
            expected = got
        else:  # the same numbers whatever the output format
            np.testing.assert_allclose(probs, expected[["p_pro_negotiation", "p_accusatory",
                                                        "p_neutral"]].to_numpy(), atol=1e-7)
            assert got["stance"].tolist() == expected["stance"].tolist()


def test_results_match_the_classifier_and_do_not_depend_on_chunking(tmp_path, tiny_model_dir):
    from model import Classifier

    df = frame(40)
    src = write(df, tmp_path / "in.parquet")
    _, small = score(tmp_path, src, "small.parquet", tiny_model_dir, chunk_size=3)
    _, large = score(tmp_path, src, "large.parquet", tiny_model_dir, chunk_size=1000)
    a, b = read(small), read(large)
    assert a["stance"].tolist() == b["stance"].tolist()
    np.testing.assert_allclose(a["p_neutral"], b["p_neutral"], atol=1e-6)
    stance, _ = Classifier.load(tiny_model_dir).predict_proba(df["text"].tolist())
    np.testing.assert_allclose(a[["p_pro_negotiation", "p_accusatory", "p_neutral"]],
                               stance, atol=1e-6)


def test_user_id_column_is_kept_as_it_is(tmp_path, tiny_model_dir):
    df = frame(8).rename(columns={"doc": "id"})
    src = write(df, tmp_path / "in.csv")
    _, out = score(tmp_path, src, "out.csv", tiny_model_dir)
    got = pd.read_csv(out, dtype=str)
    assert list(got.columns)[:3] == ["id", "text", "source"]
    assert got["id"].tolist() == df["id"].tolist()

    src = write(frame(8), tmp_path / "in2.jsonl")
    _, out = score(tmp_path, src, "out2.jsonl", tiny_model_dir, id_column="doc")
    got = read(out)
    assert "id" not in got.columns and got["doc"].tolist() == frame(8)["doc"].tolist()
    with pytest.raises(DataError, match="no id column 'key'"):
        score(tmp_path, src, "out3.jsonl", tiny_model_dir, id_column="key")


def test_input_columns_named_like_outputs_are_kept_renamed(tmp_path, tiny_model_dir):
    df = frame(4).assign(stance="accusatory", error="none")
    src = write(df, tmp_path / "labelled.jsonl")
    _, out = score(tmp_path, src, "out.jsonl", tiny_model_dir)
    got = read(out)
    assert got["input_stance"].tolist() == ["accusatory"] * 4
    assert got["input_error"].tolist() == ["none"] * 4
    assert got["error"].isna().all()


def test_bad_rows_keep_their_place_with_an_error(tmp_path, tiny_model_dir):
    rows = [
        {"text": STATEMENTS[0], "n": 1},
        {"n": 2},  # no text key
        {"text": None, "n": 3},
        {"text": "", "n": 4},
        {"text": "   \n ", "n": 5},
        {"text": 42, "n": 6},
        {"text": {"quote": "nested"}, "n": 7},
        {"text": "x" * 100_001, "n": 8},
        {"text": STATEMENTS[1], "n": 9},
    ]
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    src.write_text(src.read_text() + '{"text": NaN, "n": 10}\n')
    for out_fmt in ("jsonl", "parquet", "csv"):
        result, out = score(tmp_path, src, f"out.{out_fmt}", tiny_model_dir, chunk_size=4)
        got = read(out)
        assert got["n"].tolist() == list(range(1, 11)) and result.rows == 10
        assert result.errors == 8
        errors = got["error"].tolist()
        assert pd.isna(errors[0]) and pd.isna(errors[8])
        assert "no 'text' field" in errors[1]
        assert "missing (null)" in errors[2]
        assert "is empty" in errors[3]
        assert "blank" in errors[4]
        assert "int, not text" in errors[5]
        assert "dict, not text" in errors[6]
        assert "too long: 100,001 characters" in errors[7]
        assert "missing (NaN)" in errors[9]
        bad = got.iloc[[1, 2, 3, 4, 5, 6, 7, 9]]
        assert bad["stance"].isna().all() and bad["p_neutral"].isna().all()
        assert (got["model_version"] == result.model_version).all()


def test_csv_and_parquet_missing_cells_are_errors(tmp_path, tiny_model_dir):
    src = tmp_path / "in.csv"
    src.write_text('text,n\n"ok, fine",1\n,2\n"  ",3\n"multi\nline",4\n', encoding="utf-8")
    _, out = score(tmp_path, src, "out.parquet", tiny_model_dir)
    got = pd.read_parquet(out)
    assert got["text"].tolist() == ["ok, fine", "", "  ", "multi\nline"]
    assert got["error"].notna().tolist() == [False, True, True, False]

    table = pa.table({"text": pa.array(["fine", None, "also fine"])})
    pq.write_table(table, tmp_path / "in.parquet")
    _, out = score(tmp_path, tmp_path / "in.parquet", "out2.parquet", tiny_model_dir)
    assert pd.read_parquet(out)["error"].notna().tolist() == [False, True, False]


def test_csv_output_escapes_formulas_other_formats_do_not(tmp_path, tiny_model_dir):
    texts = ["=HYPERLINK(\"http://x\")", "+1 555 0100 call now", "-rockets hit", "@SUM(A1)",
             "plain statement", "\tTabbed"]
    df = pd.DataFrame({"text": texts, "score": ["-5", "+1.5e3", "=2+3", "x", "-0.25", "7"]})
    src = write(df, tmp_path / "in.jsonl")
    for fmt in ("csv", "tsv"):
        _, out = score(tmp_path, src, f"out.{fmt}", tiny_model_dir)
        got = pd.read_csv(out, sep="\t" if fmt == "tsv" else ",", dtype=str,
                          keep_default_na=False)
        assert got["text"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+1 555 0100 call now",
                                        "'-rockets hit", "'@SUM(A1)", "plain statement",
                                        "'\tTabbed"]
        assert got["score"].tolist() == ["-5", "+1.5e3", "'=2+3", "x", "-0.25", "7"]
        assert all(not v.startswith("'") for v in got["sentiment_score"])  # numbers untouched
    _, out = score(tmp_path, src, "out.jsonl", tiny_model_dir)
    assert read(out)["text"].tolist() == texts
    assert escape_formulas(pa.array(["ok", None])).to_pylist() == ["ok", None]


def test_jsonl_types_are_kept(tmp_path, tiny_model_dir):
    rows = [{"text": STATEMENTS[0], "meta": {"a": [1, 2]}, "n": 1, "x": 0.5, "ok": True,
             "mixed": "a"},
            {"text": STATEMENTS[1], "meta": None, "n": 2, "x": 1, "ok": False, "mixed": 3}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _, out = score(tmp_path, src, "out.jsonl", tiny_model_dir)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got[0]["meta"] == {"a": [1, 2]} and got[1]["meta"] is None
    assert [g["n"] for g in got] == [1, 2] and [g["x"] for g in got] == [0.5, 1.0]
    assert [g["ok"] for g in got] == [True, False] and [g["mixed"] for g in got] == ["a", "3"]
    _, out = score(tmp_path, src, "out.parquet", tiny_model_dir)
    table = pq.read_table(out)
    assert table.schema.field("n").type == pa.int64()
    assert json.loads(table.column("meta")[0].as_py()) == {"a": [1, 2]}


def test_long_text_is_windowed_and_length_weighted(tmp_path, tiny_model_dir, torch_backend):
    tokenizer, max_len = torch_backend.tokenizer, torch_backend.config.max_seq_length
    long_text = " ".join(f"{s} Then in round {i} they met again." for i, s in
                         enumerate(STATEMENTS * 3))
    budget = token_budget(tokenizer, max_len)
    windows = split_text(long_text, tokenizer, budget)
    assert len(windows) > 2
    for window, count in windows:  # every window fits, special tokens included
        assert len(tokenizer(window)["input_ids"]) <= max_len
        assert count == len(tokenizer(window, add_special_tokens=False)["input_ids"])
    assert " ".join(w for w, _ in windows).split() == long_text.split()  # nothing lost

    scores = score_texts([STATEMENTS[0], long_text], torch_backend)
    assert scores.windowed_rows == 1
    win_stance, _ = torch_backend.predict_proba([w for w, _ in windows])
    weights = np.array([c for _, c in windows], dtype=float)
    expected = (win_stance * weights[:, None]).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(scores.stance[1], expected, atol=1e-6)
    truncated, _ = calibrated(*torch_backend.predict_logits([long_text]), torch_backend.config)
    assert not np.allclose(scores.stance[1], truncated[0], atol=1e-6)

    src = write(pd.DataFrame({"text": [STATEMENTS[0], long_text]}), tmp_path / "long.csv")
    result, out = score(tmp_path, src, "out.parquet", tiny_model_dir)
    got = pd.read_parquet(out)
    assert result.windowed_rows == 1 and got["error"].isna().all()
    np.testing.assert_allclose(got.loc[1, ["p_pro_negotiation", "p_accusatory", "p_neutral"]]
                               .to_numpy(float), expected, atol=1e-6)


def test_one_unsplittable_word_is_cut_to_fit(torch_backend):
    tokenizer, max_len = torch_backend.tokenizer, torch_backend.config.max_seq_length
    text = "Look: " + "-".join(f"w{i}" for i in range(200))
    plan = plan_windows([text], tokenizer, max_len)
    assert len(plan.windows) > 1 and set(plan.owner) == {0}
    assert all(len(tokenizer(w)["input_ids"]) <= max_len for w in plan.windows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_reading_from_a_row_gives_the_same_rows(tmp_path, fmt):
    df = frame(57)
    src = write(df, tmp_path / f"in.{fmt}")
    if fmt == "parquet":  # several row groups, so resuming skips whole groups
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), src, row_group_size=10)
    info = scan_input(src, fmt, "text")
    assert info.num_rows == 57
    chunks = list(read_chunks(info, 8, start_row=24))
    assert [c.first_row for c in chunks] == [24, 32, 40, 48, 56]
    texts = [t for c in chunks for t in c.texts]
    assert texts == df["text"].tolist()[24:]


def test_unreadable_inputs_fail_before_scoring_with_the_reason(tmp_path, tiny_model_dir):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("text,n\nfine,1\nbad,2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\) has 3 field\(s\) where the header "
                       r"has 2: 'bad,2,3'"):
        score(tmp_path, bad_csv, "o.csv", tiny_model_dir)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        score(tmp_path, bad_json, "o.csv", tiny_model_dir)
    with pytest.raises(DataError, match="no column 'body'"):
        score(tmp_path, write(frame(3), tmp_path / "ok.csv"), "o.csv", tiny_model_dir,
              text_column="body")
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), numbers)
    with pytest.raises(DataError, match="holds int64, not text"):
        score(tmp_path, numbers, "o.csv", tiny_model_dir)
    with pytest.raises(DataError, match="extension '.xlsx'"):
        score(tmp_path, tmp_path / "ok.csv", "o.xlsx", tiny_model_dir)
    assert not list(tmp_path.glob("o.*"))


def test_cli_scores_a_file_and_reports_bad_input_in_one_line(tmp_path, tiny_model_dir):
    src = write(frame(6), tmp_path / "in.csv")
    run = [sys.executable, "-m", "serve.cli", "score"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # quicker on a busy machine
    done = subprocess.run(
        run + [str(src), "-o", str(tmp_path / "out.jsonl"), "--model", str(tiny_model_dir),
               "--backend", "torch", "--chunk-size", "4"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "scored 6 rows" in done.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 6
    failed = subprocess.run(
        run + [str(tmp_path / "missing.csv"), "--model", str(tiny_model_dir)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip() == f"error: input file {tmp_path / 'missing.csv'} does not exist"
    assert "Traceback" not in failed.stderr



def test_score_file_is_exposed_by_the_serve_package():
    import serve

    assert serve.score_file is score_file
