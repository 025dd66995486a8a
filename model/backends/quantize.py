"""Dynamic int8 quantization, and ranking which MatMuls int8 hurts most.

Int8 is faster but moves some labels; the MatMuls it hurts most can stay in fp32. Two
rankings find them: a cheap simulation of ONNX Runtime's int8 arithmetic
(``rank_by_quantization_error``) and a measurement of one quantized node at a time
(``rank_sensitive_nodes``). ``training.backend_selection`` uses both to choose ``auto``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.backends.base import default_threads
from model.backends.onnx_runtime import open_session
from model.config import DetenteConfig
from model.errors import BackendError
from model.files import atomic_path
from model.probabilities import calibrated
from model.tokenization import length_sorted_batches


@dataclass(frozen=True)
class Int8Config:
    """How to quantize: per-channel weight scales, and which MatMul/Gemm nodes stay fp32.

    The heads always stay fp32: they are tiny (hidden x 3) and sit right on the labels.
    """

    per_channel: bool = True
    exclude: tuple[str, ...] = field(default_factory=tuple)

    def tag(self) -> str:
        """A short, stable name for the cache file of this configuration."""
        payload = json.dumps({"pc": self.per_channel, "ex": sorted(self.exclude)})
        kind = "pc" if self.per_channel else "pt"
        return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"

    def to_dict(self) -> dict:
        return {"per_channel": self.per_channel, "exclude": list(self.exclude)}

    @classmethod
    def from_dict(cls, data: dict | None) -> Int8Config:
        data = data or {}
        return cls(bool(data.get("per_channel", True)), tuple(data.get("exclude", ())))


def quantizable_nodes(path: Path) -> list[str]:
    """MatMul/Gemm nodes with a constant weight: what dynamic quantization can touch."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {init.name for init in graph.initializer}
    return [
        node.name for node in graph.node
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1
        and node.input[1] in constants
    ]


def head_nodes(nodes: Sequence[str]) -> list[str]:
    return [name for name in nodes if "stance_head" in name or "sentiment_head" in name]


