from __future__ import annotations

import pytest
import torch

from model import DetenteModel, load_model
from model.modeling import IGNORE_INDEX


def _batch(tokenizer, texts):
    return tokenizer(texts, padding=True, return_tensors="pt")


def test_forward_returns_both_heads_and_summed_loss(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    batch = _batch(tokenizer, ["We are ready to talk.", "They shelled the town."])
    out = model(**batch, stance_labels=torch.tensor([0, 1]), sentiment_labels=torch.tensor([2, 0]))
    assert out.stance_logits.shape == (2, 3)
    assert out.sentiment_logits.shape == (2, 3)
    stance_only = model(**batch, stance_labels=torch.tensor([0, 1])).loss
    sentiment_only = model(**batch, sentiment_labels=torch.tensor([2, 0])).loss
    torch.testing.assert_close(out.loss, stance_only + sentiment_only)


def test_rows_without_a_head_label_contribute_nothing(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    batch = _batch(tokenizer, ["We are ready to talk.", "They shelled the town."])
    only_first = model(**batch, stance_labels=torch.tensor([0, IGNORE_INDEX]))
    first_row = {k: v[:1] for k, v in batch.items()}
    alone = model(**first_row, stance_labels=torch.tensor([0]))
    torch.testing.assert_close(only_first.loss, alone.loss, rtol=1e-4, atol=1e-5)
    # A batch where no row has any label still gives a finite, differentiable loss.
    none = model(**batch, stance_labels=torch.tensor([IGNORE_INDEX, IGNORE_INDEX]))
    assert torch.isfinite(none.loss)


def test_padding_does_not_change_the_pooled_vector(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    short = _batch(tokenizer, ["Talks resume."])
    padded = tokenizer(["Talks resume.", "A much longer statement about the border war and "
                        "the ceasefire agreed in the capital."], padding=True, return_tensors="pt")
    a = model(**short).stance_logits[0]
    b = model(**padded).stance_logits[0]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_from_base_encoder_keeps_pretrained_weights(tiny_encoder_dir):
    from transformers import AutoModel

    model = DetenteModel.from_base_encoder(tiny_encoder_dir)
    base = AutoModel.from_pretrained(tiny_encoder_dir)
    torch.testing.assert_close(
        model.encoder.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight
    )


def test_soft_targets_and_row_weights_in_the_sentiment_loss():
    """A graded target is soft cross-entropy; weights scale rows; one-hot soft = hard label."""
    import torch
    from torch import nn

    from model.modeling import head_loss

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 0.0, 3.0]])
    hard = torch.tensor([0, 1, 2])
    plain = head_loss(logits, hard, None)
    assert plain == pytest.approx(nn.functional.cross_entropy(logits, hard).item())
    one_hot = nn.functional.one_hot(hard, 3).float()
    assert head_loss(logits, torch.full((3,), -100), None, one_hot) == pytest.approx(plain.item())
    # the soft target wins over the hard label on the same row
    shares = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 0.0]])
    mixed = head_loss(logits, hard, None, shares)
    expected = (nn.functional.cross_entropy(logits[[0, 2]], hard[[0, 2]], reduction="sum")
                - (shares[1] * logits[1].log_softmax(-1)).sum()) / 3
    assert mixed == pytest.approx(expected.item(), rel=1e-5)
    # a row of weight 0 does not count, whatever its label
    weights = torch.tensor([1.0, 0.0, 1.0])
    weighted = head_loss(logits, torch.tensor([0, 0, 2]), None, None, weights)
    assert weighted == pytest.approx(
        nn.functional.cross_entropy(logits[[0, 2]], hard[[0, 2]]).item(), rel=1e-5)
    # class weights keep torch's weighted-mean definition
    class_weights = torch.tensor([1.0, 2.0, 0.5])
    assert head_loss(logits, hard, class_weights) == pytest.approx(
        nn.functional.cross_entropy(logits, hard, weight=class_weights).item(), rel=1e-5)
