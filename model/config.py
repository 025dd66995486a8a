"""Configuration of the two-headed model, saved as config.json next to the weights."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PreTrainedConfig

from model.labels import SENTIMENT_LABELS, STANCE_LABELS


class DetenteConfig(PreTrainedConfig):
    """Holds the base encoder's own config as a plain dict plus everything the heads need.

    Keeping the encoder config nested (rather than subclassing BertConfig) is what lets any
    BERT-like encoder sit under the heads: the encoder is rebuilt with ``AutoConfig.for_model``.
    The two temperatures are fitted on the validation split after training (calibration) and
    applied by every consumer of the logits, so they live with the weights.
    """

    model_type = "detente"

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        stance_labels: list[str] | tuple[str, ...] = STANCE_LABELS,
        sentiment_labels: list[str] | tuple[str, ...] = SENTIMENT_LABELS,
        pooling: str = "mean",
        max_seq_length: int = 128,
        classifier_dropout: float = 0.1,
        stance_temperature: float = 1.0,
        sentiment_temperature: float = 1.0,
        base_model: str | None = None,
        **kwargs: Any,
    ) -> None:
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.encoder = dict(encoder or {})
        self.stance_labels = list(stance_labels)
        self.sentiment_labels = list(sentiment_labels)
        self.pooling = pooling
        self.max_seq_length = int(max_seq_length)
        self.classifier_dropout = float(classifier_dropout)
        self.stance_temperature = float(stance_temperature)
        self.sentiment_temperature = float(sentiment_temperature)
        self.base_model = base_model
        super().__init__(**kwargs)

    def encoder_config(self) -> PreTrainedConfig:
        """The base encoder's config object, rebuilt from the stored dict."""
        if "model_type" not in self.encoder:
            raise ValueError("DetenteConfig.encoder has no 'model_type'; the config is incomplete")
        return AutoConfig.for_model(**self.encoder)

    def labels_of(self, head: str) -> list[str]:
        return self.stance_labels if head == "stance" else self.sentiment_labels

    def temperature_of(self, head: str) -> float:
        return self.stance_temperature if head == "stance" else self.sentiment_temperature
