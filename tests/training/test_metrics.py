"""The one macro-F1 (``training.metrics``): what it counts, and that every user shares it."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from model.config import DetenteConfig
from model.modeling import IGNORE_INDEX
from training.evaluation import head_metrics, spearman
from training.metrics import (
    MACRO_F1_DEFINITION,
    head_scores,
    logit_scores,
    macro_f1,
    rank_correlation,
)
from training.model_card import rating_table, render_model_card
from training.trainer import make_compute_metrics

LABELS = ["a", "b", "c"]


def test_a_label_absent_from_gold_and_predictions_does_not_count():
    gold, predicted = ["a", "b", "a", "b"], ["a", "b", "b", "b"]
    # a: P 1, R 1/2, F1 2/3; b: P 2/3, R 1, F1 4/5; c occurs nowhere
    assert macro_f1(gold, predicted, LABELS) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert macro_f1(gold, predicted, LABELS) == pytest.approx(
        f1_score(gold, predicted, average="macro", zero_division=0))
    assert macro_f1(gold, predicted, LABELS) > f1_score(
        gold, predicted, labels=LABELS, average="macro", zero_division=0)


def test_a_label_on_one_side_only_counts_as_zero():
    # c is predicted but never gold (F1 0); b is gold but never predicted (F1 0)
    assert macro_f1(["a", "a"], ["a", "c"], LABELS) == pytest.approx((2 / 3 + 0) / 2)
    assert macro_f1(["a", "b"], ["a", "a"], LABELS) == pytest.approx((2 / 3 + 0) / 2)


def test_rows_without_gold_are_left_out_and_none_means_nothing_to_score():
    assert macro_f1(["a", None, "b"], ["a", "c", "b"], LABELS) == 1.0
    assert macro_f1([None, None], ["a", "b"], LABELS) is None
    assert head_scores([None], ["a"], LABELS) == {}


def test_a_prediction_the_head_does_not_have_is_wrong_but_no_class():
    # retrain: the old model may predict a label the new model dropped
    assert macro_f1(["a", "b"], ["a", "dropped"], ["a", "b"]) == pytest.approx(0.5)
    assert head_scores(["a", "b"], ["a", "dropped"], ["a", "b"])["accuracy"] == 0.5


def test_class_indices_with_ignore_index_score_like_the_labels():
    logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 0, 3.0]])
    gold = np.array([0, 1, 0, IGNORE_INDEX])
    by_index = logit_scores(logits, gold)
    by_label = head_scores(["a", "b", "a", None], ["a", "b", "b", "c"], LABELS)
    assert by_index == by_label == {"n": 3, "accuracy": pytest.approx(2 / 3),
                                    "macro_f1": pytest.approx((2 / 3 + 2 / 3) / 2)}


def test_evaluation_and_the_trainer_use_the_same_macro_f1():
    gold, predicted = ["a", "b", "a", "b"], ["a", "b", "b", "b"]
    assert head_metrics(gold, predicted, LABELS)["macro_f1"] == macro_f1(gold, predicted, LABELS)
    stance = np.eye(3)[[0, 1, 1, 1]]  # the predictions above, as logits
    sentiment = np.eye(3)[[2, 2, 2, 2]]
    gold_ids = np.array([0, 1, 0, 1])
    epoch = make_compute_metrics(stance_weight=0.5)(SimpleNamespace(
        predictions=(stance, sentiment), label_ids=(gold_ids, np.array([2, 2, 2, IGNORE_INDEX]))))
    assert epoch["stance_macro_f1"] == pytest.approx(macro_f1(gold, predicted, LABELS))
    assert epoch["sentiment_macro_f1"] == 1.0  # only the label that occurs counts
    assert epoch["macro_f1"] == pytest.approx((epoch["stance_macro_f1"] + 1.0) / 2)


def test_the_model_card_says_which_macro_f1_it_shows():
    card = render_model_card(DetenteConfig(), {})
    assert MACRO_F1_DEFINITION in card
    assert "labels that occur in the gold labels or the predictions" in card


def test_rank_correlation_is_spearman_where_defined_and_none_where_not():
    values, reference = [0.3, -0.2, 0.9, 0.1], [1.0, -1.0, 2.0, 0.5]
    assert rank_correlation(values, reference) == pytest.approx(
        spearmanr(values, reference).statistic)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy warns on constant input; we must not call it
        assert rank_correlation([0.2, 0.2, 0.2], [1.0, 2.0, 3.0]) is None
        assert rank_correlation([0.1, 0.5, 0.2], [2.0, 2.0, 2.0]) is None
        assert spearman([0.4, 0.4, 0.4], ["negative", "neutral", "positive"]) is None
    assert rank_correlation([0.1, 0.2], [1.0, 2.0]) is None
    assert rank_correlation([0.1, float("nan"), 0.3], [1.0, 2.0, 3.0]) is None


def test_rating_table_shows_a_dash_for_an_undefined_correlation():
    rated = {"n": 3, "model_spearman": None, "vader_spearman": 0.41}
    table = rating_table({"by_source": {"test": {"vader_nyt": {"rated": rated}}}})
    assert "| test | vader_nyt | 3 | **—** | 0.410 |" in table
