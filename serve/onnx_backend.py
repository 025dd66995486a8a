"""ONNX Runtime inference: export, int8 quantization, a cache beside the weights.

Why: on CPU, ONNX Runtime runs the same graph about a third faster than eager PyTorch with
identical outputs, starts in half a second without loading torch weights, and its dynamic
int8 quantization is faster again. We use plain ``onnxruntime`` and the TorchScript
exporter (``torch.onnx.export(..., dynamo=False, opset_version=17)``) because optimum's
ONNX tooling cannot share an environment with Gradio 6.

The exported graph takes the tokenizer's inputs with dynamic batch and sequence axes and
returns the logits of both heads. It is traced with the encoder's eager attention (plain
MatMul/Softmax), not PyTorch's SDPA: SDPA's export adds IsNaN/Where guards and extra
reshapes around every attention block, and the eager graph ran 5-8 % faster in fp32 and
about 10 % faster as int8 on the default model (same outputs within 1e-5). The logits
are the same either way; the temperatures are applied afterwards exactly as in
``Classifier``. Every export is checked against torch on a padded batch (max abs logit
difference at most ``EXPORT_TOLERANCE``) before it is used.

Cache: ``<model>/onnx/`` (or, for a read-only model folder, ``$DETENTE_HOME/onnx-cache/
<hash>/``) holds ``model.fp32.onnx``, ``model.int8-<tag>.onnx`` and ``cache.json`` with
the content hash of the weights they came from and ``GRAPH_FORMAT``, the version of the
way graphs are exported. A model whose weights changed, or a cache written by an older
export, is exported again; ``selection.json`` (written by ``serve.backends.select_backend``, which
``detente train`` runs on the validation split) records which backend ``--backend auto``
should use for exactly these weights, with the measurements behind the choice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model.classifier import softmax
from model.config import DetenteConfig
from model.errors import OnnxError
from model.tokenization import length_sorted_batches

CACHE_DIR = "onnx"
CACHE_INDEX = "cache.json"
SELECTION_FILE = "selection.json"
FP32_FILE = "model.fp32.onnx"
OPSET = 17
# Bumped whenever the export changes the graph or the session runs it differently (2: eager
# attention; 3: no SkipLayerNormFusion), so caches and backend selections measured on older
# graphs are rebuilt instead of trusted.
GRAPH_FORMAT = 3
# ONNX Runtime graph rewrites we turn off. SkipLayerNormFusion (residual Add + LayerNorm as
# one SkipLayerNormalization kernel) fires on the int8 graphs, and that kernel was slower
# than the two ops it replaces: with it off, int8 ran 842 -> 950 statements/s on the default
# model (ORT 1.32, 2 AMD EPYC cores, quiet); fp32 graphs, where it does not fire, unchanged.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
EXPORT_TOLERANCE = 1e-4
OUTPUT_NAMES = ("stance_logits", "sentiment_logits")
INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# Padded batches of different sizes and lengths: the export must trace the masked path
# (a batch without padding lets transformers skip the mask) and is verified on another.
EXPORT_SAMPLE = ["Talks resume on Monday in Geneva, the envoy said.", "Ceasefire now."]
VERIFY_SAMPLE = [
    "We are ready to talk.",
    "The ministry accused the rebels of shelling the airport for the third night in a row.",
    "No.",
]


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


# ----------------------------------------------------------------------------- cache


def cache_dir(model_dir: Path, weights_version: str) -> Path:
    """``<model>/onnx``, or a per-hash folder under DETENTE_HOME when that is not writable."""
    preferred = model_dir / CACHE_DIR
    try:
        preferred.mkdir(exist_ok=True)
        probe = preferred / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return preferred
    except OSError:
        from model.paths import detente_home

        fallback = detente_home() / "onnx-cache" / weights_version
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def _read_index(folder: Path, weights_version: str) -> dict:
    """The cache index; a stale one (other weights, older export) empties the cache first."""
    path = folder / CACHE_INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        index = {}
    if not _is_current(index, weights_version):
        for stale in folder.glob("*.onnx"):
            stale.unlink(missing_ok=True)
        (folder / SELECTION_FILE).unlink(missing_ok=True)
        index = {"weights_hash": weights_version, "graph_format": GRAPH_FORMAT, "files": {}}
        _write_json(path, index)
    return index


def _is_current(record: dict, weights_version: str) -> bool:
    """Whether a cache index or selection was made for these weights by this export."""
    return (record.get("weights_hash") == weights_version
            and record.get("graph_format") == GRAPH_FORMAT)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _register(folder: Path, weights_version: str, name: str, info: dict) -> None:
    index = _read_index(folder, weights_version)
    index["files"][name] = info
    _write_json(folder / CACHE_INDEX, index)


def _cached(folder: Path, weights_version: str, name: str) -> Path | None:
    index = _read_index(folder, weights_version)
    path = folder / name
    return path if name in index["files"] and path.is_file() else None


def ensure_fp32(model_dir: Path, weights_version: str) -> Path:
    """The fp32 graph of this model, exported (and verified) on first use."""
    folder = cache_dir(model_dir, weights_version)
    cached = _cached(folder, weights_version, FP32_FILE)
    if cached:
        return cached
    target = folder / FP32_FILE
    max_diff = export_onnx(model_dir, target)
    _register(folder, weights_version, FP32_FILE, {"opset": OPSET, "max_abs_diff": max_diff})
    return target


def ensure_int8(model_dir: Path, weights_version: str, config: Int8Config) -> Path:
    """The dynamically quantized graph for ``config``, built from the fp32 one on first use."""
    fp32 = ensure_fp32(model_dir, weights_version)
    folder = fp32.parent
    name = f"model.int8-{config.tag()}.onnx"
    cached = _cached(folder, weights_version, name)
    if cached:
        return cached
    quantize_int8(fp32, folder / name, config)
    _register(folder, weights_version, name, config.to_dict())
    return folder / name


def store_int8(model_dir: Path, weights_version: str, config: Int8Config, built: Path) -> Path:
    """Move a graph quantized elsewhere (``select_backend``'s candidates) into the cache."""
    folder = cache_dir(model_dir, weights_version)
    name = f"model.int8-{config.tag()}.onnx"
    _read_index(folder, weights_version)
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    shutil.copyfile(built, tmp)
    os.replace(tmp, folder / name)
    _register(folder, weights_version, name, config.to_dict())
    return folder / name


def read_selection(model_dir: Path, weights_version: str) -> dict | None:
    """The benchmarked backend choice for these exact weights, or None."""
    for folder in (model_dir / CACHE_DIR, _fallback_dir(weights_version)):
        path = folder / SELECTION_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if _is_current(data, weights_version):
            return data
    return None


def write_selection(model_dir: Path, weights_version: str, selection: dict) -> Path:
    folder = cache_dir(model_dir, weights_version)
    path = folder / SELECTION_FILE
    _write_json(path, {"weights_hash": weights_version, "graph_format": GRAPH_FORMAT,
                       **selection})
    return path


def _fallback_dir(weights_version: str) -> Path:
    from model.paths import detente_home

    return detente_home() / "onnx-cache" / weights_version


# ----------------------------------------------------------------------------- export


def _input_names(tokenizer) -> list[str]:
    names = set(tokenizer.model_input_names)
    return [name for name in INPUT_ORDER if name in names]


def export_onnx(model_dir: Path, target: Path) -> float:
    """Export both heads' logits with dynamic axes; returns the verified max abs difference."""
    from model.persistence import load_model

    model, tokenizer = load_model(model_dir)
    _use_eager_attention(model)
    names = _input_names(tokenizer)
    wrapper = TwoHeadLogits(model, names).eval()
    sample = tokenizer(EXPORT_SAMPLE, padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in OUTPUT_NAMES})
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, tuple(sample[n] for n in names), str(tmp), input_names=names,
                output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET,
                dynamo=False, do_constant_folding=True,
            )
        max_diff = _verify(tmp, wrapper, tokenizer, names)
    except OnnxError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # the exporter raises many kinds; the user needs one
        tmp.unlink(missing_ok=True)
        raise OnnxError(f"could not export {model_dir} to ONNX: {err}") from err
    os.replace(tmp, target)
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
        raise OnnxError(
            f"the exported ONNX graph differs from torch by {diff:.2e} (limit "
            f"{EXPORT_TOLERANCE:g}); use --backend torch"
        )
    return diff


