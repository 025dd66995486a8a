"""What the Trainer reads from a labelled table: token ids, targets, row weights, class weights.

Apart from the training run itself, because these are pure functions of a table and the
model's config: they can be checked without a model, and retraining feeds them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from model.config import DetenteConfig
from training.metrics import encode_labels


def to_dataset(
    frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, config: DetenteConfig
) -> Dataset:
    """Tokenised rows with integer labels (-100 where a head has no label), the graded
    sentiment targets (zeros where a row has none) and the row weights (1 unless given)."""
    encoded = tokenizer(
        frame["text"].tolist(), truncation=True, max_length=config.max_seq_length
    )
    columns = {key: list(values) for key, values in encoded.items()}
    columns["stance_labels"] = encode_labels(frame["stance"].tolist(), config.stance_labels)
    columns["sentiment_labels"] = encode_labels(
        frame["sentiment"].tolist(), config.sentiment_labels
    )
    columns["sentiment_soft_labels"] = soft_targets(frame, config.sentiment_labels)
    columns["row_weights"] = row_weights(frame)
    columns["length"] = [len(ids) for ids in encoded["input_ids"]]
    return Dataset.from_dict(columns)


def soft_targets(frame: pd.DataFrame, labels: Sequence[str]) -> list[list[float]]:
    """``sentiment_shares`` ({label: share}) as vectors in the head's label order."""
    if "sentiment_shares" not in frame.columns:
        return [[0.0] * len(labels)] * len(frame)
    out = []
    for row, shares in enumerate(frame["sentiment_shares"].tolist(), start=1):
        if not isinstance(shares, dict):
            out.append([0.0] * len(labels))
            continue
        unknown = set(shares) - set(labels)
        if unknown:
            raise ValueError(f"row {row}: sentiment_shares has unknown labels {sorted(unknown)}; "
                             f"allowed: {list(labels)}")
        out.append([float(shares.get(label) or 0.0) for label in labels])
    return out


def row_weights(frame: pd.DataFrame) -> list[float]:
    """The ``weight`` column (1 where missing or not a number): how much each row's loss counts."""
    if "weight" not in frame.columns:
        return [1.0] * len(frame)
    weights = pd.to_numeric(frame["weight"], errors="coerce").fillna(1.0)
    return [float(w) for w in weights]


def balanced_class_weights(values: pd.Series, labels: Sequence[str]) -> torch.Tensor | None:
    """Inverse-frequency weights (sklearn's 'balanced'); classes absent from data get 1."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    total = counts.sum()
    weights = [
        total / (len(labels) * counts[label]) if label in counts else 1.0 for label in labels
    ]
    return torch.tensor(weights, dtype=torch.float32)
