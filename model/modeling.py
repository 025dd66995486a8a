"""The multi-task model: one BERT-like encoder, mean pooling, a stance head and a sentiment head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.utils import ModelOutput

from model.config import DetenteConfig
from model.labels import HEADS

IGNORE_INDEX = -100


@dataclass
class DetenteOutput(ModelOutput):
    """What ``DetenteModel.forward`` returns; ``loss`` first so the HF Trainer finds it."""

    loss: torch.Tensor | None = None
    stance_logits: torch.Tensor | None = None
    sentiment_logits: torch.Tensor | None = None


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the attention mask keeps (padding does not dilute)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def head_loss(
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    weight: torch.Tensor | None,
    soft_targets: torch.Tensor | None = None,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Cross-entropy over the rows that carry a label for this head; None when none do.

    A row's label is either a class index (``labels``; -100 for none) or, where a row has one,
    a distribution over the classes (``soft_targets``; all zeros for none), e.g. the share of
    20 human raters who found a sentence negative, neutral or positive: a graded target that
    a single label would flatten. A soft target wins over an index on the same row.
    ``row_weights`` scale rows (a source measuring a nearby construct counts less). Plain
    ``cross_entropy`` would return NaN for a batch with no labelled row, so such a head
    contributes nothing instead.
    """
    n = logits.shape[0]
    has_soft = (soft_targets.sum(dim=-1) > 0) if soft_targets is not None else (
        torch.zeros(n, dtype=torch.bool, device=logits.device))
    hard = (labels != IGNORE_INDEX) & ~has_soft if labels is not None else (
        torch.zeros(n, dtype=torch.bool, device=logits.device))
    if not bool(hard.any()) and not bool(has_soft.any()):
        return None
    rows = row_weights.to(logits.dtype) if row_weights is not None else logits.new_ones(n)
    if weight is not None:
        weight = weight.to(logits.device, logits.dtype)
    numerator = logits.new_zeros(())
    denominator = logits.new_zeros(())
    if bool(hard.any()):
        # Same value as cross_entropy(..., weight) with mean reduction when rows weigh 1.
        targets = labels[hard]
        per_row = nn.functional.cross_entropy(logits[hard], targets, weight=weight,
                                              reduction="none")
        class_weight = weight[targets] if weight is not None else torch.ones_like(per_row)
        numerator = numerator + (rows[hard] * per_row).sum()
        denominator = denominator + (rows[hard] * class_weight).sum()
    if bool(has_soft.any()):
        log_probs = nn.functional.log_softmax(logits[has_soft], dim=-1)
        targets = soft_targets[has_soft].to(logits.dtype)
        targets = targets / targets.sum(dim=-1, keepdim=True)
        numerator = numerator - (rows[has_soft] * (targets * log_probs).sum(dim=-1)).sum()
        denominator = denominator + rows[has_soft].sum()
    return numerator / denominator.clamp(min=1e-9)


class DetenteModel(PreTrainedModel):
    """Encoder + two linear heads, trained with the sum of the heads' losses."""

    config_class = DetenteConfig
    base_model_prefix = "detente"
    supports_gradient_checkpointing = True

    def __init__(self, config: DetenteConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder_config())
        # The encoder's own pooler is unused (we pool ourselves); dropping it keeps DDP from
        # complaining about parameters without gradients and saves a matrix in the file.
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.stance_head = nn.Linear(hidden, len(config.stance_labels))
        self.sentiment_head = nn.Linear(hidden, len(config.sentiment_labels))
        # Class weights for the loss, set by training; not part of the saved model.
        self.loss_weights: dict[str, torch.Tensor | None] = dict.fromkeys(HEADS)
        self.head_loss_weights: dict[str, float] = dict.fromkeys(HEADS, 1.0)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BERT-style initialisation; pretrained weights are loaded over it afterwards."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_base_encoder(
        cls,
        base_model: str | Path,
        *,
        local_files_only: bool = True,
        allow_pickle: bool = False,
        **config_kwargs,
    ) -> DetenteModel:
        """A fresh model on top of a pretrained encoder (a local folder or a Hub id).

        The heads start random; the encoder weights are copied in after construction so that
        weight initialisation can never overwrite them. Only safetensors weights load unless
        ``allow_pickle`` (a pickled ``pytorch_model.bin`` can run code when loaded).
        """
        encoder_config = AutoConfig.from_pretrained(base_model, local_files_only=local_files_only)
        config = DetenteConfig(
            encoder=encoder_config.to_dict(), base_model=str(base_model), **config_kwargs
        )
        model = cls(config)
        pretrained = AutoModel.from_pretrained(
            base_model, local_files_only=local_files_only,
            use_safetensors=None if allow_pickle else True,
        )
        missing, _unexpected = model.encoder.load_state_dict(pretrained.state_dict(), strict=False)
        missing = [k for k in missing if not k.startswith("pooler.")]
        if missing:
            raise ValueError(f"base encoder {base_model} lacks weights: {missing[:5]} ...")
        for head in (model.stance_head, model.sentiment_head):
            nn.init.normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
        return model

    def pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The sentence vector the heads read (mean or [CLS] pooling)."""
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if inputs_embeds is not None:
            kwargs["inputs_embeds"] = inputs_embeds
        else:
            kwargs["input_ids"] = input_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        if self.config.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        stance_labels: torch.Tensor | None = None,
        sentiment_labels: torch.Tensor | None = None,
        sentiment_soft_labels: torch.Tensor | None = None,
        row_weights: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **_: object,
    ) -> DetenteOutput:
        if attention_mask is None:
            source = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(source.shape[:2], dtype=torch.long, device=source.device)
        pooled = self.dropout(self.pooled(input_ids, attention_mask, token_type_ids, inputs_embeds))
        stance_logits = self.stance_head(pooled)
        sentiment_logits = self.sentiment_head(pooled)
        losses = []
        for head, logits, labels, soft in (
            ("stance", stance_logits, stance_labels, None),
            ("sentiment", sentiment_logits, sentiment_labels, sentiment_soft_labels),
        ):
            loss = head_loss(logits, labels, self.loss_weights.get(head), soft, row_weights)
            if loss is not None:
                losses.append(self.head_loss_weights.get(head, 1.0) * loss)
        loss = torch.stack(losses).sum() if losses else None
        if loss is None and any(x is not None for x in (
                stance_labels, sentiment_labels, sentiment_soft_labels)):
            # Labels were given but no row carried one: a zero that still has a graph.
            loss = (stance_logits.sum() + sentiment_logits.sum()) * 0.0
        return DetenteOutput(
            loss=loss, stance_logits=stance_logits, sentiment_logits=sentiment_logits
        )


# Registering makes ``AutoModel.from_pretrained(folder)`` work once ``model`` is imported,
# without trust_remote_code.
AutoConfig.register(DetenteConfig.model_type, DetenteConfig, exist_ok=True)
AutoModel.register(DetenteConfig, DetenteModel, exist_ok=True)