# ----------------------------------------------------------------------------- int8


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
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)  # its advice to pre-process goes to the root log
            quantize_dynamic(
                fp32, tmp, weight_type=QuantType.QInt8, per_channel=config.per_channel,
                nodes_to_exclude=exclude, op_types_to_quantize=["MatMul", "Gemm"],
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise OnnxError(f"could not quantize {fp32}: {err}") from err
    finally:
        logging.disable(logging.NOTSET)
    os.replace(tmp, target)


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
    reference = OnnxBackend(make_session(fp32), tokenizer, config, "fp32", "onnx")
    ref_probs = reference.predict_proba(list(texts), batch_size)[0]
    work.mkdir(parents=True, exist_ok=True)
    scores = []
    for node in nodes:
        others = tuple(n for n in nodes if n != node)
        path = work / "single.onnx"
        quantize_int8(fp32, path, Int8Config(per_channel, others))
        backend = OnnxBackend(make_session(path), tokenizer, config, "probe", "onnx-int8")
        probs = backend.predict_proba(list(texts), batch_size)[0]
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
    layer; nodes whose name has no layer number are not weighted). On the default model
    this moved the ranking from the FFN products of the middle layers to the first layers,
    and the 6 top nodes in fp32 then kept 99.5 % of the stance labels (0.17 macro-F1
    points lost) where the 12 top unweighted ones were needed for the same agreement.
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


