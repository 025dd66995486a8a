"""Temperature scaling: one scalar per head that makes probabilities match accuracy.

A fine-tuned encoder is usually over-confident. Dividing the logits by a temperature fitted
on the validation split (minimising negative log-likelihood) keeps the argmax, so labels do
not change, while the probabilities users see become honest.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from model.modeling import IGNORE_INDEX
from model.probabilities import softmax
from training.metrics import expected_calibration_error


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    probs = softmax(logits / temperature)
    return float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] with the lowest validation NLL (1.0 with no labels)."""
    keep = labels != IGNORE_INDEX
    if keep.sum() < 2:
        return 1.0
    logits, labels = logits[keep], labels[keep]
    result = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
    )
    return float(np.exp(result.x))


def calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE before and after scaling, for the training summary and the model card."""
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return {}
    logits, labels = logits[keep], labels[keep]
    return {
        "n": int(keep.sum()),
        "temperature": temperature,
        "ece_before": expected_calibration_error(softmax(logits), labels),
        "ece_after": expected_calibration_error(softmax(logits / temperature), labels),
    }
