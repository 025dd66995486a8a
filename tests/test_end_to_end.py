"""Slow end-to-end checks with the real default model (trained on first use).

The examples are the ones the project's label definitions (LABELS.md) give for each label:
a default model that gets the contract's own examples wrong is not fit to ship.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CONTRACT_EXAMPLES = [
    ("Our door to talks remains open to all sides.", "pro_negotiation"),
    ("The UN chief urged both sides to return to the negotiating table.", "pro_negotiation"),
    ("The regime invaded its neighbour and is murdering civilians.", "accusatory"),
    ("It is not us who walked away from the talks, it is them.", "accusatory"),
    ("Two rockets struck the port district overnight.", "neutral"),
    ("We are defending the interests of our citizens.", "neutral"),
]


def test_default_model_labels_the_contract_examples(default_model_dir):
    from model import Classifier

    clf = Classifier.load(default_model_dir)
    predictions = clf.predict([text for text, _ in CONTRACT_EXAMPLES])
    got = [(text, p.stance) for (text, _), p in zip(CONTRACT_EXAMPLES, predictions)]
    assert got == CONTRACT_EXAMPLES


def test_default_model_sentiment_score_orders_tone(default_model_dir):
    from model import Classifier

    clf = Classifier.load(default_model_dir)
    hopeful, grim = clf.predict([
        "We warmly welcome the agreement and thank everyone who made peace possible.",
        "Dozens of children were killed when the shells hit the crowded market.",
    ])
    assert hopeful.sentiment == "positive" and grim.sentiment == "negative"
    assert hopeful.sentiment_score > 0.3 > -0.3 > grim.sentiment_score


def test_default_model_card_leads_with_real_statements(default_model_dir):
    card = (default_model_dir / "README.md").read_text()
    summary = json.loads((default_model_dir / "training_summary.json").read_text())
    assert summary["rows"]["test"] > 500 and summary["rows"]["test_unseen"] > 300
    assert summary["selection_sources"] == ["ungdc", "wh_briefings", "wikinews"]
    real = card.index("## Results on real statements")
    assert real < card.index("## Results on other sources")
    for row in ("| test | all real sources |", "| test_unseen | ungdc |", "| test | wikinews |"):
        assert real < card.index(row), row
    assert "| test | statements |" in card and "TF-IDF+LR stance" in card
    rated = summary["by_source"]["test"]["vader_nyt"]["rated"]
    assert rated["n"] > 1000 and rated["model_spearman"] is not None


def test_cli_predict_uses_the_default_model(default_model_dir):
    detente = [sys.executable, "-m", "serve.cli"]
    result = subprocess.run(
        [*detente, "predict", "--json", "The government declared a unilateral ceasefire."],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stance"] == "pro_negotiation"
