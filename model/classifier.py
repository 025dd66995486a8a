"""The inference API: ``Classifier.load(...).predict(texts)``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from model.modeling import DetenteModel
from model.persistence import load_model, weights_hash
from model.tokenization import length_sorted_batches


@dataclass(frozen=True)
class Prediction:
    """One statement's labels; ``sentiment_score = P(positive) - P(negative)`` in [-1, 1]."""

    stance: str
    stance_probs: dict[str, float]
    sentiment: str
    sentiment_probs: dict[str, float]
    sentiment_score: float

    def to_dict(self) -> dict:
        return asdict(self)


def as_text_list(texts: str | Iterable[str]) -> list[str]:
    """Accept a list, a pandas Series, a pyarrow Array/ChunkedArray or one string."""
    if isinstance(texts, str):
        return [texts]
    if hasattr(texts, "to_pylist"):  # pyarrow
        texts = texts.to_pylist()
    elif hasattr(texts, "tolist"):  # pandas / numpy
        texts = texts.tolist()
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text at position {i} is {type(text).__name__}, not str: {text!r}")
    return texts


def sentiment_score(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """P(positive) - P(negative) per row."""
    return probs[:, list(labels).index("positive")] - probs[:, list(labels).index("negative")]


class Classifier:
    """A loaded model ready to label statements, with calibrated probabilities."""

    def __init__(
        self,
        model: DetenteModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        path: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.path = path
        self.config = model.config
        self._version: str | None = None

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        allow_pickle: bool = False,
        train_if_missing: bool = True,
    ) -> Classifier:
        """Load a model folder; ``None`` means the default model, trained first if absent."""
        if path is None:
            from training.default_model import ensure_default_model

            path = ensure_default_model(train_if_missing=train_if_missing)
        model, tokenizer = load_model(path, allow_pickle=allow_pickle)
        set_torch_threads()
        return cls(model, tokenizer, path=Path(path))

    @property
    def stance_labels(self) -> list[str]:
        return list(self.config.stance_labels)

    @property
    def sentiment_labels(self) -> list[str]:
        return list(self.config.sentiment_labels)

    @property
    def model_version(self) -> str:
        """Content hash of the weights file (``unsaved`` for a model that was never saved)."""
        if self._version is None:
            self._version = weights_hash(self.path) if self.path else "unsaved"
        return self._version

    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw (uncalibrated) logits of both heads, in input order."""
        n = len(texts)
        stance = np.zeros((n, len(self.stance_labels)), dtype=np.float32)
        sentiment = np.zeros((n, len(self.sentiment_labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for rows, batch in length_sorted_batches(
                texts, self.tokenizer, max_length=self.config.max_seq_length, batch_size=batch_size
            ):
                out = self.model(**{k: v.to(device) for k, v in batch.items()})
                stance[rows] = out.stance_logits.float().cpu().numpy()
                sentiment[rows] = out.sentiment_logits.float().cpu().numpy()
        return stance, sentiment

    def predict_proba(
        self, texts: str | Iterable[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities ``(stance, sentiment)``, each ``(n, n_labels)``."""
        texts = as_text_list(texts)
        stance_logits, sentiment_logits = self.predict_logits(texts, batch_size)
        return (
            softmax(stance_logits / self.config.stance_temperature),
            softmax(sentiment_logits / self.config.sentiment_temperature),
        )

    def predict(self, texts: str | Iterable[str], batch_size: int = 32) -> list[Prediction]:
        """Label each statement; results come back in input order."""
        stance_probs, sentiment_probs = self.predict_proba(texts, batch_size)
        return self.to_predictions(stance_probs, sentiment_probs)

    def to_predictions(
        self, stance_probs: np.ndarray, sentiment_probs: np.ndarray
    ) -> list[Prediction]:
        scores = sentiment_score(sentiment_probs, self.sentiment_labels)
        out = []
        for s_row, m_row, score in zip(stance_probs, sentiment_probs, scores, strict=True):
            out.append(
                Prediction(
                    stance=self.stance_labels[int(s_row.argmax())],
                    stance_probs={k: float(v) for k, v in zip(self.stance_labels, s_row)},
                    sentiment=self.sentiment_labels[int(m_row.argmax())],
                    sentiment_probs={k: float(v) for k, v in zip(self.sentiment_labels, m_row)},
                    sentiment_score=float(score),
                )
            )
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def set_torch_threads() -> None:
    """Use every core for intra-op work unless the user chose (``OMP_NUM_THREADS``)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
