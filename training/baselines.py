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


def labelled(frame: pd.DataFrame, head: str) -> pd.DataFrame:
    return frame[frame[head].notna()]


def majority_predict(train: pd.DataFrame, texts: Sequence[str], head: str) -> list[str]:
    rows = labelled(train, head)
    model = DummyClassifier(strategy="most_frequent").fit(rows[["text"]], rows[head])
    return list(model.predict(pd.DataFrame({"text": list(texts)})))


def tfidf_predict(train: pd.DataFrame, texts: Sequence[str], head: str, seed: int = 0) -> list[str]:
    """Word uni+bigram TF-IDF with balanced logistic regression."""
    rows = labelled(train, head)
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
        LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed),
    )
    model.fit(rows["text"].tolist(), rows[head].tolist())
    return list(model.predict(list(texts)))


def vader_compound(texts: Sequence[str]) -> np.ndarray:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts])


def vader_predict(texts: Sequence[str], threshold: float = 0.05) -> list[str]:
    """VADER's own convention: compound >= 0.05 positive, <= -0.05 negative."""
    compound = vader_compound(texts)
    return ["positive" if c >= threshold else "negative" if c <= -threshold else "neutral"
            for c in compound]


def baseline_predictions(
    train: pd.DataFrame, texts: Sequence[str]
) -> dict[str, dict[str, list[str]]]:
    """``{baseline: {head: predictions}}`` for every baseline that applies to a head."""
    out: dict[str, dict[str, list[str]]] = {"majority": {}, "tfidf_logreg": {}, "vader": {}}
    for head in ("stance", "sentiment"):
        if labelled(train, head).empty:
            continue
        out["majority"][head] = majority_predict(train, texts, head)
        out["tfidf_logreg"][head] = tfidf_predict(train, texts, head)
    out["vader"]["sentiment"] = vader_predict(texts)
    return out
