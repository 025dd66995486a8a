from __future__ import annotations

import json

import pytest

from model import Classifier
from model.errors import DataError
from tests.conftest import write_jsonl
from training.arguments import TrainArguments
from training.evaluation import EvaluateArguments, evaluate
from training.retrain import RetrainArguments, retrain
from training.trainer import train


@pytest.fixture
def trained_tiny(tmp_path_factory, tiny_encoder_dir, corpus_file):
    out = tmp_path_factory.mktemp("trained") / "model"
    train(TrainArguments(data=str(corpus_file), base_model=str(tiny_encoder_dir), output=str(out),
                         epochs=2, batch_size=8, learning_rate=1e-3, max_seq_length=48))
    return out


def test_training_on_a_corpus_reports_test_split_and_baselines(trained_tiny):
    summary = json.loads((trained_tiny / "training_summary.json").read_text())
    assert summary["rows"] == {"train": 9, "validation": 9, "test": 9}
    by_source = summary["by_source"]
    assert set(by_source) == {"validation", "test"}
    (test_scores,) = by_source["test"].values()  # one file, so one source: the file's name
    assert test_scores["rows"] == 9
    assert set(test_scores["baselines"]) == {"majority", "tfidf_logreg", "vader"}
    card = (trained_tiny / "README.md").read_text()
    assert "TF-IDF+LR stance" in card and "| test | stance |" in card


def test_evaluate_writes_metrics_report_and_plots(trained_tiny, corpus_file, tmp_path):
    report = tmp_path / "report"
    metrics = evaluate(EvaluateArguments(model=str(trained_tiny), data=str(corpus_file),
                                         report=str(report), train_data=str(corpus_file)))
    assert metrics["rows"] == 9
    assert set(metrics["stance"]["per_class"]) == {"pro_negotiation", "accusatory", "neutral"}
    assert 0.0 <= metrics["stance"]["macro_f1"] <= 1.0
    assert "spearman" in metrics["sentiment"]
    assert metrics["baselines"]["majority"]["stance"]["accuracy"] == pytest.approx(3 / 9)
    for name in ("metrics.json", "report.md", "confusion_stance.png", "reliability_sentiment.png"):
        assert (report / name).is_file(), name
    assert (report / "confusion_stance.png").read_bytes()[:4] == b"\x89PNG"
    text = (report / "report.md").read_text()
    assert "most confident errors" in text and "![confusion_stance.png]" in text


def test_retrain_adds_a_label_and_reports_before_after(trained_tiny, corpus_file, tmp_path):
    new_rows = [
        {"text": f"We will discuss the proposal {i} at the next round.", "stance": "procedural",
         "sentiment": "neutral"} for i in range(10)
    ] + [{"text": "They burned the village.", "stance": "accusatory", "sentiment": "negative"}]
    data = write_jsonl(tmp_path / "new.jsonl", new_rows)
    out = tmp_path / "retrained"
    logs: list[str] = []
    summary = retrain(RetrainArguments(
        from_model=str(trained_tiny), data=str(data), output=str(out), replay_data=str(corpus_file),
        epochs=1, learning_rate=1e-3, batch_size=8), log=logs.append)
    assert summary["label_sets"]["stance"] == [
        "pro_negotiation", "accusatory", "neutral", "procedural"]
    assert any("added ['procedural']" in line for line in logs)
    new = Classifier.load(out)
    assert set(new.predict(["hello"])[0].stance_probs) == {
        "pro_negotiation", "accusatory", "neutral", "procedural"}
    assert set(summary["original_test"]) == {"before", "after"}
    assert summary["rows"]["new_holdout"] > 0
    # `--backend auto` for the new model was chosen on the validation split, for its weights
    from model.backends import resolve_backend
    from model.backends.cache import read_selection
    from model.persistence import weights_hash

    selection = read_selection(out, weights_hash(out))
    assert selection is not None and selection["data"]["statements"] == 9
    assert summary["backend_selection"]["backend"] == selection["backend"]
    assert resolve_backend(out, "auto").name == selection["backend"]
    # the source model is untouched
    assert Classifier.load(trained_tiny).stance_labels == ["pro_negotiation", "accusatory",
                                                          "neutral"]


def test_retrain_refuses_to_overwrite_and_rejects_bad_rows(trained_tiny, corpus_file, tmp_path):
    data = write_jsonl(tmp_path / "new.jsonl", [{"text": "", "stance": "neutral"}])
    with pytest.raises(FileExistsError, match="never overwrites"):
        retrain(RetrainArguments(from_model=str(trained_tiny), data=str(data)))
    with pytest.raises(DataError, match="empty or whitespace-only text"):
        retrain(RetrainArguments(from_model=str(trained_tiny), data=str(data),
                                 output=str(tmp_path / "o"), replay_data=str(corpus_file)))
