"""The PyTorch backend: the reference every other backend is measured against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from model.modeling import DetenteModel
from model.tokenization import length_sorted_batches


class TorchBackend:
    """Length-sorted batches with dynamic padding, in inference mode, on the model's device."""

    name = "torch"

    def __init__(
        self, model: DetenteModel, tokenizer: PreTrainedTokenizerBase,
        model_version: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.model_version = model_version

    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(texts)
        stance = np.zeros((n, len(self.config.stance_labels)), dtype=np.float32)
        sentiment = np.zeros((n, len(self.config.sentiment_labels)), dtype=np.float32)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for rows, batch in length_sorted_batches(
                texts, self.tokenizer, max_length=self.config.max_seq_length, batch_size=batch_size
            ):
                out = self.model(**{k: v.to(device) for k, v in batch.items()})
                stance[rows] = out.stance_logits.float().cpu().numpy()
                sentiment[rows] = out.sentiment_logits.float().cpu().numpy()
        return stance, sentiment