# ----------------------------------------------------------------------------- running


def default_threads() -> int:
    """The cores, unless the user chose a number with OMP_NUM_THREADS."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, os.cpu_count() or 1)


def spinning_default() -> bool:
    """Whether ONNX Runtime's idle intra-op threads spin: no, unless DETENTE_ORT_SPIN=1."""
    return os.environ.get("DETENTE_ORT_SPIN", "0").strip().lower() in ("1", "true", "yes")


def make_session(path: Path, threads: int | None = None, *, spin: bool | None = None):
    """A CPU session: one intra-op thread per core, sequential, every graph optimisation
    but ``DISABLED_OPTIMIZERS``.

    The intra-op threads block when idle instead of spinning (``spin``; default from
    ``DETENTE_ORT_SPIN``). With as many threads as cores, spinning threads take the cores
    the Python thread needs between runs (tokenizing, reading and writing chunks) and,
    on a shared machine, from other processes: measured on 2 busy cores (load average
    about 5), ONNX fp32 ran 119 statements/s without spinning against 77 with it and
    single-statement p50 was 12 ms against 22 ms; on the same cores when quiet the two were
    within noise of each other (``benchmarks/score_throughput.py --onnx-sweep``).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = spinning_default() if spin is None else spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=list(DISABLED_OPTIMIZERS))
    except Exception as err:
        raise OnnxError(f"ONNX Runtime cannot load {path}: {err}") from err


class OnnxBackend:
    """Length-sorted, dynamically padded batches through an ONNX Runtime session."""

    def __init__(self, session, tokenizer, config: DetenteConfig, version: str, name: str):
        self.session = session
        self.tokenizer = tokenizer
        self.config = config
        self.model_version = version
        self.name = name
        self._inputs = [i.name for i in session.get_inputs()]

    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(texts)
        stance = np.zeros((n, len(self.config.stance_labels)), dtype=np.float32)
        sentiment = np.zeros((n, len(self.config.sentiment_labels)), dtype=np.float32)
        for rows, batch in length_sorted_batches(
            texts, self.tokenizer, max_length=self.config.max_seq_length, batch_size=batch_size
        ):
            feed = {name: batch[name].numpy().astype(np.int64) for name in self._inputs}
            stance[rows], sentiment[rows] = self.session.run(list(OUTPUT_NAMES), feed)
        return stance, sentiment

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        stance, sentiment = self.predict_logits(texts, batch_size)
        return (
            softmax(stance / self.config.stance_temperature),
            softmax(sentiment / self.config.sentiment_temperature),
        )

    def describe(self) -> dict:
        return {"backend": self.name, "model_version": self.model_version}

