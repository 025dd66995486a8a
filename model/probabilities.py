"""From logits to what users see: calibrated probabilities and the sentiment score.

Every backend returns raw logits; this is the one place they become probabilities, so the
temperatures fitted after training apply the same way to torch and ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model.config import DetenteConfig


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def calibrated(
    stance_logits: np.ndarray, sentiment_logits: np.ndarray, config: DetenteConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Both heads' probabilities with the model's fitted temperatures."""
    return (softmax(stance_logits / config.stance_temperature),
            softmax(sentiment_logits / config.sentiment_temperature))


def sentiment_score(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """P(positive) - P(negative) per row, in [-1, 1]."""
    return probs[:, list(labels).index("positive")] - probs[:, list(labels).index("negative")]
