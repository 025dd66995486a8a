from __future__ import annotations

import json

import pytest

from model import Classifier
from model.errors import DataError
from training.arguments import TrainArguments
from training.trainer import train


def tiny_args(tmp_path, data, encoder, **kw) -> TrainArguments:
    return TrainArguments(
        data=str(data), base_model=str(encoder), output=str(tmp_path / "model"),
        epochs=kw.pop("epochs", 3), batch_size=8, learning_rate=1e-3, max_seq_length=48,
        **kw,
    )


def test_train_writes_a_loadable_model_with_card_and_calibration(
    tmp_path, labelled_file, tiny_encoder_dir
):
    result = train(tiny_args(tmp_path, labelled_file, tiny_encoder_dir))
    folder = result.output
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md",
                 "training_summary.json"):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "training_summary.json").read_text())
    assert summary["rows"]["train"] + summary["rows"]["validation"] == 36
    assert set(summary["calibration"]) == {"stance", "sentiment"}
    clf = Classifier.load(folder)
    assert clf.config.stance_temperature == pytest.approx(
        summary["calibration"]["stance"]["temperature"])
    assert "macro-F1" in (folder / "README.md").read_text()
    assert not (tmp_path / "model.checkpoints").exists()


def test_same_seed_gives_the_same_model(tmp_path, labelled_file, tiny_encoder_dir):
    a = train(tiny_args(tmp_path / "a", labelled_file, tiny_encoder_dir, epochs=1))
    b = train(tiny_args(tmp_path / "b", labelled_file, tiny_encoder_dir, epochs=1))
    pa = Classifier.load(a.output).predict_proba(["We are ready for talks."])[0]
    pb = Classifier.load(b.output).predict_proba(["We are ready for talks."])[0]
    assert (pa == pb).all()


def test_rows_with_only_one_head_labelled_train(tmp_path, labelled_rows, tiny_encoder_dir):
    from tests.conftest import write_jsonl

    for i, row in enumerate(labelled_rows):
        if i % 3 == 0:
            row["stance"] = None
        elif i % 3 == 1:
            row["sentiment"] = ""
    data = write_jsonl(tmp_path / "partial.jsonl", labelled_rows)
    result = train(tiny_args(tmp_path, data, tiny_encoder_dir, epochs=1))
    assert (result.output / "model.safetensors").is_file()


def test_refuses_to_overwrite_without_force(tmp_path, labelled_file, tiny_encoder_dir):
    train(tiny_args(tmp_path, labelled_file, tiny_encoder_dir, epochs=1))
    with pytest.raises(FileExistsError, match="--force"):
        train(tiny_args(tmp_path, labelled_file, tiny_encoder_dir, epochs=1))
    train(tiny_args(tmp_path, labelled_file, tiny_encoder_dir, epochs=1, force=True))


def test_bad_labels_are_reported_before_training(tmp_path, labelled_rows, tiny_encoder_dir):
    from tests.conftest import write_jsonl

    labelled_rows[4]["stance"] = "hostile"
    data = write_jsonl(tmp_path / "bad.jsonl", labelled_rows)
    with pytest.raises(DataError, match=r"unknown stance label\(s\) \['hostile'\].*rows 5"):
        train(tiny_args(tmp_path, data, tiny_encoder_dir))
    assert not (tmp_path / "model").exists()


def test_config_file_and_overrides(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 2\nlearning_rate: 0.001\n")
    args = TrainArguments.from_file(config, epochs=5)
    assert args.epochs == 5 and args.learning_rate == 0.001
    config.write_text("epoch: 2\n")
    with pytest.raises(ValueError, match="unknown argument"):
        TrainArguments.from_file(config)


def test_extra_sentiment_only_data_is_cleaned_and_mixed_in(
    tmp_path, labelled_file, tiny_encoder_dir
):
    from tests.conftest import write_jsonl

    extra = write_jsonl(tmp_path / "extra.jsonl", [
        {"text": "Markets rallied after the announcement.", "sentiment": "positive"},
        {"text": "Markets rallied after the announcement.", "sentiment": "positive"},
        {"text": "The senator lost his seat.", "sentiment": None},
        {"text": "Prices fell.", "sentiment": "negative"},
        {"text": "Prices fell!", "sentiment": "positive"},
        {"text": "The vote is on Tuesday.", "sentiment": "neutral", "split": "test"},
    ])
    result = train(tiny_args(tmp_path, labelled_file, tiny_encoder_dir, epochs=1,
                             extra_data=[str(extra)]))
    # 27 of the 36 labelled rows train (the rest validate) plus 2 clean extra rows
    assert result.metrics["rows"]["train"] == 36 - result.metrics["rows"]["validation"] + 2


def test_several_files_keep_their_splits_and_the_selection_sources_choose(
    tmp_path, corpus_file, tiny_encoder_dir
):
    """A written corpus plus a 'real' file with a held-out test_unseen split and a source
    column: each file keeps its split, only the chosen source's validation rows choose, the
    held-out split is measured but never trained on, and metrics come per source."""
    from tests.conftest import STATEMENTS, write_jsonl

    real = []
    for i, (text, stance, sentiment) in enumerate(STATEMENTS * 2):
        split = ("train", "validation", "test_unseen")[i % 3]
        real.append({"id": f"r-{i}", "text": f"Speaker {i} said: {text}", "stance": stance,
                     "sentiment": sentiment, "source": "speeches", "doc_id": f"doc-{i}",
                     "split": split})
    real_file = write_jsonl(tmp_path / "real.jsonl", real)
    rated = [{"text": f"The editorial {i} judged the plan {word}.", "sentiment": sentiment,
              "sentiment_shares": shares, "mean_rating": rating, "weight": 0.5,
              "split": "train" if i < 6 else "test"}
             for i, (word, sentiment, shares, rating) in enumerate([
                 ("a triumph", "positive", {"positive": 0.8, "neutral": 0.2}, 2.1),
                 ("a disaster", "negative", {"negative": 0.9, "neutral": 0.1}, -2.5),
                 ("routine", "neutral", {"neutral": 1.0}, 0.0)] * 3)]
    rated_file = write_jsonl(tmp_path / "rated.jsonl", rated)
    args = tiny_args(tmp_path, corpus_file, tiny_encoder_dir, epochs=1,
                     select_sources=["speeches"])
    args.data = [str(corpus_file), str(real_file), str(rated_file)]
    summary = train(args).metrics
    assert summary["rows"] == {"train": 9 + 6 + 6, "validation": 9 + 6, "test": 9 + 3,
                               "test_unseen": 6}
    assert summary["selection_sources"] == ["speeches"]
    assert summary["calibration"]["stance"]["n"] == 6  # the selection rows alone
    assert set(summary["by_source"]) == {"validation", "test", "test_unseen"}
    assert set(summary["by_source"]["test"]) == {"corpus", "rated"}
    assert summary["by_source"]["test_unseen"]["speeches"]["rows"] == 6
    rated_scores = summary["by_source"]["test"]["rated"]["rated"]
    assert rated_scores["n"] == 3 and -1.0 <= rated_scores["model_spearman"] <= 1.0


def test_selection_sources_must_exist_in_validation(tmp_path, corpus_file, tiny_encoder_dir):
    args = tiny_args(tmp_path, corpus_file, tiny_encoder_dir, epochs=1,
                     select_sources=["nowhere"])
    with pytest.raises(ValueError, match="no validation rows from the sources"):
        train(args)
