from __future__ import annotations

import pandas as pd

from training.data import ColumnNames, normalise_columns
from training.validation import near_duplicate_pairs, validate


def frame(rows):
    return normalise_columns(pd.DataFrame(rows), ColumnNames(), "test")


def row(text, stance="neutral", sentiment="neutral", **kw):
    return {"text": text, "stance": stance, "sentiment": sentiment, **kw}


def messages(report):
    return [p.render() for p in report.problems]


def test_clean_table_passes():
    report = validate(frame([row("Talks resume."), row("Rockets hit the port.")]), "t")
    assert report.ok, messages(report)


def test_missing_text_column_is_named():
    report = validate(pd.DataFrame([{"sentence": "x"}]), "t", required=("text",))
    assert not report.ok and "missing column(s) ['text']" in messages(report)[0]


def test_unknown_labels_list_rows_and_allowed_set():
    report = validate(frame([row("a b"), row("c d", stance="angry"), row("e f", sentiment="meh")]),
                      "t")
    text = "\n".join(messages(report))
    assert "unknown stance label(s) ['angry']" in text and "(rows 2)" in text
    assert "unknown sentiment label(s) ['meh']" in text and "(rows 3)" in text
    assert "allowed: ['pro_negotiation', 'accusatory', 'neutral']" in text


def test_empty_text_and_unlabelled_rows():
    report = validate(frame([row("fine"), row("   "), row("x", stance=None, sentiment=None)]), "t")
    text = "\n".join(messages(report))
    assert "empty or whitespace-only text (rows 2)" in text
    assert "no label for any head" in text and "(rows 3)" in text


def test_duplicates_and_conflicts():
    report = validate(frame([
        row("We are ready to talk."), row("we are READY to talk!"),
        row("They lied.", stance="accusatory"), row("They lied", stance="neutral"),
    ]), "t")
    text = "\n".join(messages(report))
    assert "duplicate text" in text and "(rows 1, 2)" in text
    assert "conflicting labels (rows 3, 4)" in text


def test_leakage_between_splits_and_disputes():
    long = "the minister said on tuesday that the talks in geneva would resume next week"
    report = validate(frame([
        row(long, split="train", dispute="a"),
        row(long.replace("next week", "next month"), split="test", dispute="b"),
        row("Something else entirely.", split="test", dispute="a"),
    ]), "t")
    text = "\n".join(messages(report))
    assert "near-duplicate pair(s) across splits" in text and "(rows 1, 2)" in text
    assert "dispute 'a' appears in several splits" in text


def test_near_duplicates_within_one_split_are_allowed():
    long = "the minister said on tuesday that the talks in geneva would resume next week"
    assert near_duplicate_pairs([long, long + " again"], ["train", "train"]) == []
    assert near_duplicate_pairs([long, long + " again"], ["train", "test"]) == [(0, 1)]
