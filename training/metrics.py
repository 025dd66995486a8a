"""Metrics shared by training (early stopping), calibration and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from model.modeling import IGNORE_INDEX


def head_scores(logits: np.ndarray, labels: np.ndarray, n_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 over the rows labelled for this head."""
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return {}
    pred = logits[keep].argmax(axis=-1)
    gold = labels[keep]
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(
            f1_score(gold, pred, average="macro", labels=list(range(n_labels)), zero_division=0)
        ),
    }


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


def macro_f1(
    gold: Sequence[str | None], predicted: Sequence[str], labels: Sequence[str]
) -> float | None:
    """Macro-F1 over the rows with a gold label in ``labels`` (None: no such row)."""
    labels = list(labels)
    keep = [i for i, g in enumerate(gold) if g in labels]
    if not keep:
        return None
    return float(f1_score([gold[i] for i in keep], [predicted[i] for i in keep], labels=labels,
                          average="macro", zero_division=0))
