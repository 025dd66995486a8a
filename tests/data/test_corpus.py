"""Guards on the project's own corpus: format, balance, splits by dispute, no leakage."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from model.paths import bundled_corpus
from training.data import ColumnNames, load_labelled
from training.validation import CORPUS_COLUMNS, near_duplicate_pairs, normalise_text, validate


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return load_labelled(bundled_corpus(), ColumnNames())


def test_corpus_passes_every_data_check(corpus):
    report = validate(corpus, "data/statements.jsonl", required=CORPUS_COLUMNS)
    assert report.ok, report.render()


def test_size_and_stance_balance(corpus):
    assert len(corpus) >= 3000
    shares = corpus["stance"].value_counts(normalize=True)
    assert set(shares.index) == {"pro_negotiation", "accusatory", "neutral"}
    # neutral leads since the December 2026 rows for neutral-heavy real-text patterns
    assert all(0.25 <= share <= 0.45 for share in shares), shares.to_dict()
    assert corpus["sentiment"].notna().all()


def test_breadth_of_disputes_speakers_and_forms(corpus):
    assert corpus["dispute"].nunique() >= 20
    assert corpus["speaker_type"].nunique() >= 10
    assert corpus["form"].nunique() >= 8
    # neutral stance appears with every sentiment; so does pro_negotiation
    for stance in ("neutral", "pro_negotiation"):
        sentiments = set(corpus.loc[corpus["stance"] == stance, "sentiment"])
        assert sentiments == {"negative", "neutral", "positive"}, stance


def test_hard_cases_are_tagged_with_their_rule(corpus):
    hard = corpus["hard"].astype(bool)
    assert hard.mean() >= 0.20
    assert corpus.loc[hard, "rule"].notna().all()
    assert corpus.loc[~hard, "rule"].isna().all()


def test_each_dispute_sits_in_exactly_one_split(corpus):
    splits_per_dispute = corpus.groupby("dispute")["split"].nunique()
    assert (splits_per_dispute == 1).all(), splits_per_dispute[splits_per_dispute > 1]
    assert set(Counter(corpus.drop_duplicates("dispute")["split"])) == {
        "train", "validation", "test"}


def test_no_duplicates_or_near_duplicates_across_splits(corpus):
    keys = corpus["text"].map(normalise_text)
    assert not keys.duplicated().any()
    assert near_duplicate_pairs(corpus["text"].tolist(), corpus["split"].tolist()) == []


def test_ids_are_unique_and_rows_are_plain_json():
    lines = bundled_corpus().read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(set(r) == set(CORPUS_COLUMNS) for r in rows)
