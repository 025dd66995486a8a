"""Guards on the bundled real-text data: the labelled real statements and the rated sentences."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from model.paths import repo_root
from training.bundled_data import REAL_SOURCES, data_fingerprint, default_data_files
from training.data import ColumnNames, load_labelled
from training.validation import near_duplicate_pairs, validate

DATA = repo_root() / "data"


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_labelled(DATA / "real_statements.jsonl", ColumnNames())


def test_real_statements_pass_every_data_check(real):
    report = validate(real, "data/real_statements.jsonl",
                      required=("id", "text", "stance", "sentiment", "source", "doc_id", "split"))
    assert report.ok, report.render()


def test_real_statements_size_and_classes(real):
    assert len(real) >= 3000
    assert set(real["source"]) == set(REAL_SOURCES)
    counts = real["stance"].value_counts()
    assert all(counts[label] >= 600 for label in ("pro_negotiation", "accusatory", "neutral"))
    assert set(real["sentiment"]) == {"negative", "neutral", "positive"}


def test_documents_never_span_splits_and_the_unseen_slice_is_whole(real):
    assert (real.groupby("doc_id")["split"].nunique() == 1).all()
    unseen = real[real["split"] == "test_unseen"]
    decade = unseen["date"].astype(str).str[:3]
    assert len(unseen) >= 300 and set(unseen["source"]) == {"ungdc"} and set(decade) == {"198"}
    # no UN speech of the 1980s anywhere else: the slice is unseen as a whole
    others = real[(real["split"] != "test_unseen") & (real["source"] == "ungdc")]
    assert not others["date"].astype(str).str.startswith("198").any()
    assert near_duplicate_pairs(real["text"].tolist(), real["split"].tolist()) == []


def test_agreement_is_recorded_per_source_and_head():
    stats = json.loads((DATA / "labelling" / "real" / "agreement.json").read_text())
    agreement = stats["agreement_pass1_vs_pass2"]
    assert set(agreement) == {*REAL_SOURCES, "all"}
    for source in agreement.values():
        for head in ("stance", "sentiment"):
            assert 0.0 < source[head]["cohen_kappa"] <= 1.0
    assert stats["rows_kept"] == sum(1 for _ in open(DATA / "real_statements.jsonl"))


def test_rated_sentences_carry_shares_that_sum_to_one():
    rated = pd.read_json(DATA / "vader_nyt.jsonl", lines=True)
    sums = rated["sentiment_shares"].map(lambda s: sum(s.values()))
    assert ((sums - 1.0).abs() < 1e-3).all()
    assert (rated.groupby("doc_id")["split"].nunique() == 1).all()
    assert {"train", "validation", "test"} <= set(rated["split"])


def test_bundled_data_is_small_and_fingerprinted(tmp_path):
    files = default_data_files()
    assert all(path.is_file() for path in files)
    assert sum(path.stat().st_size for path in DATA.rglob("*") if path.is_file()) < 50e6
    copy = tmp_path / files[0].name
    copy.write_bytes(files[0].read_bytes() + b"\n")
    assert data_fingerprint([copy, *files[1:]]) != data_fingerprint(files)
