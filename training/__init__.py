"""Training, evaluation and retraining of detente models, with data loading and checks."""

from __future__ import annotations
