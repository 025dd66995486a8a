"""Exporting a model folder to an ONNX graph, checked against torch before it is used.

The graph takes the tokenizer's inputs with dynamic batch and sequence axes and returns
both heads' logits. It uses the TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``) because optimum's ONNX tooling cannot share an environment with Gradio 6,
and it is traced with the encoder's eager attention (plain MatMul/Softmax), which runs
faster than SDPA's export on CPU (``benchmarks/results/notes_from_code.md``). Every export
is compared with torch on a padded batch (``EXPORT_TOLERANCE``) before it is used.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model.backends.onnx_runtime import OUTPUT_NAMES, make_session
from model.errors import BackendError
from model.files import atomic_path
from model.persistence import load_model

OPSET = 17
EXPORT_TOLERANCE = 1e-4
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# Padded batches of different sizes and lengths: the export must trace the masked path
# (a batch without padding lets transformers skip the mask) and is verified on another.
EXPORT_SAMPLE = ["Talks resume on Monday in Geneva, the envoy said.", "Ceasefire now."]
VERIFY_SAMPLE = [
    "We are ready to talk.",
    "The ministry accused the rebels of shelling the airport for the third night in a row.",
    "No.",
]


def _input_names(tokenizer) -> list[str]:
    names = set(tokenizer.model_input_names)
    return [name for name in INPUT_ORDER if name in names]


def export_onnx(model_dir: Path, target: Path) -> float:
    """Export both heads' logits with dynamic axes; returns the verified max abs difference."""
    model, tokenizer = load_model(model_dir)
    _use_eager_attention(model)
    names = _input_names(tokenizer)
    wrapper = TwoHeadLogits(model, names).eval()
    sample = tokenizer(EXPORT_SAMPLE, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in OUTPUT_NAMES})
    try:
        with atomic_path(target, durable=False) as tmp, warnings.catch_warnings(), \
                torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, tuple(sample[n] for n in names), str(tmp), input_names=names,
                output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET,
                dynamo=False, do_constant_folding=True,
            )
            max_diff = _verify(tmp, wrapper, tokenizer, names)
    except BackendError:
        raise
    except Exception as err:  # the exporter raises many kinds; the user needs one
        raise BackendError(f"could not export {model_dir} to ONNX: {err}") from err
    return max_diff


def _use_eager_attention(model: torch.nn.Module) -> None:
    """Trace plain attention ops (see the module docstring); a no-op for encoders without it."""
    encoder = getattr(model, "encoder", None)
    setter = getattr(encoder, "set_attn_implementation", None)
    if setter is None:
        return
    try:
        setter("eager")
    except (ValueError, ImportError) as err:  # an encoder with only one implementation
        logging.getLogger("detente.score").info("exporting with default attention: %s", err)


class TwoHeadLogits(torch.nn.Module):
    """The model as the graph sees it: tokenizer tensors in, both heads' logits out."""

    def __init__(self, model: torch.nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**dict(zip(self.input_names, inputs)))
        return out.stance_logits, out.sentiment_logits


def _verify(path: Path, wrapper, tokenizer, names: list[str]) -> float:
    """Max abs logit difference between the graph and torch on a padded batch."""
    batch = tokenizer(VERIFY_SAMPLE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = [t.numpy() for t in wrapper(*(batch[n] for n in names))]
    session = make_session(path, threads=1)
    got = session.run(list(OUTPUT_NAMES), {n: batch[n].numpy().astype(np.int64) for n in names})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
    if not diff <= EXPORT_TOLERANCE:
        raise BackendError(
            f"the exported ONNX graph differs from torch by {diff:.2e} (limit "
            f"{EXPORT_TOLERANCE:g}); use --backend torch"
        )
    return diff

