"""The launched demo through gradio_client: every named endpoint, limits and corrections."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from training.data import load_labelled
from training.tables import read_table
from training.validation import validate

STANCES = {"pro_negotiation", "accusatory", "neutral"}


def test_every_action_has_a_named_endpoint(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/predict", "/explain", "/batch", "/correct"} <= set(endpoints)


def test_predict_returns_the_stance_probabilities_and_sentiment(client, tiny_classifier):
    text = "We are ready to talk, but the other side keeps stalling."
    stance, sentiment, score, note, raw = client.predict(text, api_name="/predict")
    assert stance["label"] in STANCES
    assert {c["label"] for c in stance["confidences"]} == STANCES
    assert sum(c["confidence"] for c in stance["confidences"]) == pytest.approx(1.0, abs=1e-4)
    assert sentiment["label"] in {"negative", "neutral", "positive"}
    assert -1.0 <= score <= 1.0 and score == pytest.approx(raw["sentiment_score"], abs=1e-3)
    assert raw["model_version"] == tiny_classifier.model_version
    assert raw["stance"] == stance["label"] == tiny_classifier.predict(text)[0].stance
    assert "calibrated" in note


def test_explain_highlights_the_statement(client):
    text = "They shelled the port, and we still call for talks."
    highlights, reading = client.predict(text, api_name="/explain")
    assert "".join(h["token"] for h in highlights) == text
    scored = [h for h in highlights if h["class_or_confidence"] is not None]
    assert [h["token"] for h in scored][:3] == ["They", "shelled", "the"]
    assert all(-1.0 <= h["class_or_confidence"] <= 1.0 for h in scored)
    assert "Word occlusion" in reading


@pytest.mark.parametrize(("text", "message"), [
    ("x" * 2001, "at most 2,000"),
    ("   ", "Type or paste a statement"),
])
def test_bad_statements_get_a_message(client, text, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(text, api_name="/predict")


def test_batch_of_pasted_lines(client):
    summary, table, stance_plot, sentiment_plot, scored = client.predict(
        "Talks start today.\n\nThey bombed the bridge.\nThe meeting is at noon.\n",
        None, "text", "id", api_name="/batch")
    assert "Scored **3** of 3 statements" in summary
    assert [row[0] for row in table["data"]] == ["1", "2", "3"]
    assert stance_plot["type"] == sentiment_plot["type"] == "matplotlib"
    assert len(read_table(scored)) == 3


def test_batch_upload_keeps_bad_rows_and_returns_the_same_format(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "statements.csv"
    path.write_text("id,text,source\nr1,We welcome the truce.,wire\nr2,,wire\n"
                    "r3,The rebels shelled the school.,tv\n", encoding="utf-8")
    summary, table, _, _, scored = client.predict(
        "ignored when a file is given", handle_file(str(path)), "text", "id",
        api_name="/batch")
    assert "Scored **2** of 3" in summary and "1 row(s) could not be scored" in summary
    headers = table["headers"]
    rows = {row[0]: dict(zip(headers, row)) for row in table["data"]}
    assert rows["r2"]["error"] == "'text' is empty" and rows["r1"]["error"] == ""
    assert scored.endswith(".csv")
    back = read_table(scored)
    assert back["id"].tolist() == ["r1", "r2", "r3"] and back["source"].tolist()[0] == "wire"
    assert set(back["stance"].iloc[[0, 2]]) <= STANCES and back["stance"].iloc[1] == ""


def test_batch_jsonl_upload_gives_jsonl(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"text": "Peace talks resumed."}) + "\n", encoding="utf-8")
    *_, scored = client.predict(None, handle_file(str(path)), "text", "id", api_name="/batch")
    assert scored.endswith(".jsonl")
    # detente score's id for a file without one: the row number, a JSON number
    assert json.loads(open(scored, encoding="utf-8").readline())["id"] == 1


def test_batch_limits_are_explained(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="at most 5,000"):
        client.predict("\n".join(f"s{i}" for i in range(5001)), None, "text", "id",
                       api_name="/batch")
    with pytest.raises(AppError, match="paste at least one statement"):
        client.predict("  \n", None, "text", "id", api_name="/batch")


def test_uploads_over_the_size_limit_are_refused(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "big.csv"
    path.write_text("text\n" + "A long statement about the talks in Geneva.\n" * 130_000)
    assert path.stat().st_size > 5 * 2**20
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(None, handle_file(str(path)), "text", "id", api_name="/batch")


def test_a_correction_is_written_and_retrain_can_read_it(client, corrections_path):
    text = "There is nothing to discuss with people who bomb our schools."
    message, waiting = client.predict(text, "accusatory", "negative", api_name="/correct")
    assert message.startswith("Saved: stance **accusatory**")
    message, waiting = client.predict("The talks went well.", None, "positive",
                                      api_name="/correct")
    assert "**2** corrections waiting" in waiting and str(corrections_path) in waiting
    frame = load_labelled(corrections_path)
    report = validate(frame, str(corrections_path))
    assert report.ok, report.render()
    first = frame.iloc[0]
    assert (first["text"], first["stance"], first["sentiment"]) == (text, "accusatory",
                                                                   "negative")
    assert first["model_stance"] in STANCES and first["source"] == "demo"


def test_a_correction_without_labels_is_refused(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="choose the right stance"):
        client.predict("A statement.", None, None, api_name="/correct")


def test_concurrent_requests_all_succeed(client):
    texts = [f"Statement number {i} about the ceasefire talks." for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: client.predict(t, api_name="/predict"), texts))
    assert [r[4]["text"] for r in results] == texts


def test_an_unwritable_corrections_file_gives_a_message(tiny_classifier, tmp_path):
    import gradio as gr

    from serve.corrections import CorrectionStore
    from serve.demo_handlers import DemoHandlers
    from serve.demo_runner import ModelRunner

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    runner = ModelRunner(tiny_classifier)
    store = CorrectionStore(blocker / "corrections.jsonl", stance_labels=runner.stance_labels,
                            sentiment_labels=runner.sentiment_labels)
    with pytest.raises(gr.Error, match="cannot write"):
        DemoHandlers(runner, store).correct("A statement.", "neutral", None)
