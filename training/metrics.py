"""Metrics shared by training (early stopping), calibration, evaluation, retraining, the
baselines and the model card: one definition of each, so that numbers shown side by side
(the model beside a baseline, before beside after a retrain) were computed the same way.

Macro-F1, the one definition
----------------------------
scikit-learn's ``f1_score(average="macro", zero_division=0)`` over the labels that occur in
the gold labels or in the predictions of the rows scored; rows without a gold label (or with
one the head does not have) are left out, and a prediction the head does not have counts as
wrong without being a class of its own.

Why the labels that occur rather than every label of the head: a label that neither the
gold labels nor the predictions contain has no F1 at all (0/0). Counting it as 0 lowers the
mean by a constant that says nothing about the model, and that happens most on the small
row sets we report on (one source of one split, the early-stopping rows, a retrain's
held-out corrections). A label that occurs on one side only still counts, with F1 0: a class
the model never finds, or predicts where it never is, is a real error. This is also what
scikit-learn computes when it is not given the labels, so our numbers match a reader's own
``f1_score(gold, predicted, average="macro")`` on the same rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from model.modeling import IGNORE_INDEX

# The sentence the model card prints, so a reader knows which macro-F1 every table holds.
MACRO_F1_DEFINITION = (
    "Macro-F1, in every table of this card and for the model and the baselines alike, is "
    "scikit-learn's `f1_score(average='macro', zero_division=0)` over the labels that occur "
    "in the gold labels or the predictions of the rows scored."
)


def labelled_rows(
    gold: Sequence[Hashable | None], predicted: Sequence[Hashable], labels: Sequence[Hashable]
) -> tuple[list, list]:
    """The gold and predicted labels of the rows whose gold label is one of ``labels``."""
    known = set(labels)
    pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if g in known]
    return [g for g, _ in pairs], [p for _, p in pairs]


def occurring_labels(
    gold: Sequence[Hashable], predicted: Sequence[Hashable], labels: Sequence[Hashable]
) -> list:
    """``labels`` (in their order) that occur in ``gold`` or ``predicted``."""
    seen = set(gold) | set(predicted)
    return [label for label in labels if label in seen]


def macro_f1(
    gold: Sequence[Hashable | None], predicted: Sequence[Hashable], labels: Sequence[Hashable]
) -> float | None:
    """Macro-F1 as defined in the module docstring; None when no row has a gold label.

    ``gold`` and ``predicted`` are label values row by row (strings, or class indices with
    ``labels=range(n)``); ``labels`` are the head's labels.
    """
    gold, predicted = labelled_rows(gold, predicted, labels)
    if not gold:
        return None
    return float(f1_score(gold, predicted, labels=occurring_labels(gold, predicted, labels),
                          average="macro", zero_division=0))


def head_scores(
    gold: Sequence[Hashable | None], predicted: Sequence[Hashable], labels: Sequence[Hashable]
) -> dict:
    """Rows scored (``n``), accuracy and macro-F1 over the rows with a gold label ({}: none)."""
    kept_gold, kept_predicted = labelled_rows(gold, predicted, labels)
    if not kept_gold:
        return {}
    return {"n": len(kept_gold), "accuracy": float(accuracy_score(kept_gold, kept_predicted)),
            "macro_f1": macro_f1(gold, predicted, labels)}


def per_class_scores(
    gold: Sequence[Hashable | None], predicted: Sequence[Hashable], labels: Sequence[Hashable]
) -> dict:
    """Precision, recall, F1 and support of every label of the head (0 where undefined)."""
    gold, predicted = labelled_rows(gold, predicted, labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(labels), zero_division=0)
    return {label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)}


def logit_scores(logits: np.ndarray, gold: np.ndarray) -> dict:
    """``head_scores`` of the argmax of ``logits`` (or probabilities) against class indices;
    rows whose index is ``IGNORE_INDEX`` have no gold label."""
    # IGNORE_INDEX (-100) is no class index, so those rows drop out as unlabelled.
    return head_scores(np.asarray(gold).tolist(), logits.argmax(axis=-1).tolist(),
                       range(logits.shape[-1]))


def combined_score(
    stance_f1: float | None, sentiment_f1: float | None, stance_weight: float
) -> float:
    """Weighted mean of the heads' macro-F1; a head without labels leaves the other alone."""
    if stance_f1 is None:
        return float(sentiment_f1 or 0.0)
    if sentiment_f1 is None:
        return float(stance_f1)
    return stance_weight * stance_f1 + (1 - stance_weight) * sentiment_f1


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al. 2017)."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def encode_labels(values: Sequence[object], labels: Sequence[str]) -> np.ndarray:
    """Label strings to indices; a missing label becomes IGNORE_INDEX."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[v] if v is not None else IGNORE_INDEX for v in values], dtype=np.int64)


def rank_correlation(values: Sequence[float], reference: Sequence[float]) -> float | None:
    """Spearman's rho, or None where it is undefined: fewer than 3 pairs, a NaN among the
    values, or either side constant (as a barely trained model's scores can be). None reads
    as "—" in reports; scipy would warn on constant input and its NaN broke the model card."""
    x, y = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    rho = float(spearmanr(x, y).statistic)
    return None if np.isnan(rho) else rho
