"""The About tab's texts: model card without its YAML header, metrics, missing files."""

from __future__ import annotations

import json

from serve.demo_about import metrics_markdown, model_details, read_model_card, read_summary

SUMMARY = {
    "rows": {"train": 2400, "validation": 300, "test": 320},
    "validation": {"stance": {"accuracy": 0.81, "macro_f1": 0.79}},
    "test": {"stance": {"accuracy": 0.78, "macro_f1": 0.76},
             "sentiment": {"accuracy": 0.73, "macro_f1": 0.7}},
    "calibration": {"stance": {"temperature": 1.4, "ece_before": 0.08, "ece_after": 0.03}},
}


def test_model_card_loses_its_front_matter(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Card\nText.\n")
    assert read_model_card(tmp_path) == "# Card\nText.\n"


def test_missing_card_and_metrics_are_said_in_words(tmp_path):
    assert "no model card" in read_model_card(tmp_path)
    assert read_summary(tmp_path) is None
    assert "No training metrics" in metrics_markdown(None)
    (tmp_path / "training_summary.json").write_text("{not json")
    assert read_summary(tmp_path) is None


def test_metrics_table_has_every_split_head_and_calibration(tmp_path):
    (tmp_path / "training_summary.json").write_text(json.dumps(SUMMARY))
    text = metrics_markdown(read_summary(tmp_path))
    assert "| validation | stance | 0.810 | 0.790 |" in text
    assert "| test | sentiment | 0.730 | 0.700 |" in text
    assert "| stance | 1.40 | 0.080 | 0.030 |" in text
    assert "train 2,400" in text


def test_model_details_name_the_version_and_window(tiny_classifier):
    text = model_details(tiny_classifier)
    assert tiny_classifier.model_version in text
    assert "Reads 64 tokens at a time" in text


def test_real_statements_lead_the_metrics_when_the_model_has_them():
    scores = {"rows": 40, "stance": {"macro_f1": 0.812}, "sentiment": {"macro_f1": 0.701},
              "baselines": {"tfidf_logreg": {"stance": {"macro_f1": 0.6}},
                            "vader": {"sentiment": {"macro_f1": 0.5}}}}
    summary = {**SUMMARY, "selection_sources": ["ungdc"],
               "by_source": {"test": {"ungdc": scores, "statements": scores}}}
    text = metrics_markdown(summary)
    assert text.index("Real statements") < text.index("| validation | stance |")
    assert "| test | ungdc | 40 | **0.812** | **0.701** | 0.600 | — | 0.500 |" in text
    assert "| test | statements |" not in text  # the written corpus is not real text
