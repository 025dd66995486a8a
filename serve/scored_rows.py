"""Scoring rows: raw cells in, labels, probabilities and an ``error`` per row out.

This is the per-row logic every front end shares (``detente score`` on either engine, the
demo's batch tab, the HTTP API), so a row gets the same columns and numbers wherever it is
scored. A cell that cannot be scored (``text_error``) keeps its place with a sentence in
``error`` and empty label and probability columns; no row is ever dropped. The rest go
through ``Classifier.score``, which reads a text longer than the model's window in
sentence windows (``model.long_text``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from model.classifier import Classifier
from model.config import DetenteConfig
from model.probabilities import sentiment_score
from training.tables import MISSING

DEFAULT_BATCH_SIZE = 32
MAX_TEXT_CHARS = 100_000


@dataclass
class Scores:
    """Per-row probabilities (NaN rows where ``errors`` has a message)."""

    stance: np.ndarray
    sentiment: np.ndarray
    errors: list[str | None]
    windowed: np.ndarray  # bool per row: read in several windows

    @property
    def error_count(self) -> int:
        return sum(e is not None for e in self.errors)

    @property
    def windowed_rows(self) -> int:
        return int(self.windowed.sum())


def text_error(value: Any, column: str = "text") -> str | None:
    """Why a raw cell cannot be scored, or None when it can."""
    if value is MISSING:
        return f"the row has no {column!r} field"
    if value is None:
        return f"{column!r} is missing (null)"
    if isinstance(value, float) and math.isnan(value):
        return f"{column!r} is missing (NaN)"
    if not isinstance(value, str):
        return f"{column!r} is {type(value).__name__}, not text: {value!r:.60}"
    if not value.strip():
        return f"{column!r} is empty" if not value else f"{column!r} is blank (only white space)"
    if len(value) > MAX_TEXT_CHARS:
        return (
            f"{column!r} is too long: {len(value):,} characters (the limit is "
            f"{MAX_TEXT_CHARS:,}; split such documents before scoring)"
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{column!r} is not valid Unicode (it holds a lone surrogate)"
    return None


def score_texts(
    values: Sequence[Any],
    classifier: Classifier,
    *,
    column: str = "text",
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> Scores:
    """Score raw cells: bad ones get an error, the rest go through ``Classifier.score``."""
    errors = [text_error(v, column) for v in values]
    ok = [i for i, e in enumerate(errors) if e is None]
    config = classifier.config
    stance = np.full((len(values), len(config.stance_labels)), np.nan, dtype=np.float64)
    sentiment = np.full((len(values), len(config.sentiment_labels)), np.nan, dtype=np.float64)
    windowed = np.zeros(len(values), dtype=bool)
    if ok:
        scored = classifier.score([values[i] for i in ok], batch_size, on_progress)
        stance[ok], sentiment[ok] = scored.stance, scored.sentiment
        windowed[ok] = scored.windows > 1
    return Scores(stance, sentiment, errors, windowed)


def output_column_names(config: DetenteConfig) -> list[str]:
    """The scored columns, in output order, after the input ones."""
    return (
        ["stance"] + [f"p_{label}" for label in config.stance_labels]
        + ["sentiment", "sentiment_score", "model_version", "error"]
    )


def scored_columns(scores: Scores, config: DetenteConfig, version: str) -> dict[str, pa.Array]:
    """The output columns (``stance`` ... ``error``) of scored rows, as Arrow arrays."""
    n = len(scores.errors)
    invalid = np.array([e is not None for e in scores.errors], dtype=bool)
    stance_idx = np.nan_to_num(scores.stance, nan=-1.0).argmax(axis=1)
    sentiment_idx = np.nan_to_num(scores.sentiment, nan=-1.0).argmax(axis=1)
    stance_labels = np.array(config.stance_labels, dtype=object)
    sentiment_labels = np.array(config.sentiment_labels, dtype=object)
    columns: dict[str, pa.Array] = {
        "stance": _labels(stance_labels[stance_idx], invalid),
    }
    for j, label in enumerate(config.stance_labels):
        columns[f"p_{label}"] = _floats(scores.stance[:, j], invalid)
    columns["sentiment"] = _labels(sentiment_labels[sentiment_idx], invalid)
    score = sentiment_score(scores.sentiment, config.sentiment_labels)
    columns["sentiment_score"] = _floats(score, invalid)
    columns["model_version"] = pa.array([version] * n, type=pa.string())
    columns["error"] = pa.array(scores.errors, type=pa.string())
    return columns


def _labels(values: np.ndarray, invalid: np.ndarray) -> pa.Array:
    """Label strings, null where the row has an error."""
    return pa.array([None if bad else v for v, bad in zip(values, invalid)], type=pa.string())


def _floats(values: np.ndarray, invalid: np.ndarray) -> pa.Array:
    """float32 probabilities, null (not NaN) where the row has an error."""
    return pa.array(np.nan_to_num(values).astype(np.float32), type=pa.float32(), mask=invalid)
