"""What every backend offers, and the one thread default they share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from transformers import PreTrainedTokenizerBase

from model.config import DetenteConfig

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


class Backend(Protocol):
    """Runs the encoder and both heads: texts in, raw logits out, in input order.

    A backend reads each text as one window (truncated at ``max_seq_length``); splitting
    long texts into windows and calibrating happen once, above it, in ``Classifier``.
    """

    name: str
    tokenizer: PreTrainedTokenizerBase
    config: DetenteConfig
    model_version: str | None

    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]: ...


def default_threads() -> int:
    """Intra-op threads: every core, unless the user chose a number with OMP_NUM_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, os.cpu_count() or 1)
