"""The detente model: a two-headed transformer for stance and sentiment, and its inference API."""

from __future__ import annotations

from model.classifier import Classifier, Prediction
from model.config import DetenteConfig
from model.errors import ModelLoadError
from model.labels import SENTIMENT_LABELS, STANCE_LABELS
from model.modeling import DetenteModel, DetenteOutput
from model.persistence import load_model, save_model

__all__ = [
    "Classifier",
    "DetenteConfig",
    "DetenteModel",
    "DetenteOutput",
    "ModelLoadError",
    "Prediction",
    "SENTIMENT_LABELS",
    "STANCE_LABELS",
    "load_model",
    "save_model",
]
