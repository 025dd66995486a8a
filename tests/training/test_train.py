from __future__ import annotations

import json

import pytest

from model import Classifier
from training.arguments import TrainArguments
from training.data import DataError
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
