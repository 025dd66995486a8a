"""Word occlusion: faithful scores, one forward pass, bounded cost, honest about truncation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serve.explain import (
    explain,
    format_p,
    group_spans,
    occlude,
    summary_markdown,
    word_spans,
)

LABELS = ["pro_negotiation", "accusatory", "neutral"]


class KeywordModel:
    """A fake stance model: P(pro_negotiation) is high exactly when 'talks' is present."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            p = 0.8 if "talks" in text.split() else 0.2
            rows.append([p, (1 - p) / 2, (1 - p) / 2])
        return np.array(rows)


def test_word_spans_keep_inner_apostrophes_and_hyphens():
    text = "We don't want a cease-fire, not now."
    assert [text[s:e] for s, e in word_spans(text)] == [
        "We", "don't", "want", "a", "cease-fire", "not", "now"]


def test_occlude_removes_the_word_and_one_space():
    text = "ready for talks now"
    start = text.index("talks")
    assert occlude(text, (start, start + 5)) == "ready for now"
    assert occlude(text, (0, 5)) == " for talks now"


def test_the_decisive_word_gets_the_score_in_one_call():
    model = KeywordModel()
    text = "We are ready for talks tomorrow."
    ex = explain(text, model, LABELS)
    assert len(model.calls) == 1, "all variants must go in one forward pass"
    assert len(model.calls[0]) == 1 + len(word_spans(text))
    assert ex.label == "pro_negotiation" and ex.probability == pytest.approx(0.8)
    scores = {u.text: u.score for u in ex.units}
    assert scores["talks"] == pytest.approx(2 * math.log(4))  # logit(0.8) - logit(0.2)
    assert all(s == pytest.approx(0.0) for w, s in scores.items() if w != "talks")
    assert ex.top(1)[0].text == "talks" and ex.top(1)[0].probability_without == 0.2
    assert "*talks* (0.20)" in summary_markdown(ex)


def test_segments_cover_the_text_exactly_and_scale_into_unit_range():
    text = "  Talks? Yes: talks, now!  "
    ex = explain(text, KeywordModel(), LABELS)
    segments = ex.segments()
    assert "".join(piece for piece, _ in segments) == text
    values = [v for _, v in segments if v is not None]
    assert values and max(abs(v) for v in values) <= 1.0
    assert all(v is None for piece, v in segments if not piece.strip(" ?:,!"))


def test_long_statements_are_grouped_to_bound_the_batch():
    text = " ".join(f"w{i}" for i in range(200)) + " talks"
    model = KeywordModel()
    ex = explain(text, model, LABELS, max_units=48)
    assert len(model.calls[0]) <= 49
    assert ex.words_per_unit == 5
    assert "groups of 5" in summary_markdown(ex)


def test_group_spans_keeps_every_word_once():
    spans = [(i * 3, i * 3 + 2) for i in range(10)]
    groups, size = group_spans(spans, 4)
    assert size == 3 and groups == [(0, 8), (9, 17), (18, 26), (27, 29)]


def test_probabilities_near_certainty_keep_a_third_decimal():
    assert (format_p(0.5), format_p(0.994), format_p(0.012)) == ("0.50", "0.994", "0.012")


def test_a_statement_without_words_is_explained_as_such():
    ex = explain("?!", KeywordModel(), LABELS)
    assert ex.units == [] and ex.segments() == [("?!", None)]
    assert summary_markdown(ex) == "No words to explain."


def test_runner_explains_with_a_single_forward_pass(tiny_classifier, monkeypatch):
    from serve.demo_runner import ModelRunner

    runner = ModelRunner(tiny_classifier)
    calls = []
    original = tiny_classifier.model.forward

    def counting_forward(*args, **kwargs):
        calls.append(kwargs.get("input_ids", args[0] if args else None).shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_classifier.model, "forward", counting_forward)
    text = " ".join(["word"] * 39 + ["talks."])
    ex = runner.explain(text)
    assert calls == [41], "the statement and its 40 variants go through the model once"
    assert ex.label in tiny_classifier.stance_labels
    assert len(ex.units) == 40


def test_runner_scores_words_past_the_first_window(tiny_classifier):
    """Long statements are read in sentence windows, so their last words count too."""
    from serve.demo_runner import ModelRunner

    runner = ModelRunner(tiny_classifier)  # max_seq_length 64
    long_text = " ".join(f"Round {i} of the talks ended." for i in range(30))
    assert len(tiny_classifier.tokenizer(long_text)["input_ids"]) > 3 * 64
    ex = runner.explain(long_text, max_units=200)
    assert ex.units[-1].end == len(long_text) - 1
    assert any(u.score != 0 for u in ex.units if u.start > len(long_text) // 2)


def test_statement_tab_reads_a_long_statement_in_windows_like_detente_score(
    tiny_classifier, tmp_path
):
    from serve.corrections import CorrectionStore
    from serve.demo_handlers import DemoHandlers
    from serve.demo_runner import ModelRunner
    from serve.scored_rows import score_texts

    runner = ModelRunner(tiny_classifier)  # max_seq_length 64
    sentences = ["The envoy said talks would resume in Geneva next week.",
                 "The army shelled the border villages again overnight, the governor said."]
    long_text = " ".join(sentences[i % 2] for i in range(12))
    store = CorrectionStore(tmp_path / "c.jsonl", stance_labels=tiny_classifier.stance_labels,
                            sentiment_labels=tiny_classifier.sentiment_labels)
    handlers = DemoHandlers(runner, store)
    stance, _, score, note, raw = handlers.predict(long_text)
    expected = score_texts([long_text], runner.classifier)
    assert expected.windowed[0]  # it is longer than one window
    assert [stance[k] for k in tiny_classifier.stance_labels] == pytest.approx(
        expected.stance[0].tolist(), abs=1e-6)
    # The Python API reads it the same way (one inference path), not its first 64 tokens.
    assert raw["stance_probs"] == pytest.approx(
        tiny_classifier.predict([long_text])[0].stance_probs, abs=1e-6)
    assert "sentence windows" in note
