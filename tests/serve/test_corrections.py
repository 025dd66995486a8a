"""The corrections file: valid training data as it is, under threads and processes."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from model.labels import SENTIMENT_LABELS, STANCE_LABELS
from serve.corrections import CorrectionError, CorrectionStore
from training.data import load_labelled
from training.validation import validate

MODEL = {"model_version": "abc123", "model_stance": "neutral", "model_sentiment": "neutral"}


def make_store(path) -> CorrectionStore:
    return CorrectionStore(path, stance_labels=STANCE_LABELS, sentiment_labels=SENTIMENT_LABELS)


def assert_valid_training_file(path, rows: int) -> None:
    """What `detente retrain --data` does first: load and validate the file as it is."""
    frame = load_labelled(path)
    report = validate(frame, str(path))
    assert report.ok, report.render()
    assert len(frame) == rows


def test_a_correction_is_a_valid_labelled_row(tmp_path):
    path = tmp_path / "corrections.jsonl"
    saved = make_store(path).add("They shelled the market again.", "accusatory", "negative",
                                 **MODEL)
    assert not saved.replaced and saved.count == 1
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["text"] == "They shelled the market again."
    assert (record["stance"], record["sentiment"]) == ("accusatory", "negative")
    assert record["source"] == "demo" and record["model_version"] == "abc123"
    assert (record["model_stance"], record["model_sentiment"]) == ("neutral", "neutral")
    assert record["id"].startswith("demo-") and record["time"].endswith("+00:00")
    assert_valid_training_file(path, 1)


def test_one_head_may_stay_unlabelled(tmp_path):
    path = tmp_path / "c.jsonl"
    make_store(path).add("We thank the mediators.", None, "positive", **MODEL)
    frame = load_labelled(path)
    assert frame["stance"].iloc[0] is None and frame["sentiment"].iloc[0] == "positive"
    assert_valid_training_file(path, 1)


def test_correcting_the_same_statement_again_replaces_it(tmp_path):
    path = tmp_path / "c.jsonl"
    store = make_store(path)
    store.add("Talks resume on Monday.", "neutral", "neutral", **MODEL)
    store.add("Something else entirely.", "neutral", "neutral", **MODEL)
    saved = store.add("  talks resume on monday ", "pro_negotiation", "positive", **MODEL)
    assert saved.replaced and saved.count == 2
    assert [r["stance"] for r in store.records()] == ["neutral", "pro_negotiation"]
    assert_valid_training_file(path, 2)


@pytest.mark.parametrize(
    ("text", "stance", "sentiment", "message"),
    [
        ("", "neutral", "neutral", "no statement"),
        ("?!", "neutral", "neutral", "no words"),
        ("A statement.", None, None, "choose"),
        ("A statement.", "hostile", None, "unknown stance label 'hostile'"),
        ("A statement.", None, "angry", "unknown sentiment label 'angry'"),
    ],
)
def test_bad_corrections_are_refused_with_the_reason(tmp_path, text, stance, sentiment, message):
    path = tmp_path / "c.jsonl"
    with pytest.raises(CorrectionError, match=message):
        make_store(path).add(text, stance, sentiment, **MODEL)
    assert not path.exists()


def test_a_file_without_final_newline_stays_one_record_per_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "Hand-written row.", "stance": "neutral",
                                "sentiment": "neutral"}), encoding="utf-8")
    make_store(path).add("A new row.", "accusatory", "negative", **MODEL)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert_valid_training_file(path, 2)


def test_a_broken_file_is_reported_not_overwritten(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "ok", "stance": "neutral"}\n{broken\n', encoding="utf-8")
    store = make_store(path)
    with pytest.raises(CorrectionError, match="line 2 is not valid JSON"):
        store.add("A new row.", "neutral", None, **MODEL)
    assert path.read_text(encoding="utf-8").endswith("{broken\n")


def test_concurrent_writers_never_break_a_line(tmp_path):
    """8 threads write 25 corrections each; 4 of every thread's texts collide with others'."""
    path = tmp_path / "c.jsonl"
    store = make_store(path)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(worker: int) -> None:
        start.wait()
        try:
            for i in range(25):
                text = (f"Shared statement number {i}." if i < 4
                        else f"Worker {worker} says thing {i}, at length. " * 3)
                store.add(text, STANCE_LABELS[i % 3], SENTIMENT_LABELS[worker % 3], **MODEL)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line is one whole JSON object
    assert len(records) == 8 * 21 + 4
    assert store.count() == len(records)
    assert_valid_training_file(path, len(records))


def _process_writer(path: str, worker: int) -> None:
    store = make_store(path)
    for i in range(15):
        store.add(f"Process {worker} statement {i}.", "neutral", "neutral", **MODEL)


def test_concurrent_processes_share_the_file(tmp_path):
    path = tmp_path / "c.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_process_writer, args=(str(path), w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert_valid_training_file(path, 45)
