"""One loaded classifier shared by every request of the demo, one forward pass at a time.

Why a lock: the Rust fast tokenizer raises "Already borrowed" when two threads change its
truncation settings at once, and concurrent forward passes only compete for the cores torch
already uses for one (benchmarks/results/notes_from_code.md). Why a *fair* (FIFO) lock:
a batch job scores its rows in chunks and re-acquires the lock after each one; with a
plain lock it could win every time and starve a single-statement request for the whole
batch. In FIFO order a waiting request runs after at most one chunk.

The batch tab scores its rows with ``score_rows``: the per-row logic of ``detente score``
(``serve.scored_rows.score_texts``: error rows, sentence windows for long texts), under the
same lock, so the demo and ``detente score --backend torch`` give the same numbers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from model.classifier import Classifier, Prediction
from serve.explain import DEFAULT_MAX_UNITS, Explanation, explain
from serve.scored_rows import DEFAULT_BATCH_SIZE, Scores, score_texts


class FairLock:
    """A mutex granted in the order it was requested."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False

    def __enter__(self) -> FairLock:
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            while self._held or self._waiting[0] is not ticket:
                self._cond.wait()
            self._waiting.popleft()
            self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class ModelRunner:
    """Thread-safe access to a Classifier for the demo's handlers."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.lock = FairLock()

    @property
    def stance_labels(self) -> list[str]:
        return self.classifier.stance_labels

    @property
    def sentiment_labels(self) -> list[str]:
        return self.classifier.sentiment_labels

    @property
    def max_tokens(self) -> int:
        return int(self.classifier.config.max_seq_length)

    def proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated ``(stance, sentiment)`` probabilities, all texts in one padded batch."""
        texts = list(texts)
        with self.lock:
            return self.classifier.predict_proba(texts, batch_size=max(1, len(texts)))

    def score_rows(
        self, values: Sequence[object], column: str = "text",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Scores:
        """Raw cells scored as ``detente score`` scores them (errors, long-text windows).

        The lock covers the tokenizer calls of the window planning too (see above).
        """
        with self.lock:
            return score_texts(list(values), self.classifier, column=column,
                               batch_size=batch_size)

    def predict(self, text: str) -> Prediction:
        """One statement, scored as ``detente score`` scores it.

        A statement longer than the model's window is read in sentence windows whose
        probabilities are averaged by length (``model.long_text``), not cut off, as every
        front end reads it.
        """
        scores = self.score_rows([text])
        if scores.errors[0] is not None:
            raise ValueError(scores.errors[0])
        return self.classifier.to_predictions(scores.stance.astype(np.float32),
                                              scores.sentiment.astype(np.float32))[0]

    def token_count(self, text: str) -> int:
        """Tokens in ``text`` including special tokens, before any truncation."""
        with self.lock:
            return len(self.classifier.tokenizer(text, verbose=False)["input_ids"])

    def explain(self, text: str, max_units: int = DEFAULT_MAX_UNITS) -> Explanation:
        """Word occlusion of the predicted stance: one forward pass for all variants."""
        return explain(
            text,
            lambda texts: self.proba(texts)[0],
            self.stance_labels,
            max_units=max_units,
        )