def quantize_int8(fp32: Path, target: Path, config: Int8Config) -> None:
    """Dynamic int8 weights (activations quantized on the fly), heads and exclusions fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = quantizable_nodes(fp32)
    exclude = set(head_nodes(nodes)) | set(config.exclude)
    # quantize_dynamic first rewrites each Gemm as "<name>_MatMul" + "<name>_Add".
    exclude = sorted(exclude | {f"{name}_MatMul" for name in exclude})
    try:
        with atomic_path(target, durable=False) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)  # its advice to pre-process goes to the root log
            quantize_dynamic(
                fp32, tmp, weight_type=QuantType.QInt8, per_channel=config.per_channel,
                nodes_to_exclude=exclude, op_types_to_quantize=["MatMul", "Gemm"],
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as err:
        raise BackendError(f"could not quantize {fp32}: {err}") from err
    finally:
        logging.disable(logging.NOTSET)


def rank_sensitive_nodes(
    fp32: Path, tokenizer, config: DetenteConfig, texts: Sequence[str], work: Path,
    *, per_channel: bool = True, batch_size: int = 32, candidates: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """Encoder nodes by how much quantizing that node alone moves the stance probabilities.

    The score is the mean absolute change of the stance probabilities against fp32 on
    ``texts``; the largest scores are the nodes worth keeping in fp32. One quantization
    and one pass over ``texts`` per node (about a second each for MiniLM), so
    ``candidates`` limits it to a shortlist (default: every encoder MatMul/Gemm).
    """
    quantizable = quantizable_nodes(fp32)
    nodes = [n for n in quantizable if n not in head_nodes(quantizable)]
    if candidates is not None:
        nodes = [n for n in nodes if n in set(candidates)]
    reference = open_session(fp32, tokenizer, config, "fp32", "onnx")
    ref_probs = _stance_probs(reference, texts, batch_size)
    work.mkdir(parents=True, exist_ok=True)
    scores = []
    for node in nodes:
        others = tuple(n for n in nodes if n != node)
        path = work / "single.onnx"
        quantize_int8(fp32, path, Int8Config(per_channel, others))
        backend = open_session(path, tokenizer, config, "probe", "onnx-int8")
        probs = _stance_probs(backend, texts, batch_size)
        scores.append((node, float(np.abs(probs - ref_probs).mean())))
    shutil.rmtree(work, ignore_errors=True)
    return sorted(scores, key=lambda item: -item[1])


LAYER_INDEX = re.compile(r"layers?[._/](\d+)[./]")


def rank_by_quantization_error(
    fp32: Path, tokenizer, texts: Sequence[str], *, per_channel: bool = True,
    batch_size: int = 32, max_length: int = 128, rows_per_batch: int = 256, seed: int = 0,
    depth_weighted: bool = True,
) -> list[tuple[str, float]]:
    """Encoder MatMuls by the output error dynamic int8 gives them, largest first.

    A cheap stand-in for ``rank_sensitive_nodes`` (one quantization per node): one fp32
    pass over ``texts`` records each MatMul's input, then for every node the int8 product
    is simulated as ONNX Runtime computes it (activations: per-tensor asymmetric uint8 over
    the whole padded batch, as ``DynamicQuantizeLinear`` does; weights: symmetric int8,
    per output channel when ``per_channel``) on a sample of real (unpadded) token rows, and
    scored by ``||XW - Q(X)Q(W)|| / ||XW||``. Seconds instead of minutes for MiniLM.

    ``depth_weighted``: an error made in layer ``i`` of ``n`` is carried through the
    ``n - i - 1`` layers after it, so the score is multiplied by ``n - i`` (1 in the last
    layer; nodes whose name has no layer number are not weighted); why it helps is
    measured in ``benchmarks/results/notes_from_code.md``.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    names = quantizable_nodes(fp32)
    nodes = [n for n in graph.node if n.name in set(names) - set(head_nodes(names))
             and n.op_type == "MatMul"]
    activations = sorted({node.input[0] for node in nodes})
    for name in activations:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = default_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(seed)
    samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in activations}
    for _rows, batch in length_sorted_batches(
        texts, tokenizer, max_length=max_length, batch_size=batch_size
    ):
        feed = {name: batch[name].numpy().astype(np.int64) for name in inputs}
        real = batch["attention_mask"].numpy().reshape(-1).astype(bool)
        for name, value in zip(activations, session.run(activations, feed)):
            flat = value.reshape(-1, value.shape[-1])
            scale, zero = _uint8_params(flat)
            rows = flat[real] if len(flat) == len(real) else flat
            pick = rows[rng.choice(len(rows), size=min(rows_per_batch, len(rows)),
                                   replace=False)]
            quantized = (np.clip(np.round(pick / scale) + zero, 0, 255) - zero) * scale
            samples[name].append((pick, quantized.astype(np.float32)))
    scores = []
    for node in nodes:
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        axis = 0 if per_channel else None
        wscale = np.abs(weight).max(axis=axis, keepdims=per_channel) / 127
        wscale = np.where(wscale == 0, 1.0, wscale).astype(np.float32)
        wq = np.clip(np.round(weight / wscale), -127, 127) * wscale
        error = total = 0.0
        for x, xq in samples[node.input[0]]:
            exact = x @ weight
            diff = exact - xq @ wq
            error += float((diff * diff).sum())
            total += float((exact * exact).sum())
        scores.append((node.name, (error / total) ** 0.5 if total > 0 else 0.0))
    if depth_weighted:
        scores = _weight_by_depth(scores)
    return sorted(scores, key=lambda item: -item[1])


def _weight_by_depth(scores: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Multiply each score by the number of layers from its node's layer to the output."""
    layers = {name: LAYER_INDEX.search(name) for name, _ in scores}
    found = [int(m.group(1)) for m in layers.values() if m]
    if not found:
        return scores
    count = max(found) + 1
    return [(name, score * (count - int(layers[name].group(1))) if layers[name] else score)
            for name, score in scores]


def _uint8_params(values: np.ndarray) -> tuple[np.float32, np.float32]:
    """Scale and zero point of ``DynamicQuantizeLinear`` (range always includes 0)."""
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (high - low) / 255 or 1.0
    return np.float32(scale), np.float32(np.clip(np.round(-low / scale), 0, 255))




def _stance_probs(backend, texts: Sequence[str], batch_size: int) -> np.ndarray:
    return calibrated(*backend.predict_logits(list(texts), batch_size), backend.config)[0]
