"""Reference points for the model's numbers: majority class, TF-IDF + logistic regression, VADER.

A metric means little alone; the evaluation report and the model card show the model beside
these baselines trained on the same training split and scored on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from model.labels import HEADS


def labelled(frame: pd.DataFrame, head: str) -> pd.DataFrame:
    return frame[frame[head].notna()]


def vader_compound(texts: Sequence[str]) -> np.ndarray:
    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts])


def vader_predict(texts: Sequence[str], threshold: float = 0.05) -> list[str]:
    """VADER's own convention: compound >= 0.05 positive, <= -0.05 negative."""
    compound = vader_compound(texts)
    return ["positive" if c >= threshold else "negative" if c <= -threshold else "neutral"
            for c in compound]


class Baselines:
    """Majority and TF-IDF baselines fitted once on a training table, then asked many times
    (the model card scores them on every source of every split)."""

    def __init__(self, train: pd.DataFrame) -> None:
        self.models: dict[str, dict[str, object]] = {"majority": {}, "tfidf_logreg": {}}
        for head in HEADS:
            rows = labelled(train, head)
            if rows.empty:
                continue
            self.models["majority"][head] = DummyClassifier(strategy="most_frequent").fit(
                rows[["text"]], rows[head])
            self.models["tfidf_logreg"][head] = make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                LogisticRegression(max_iter=2000, class_weight="balanced", random_state=0),
            ).fit(rows["text"].tolist(), rows[head].tolist())

    def predict(self, texts: Sequence[str]) -> dict[str, dict[str, list[str]]]:
        """``{baseline: {head: predictions}}`` for every baseline that applies to a head."""
        texts = list(texts)
        out: dict[str, dict[str, list[str]]] = {"majority": {}, "tfidf_logreg": {}, "vader": {}}
        for head, model in self.models["majority"].items():
            out["majority"][head] = list(model.predict(pd.DataFrame({"text": texts})))
        for head, model in self.models["tfidf_logreg"].items():
            out["tfidf_logreg"][head] = list(model.predict(texts))
        out["vader"]["sentiment"] = vader_predict(texts)
        return out

