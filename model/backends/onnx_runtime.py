"""ONNX Runtime sessions and the ONNX backend: the exported graph, run on CPU.

Why ONNX Runtime: on CPU it runs the same graph faster than eager PyTorch with the same
outputs (within ``export.EXPORT_TOLERANCE``), starts without loading torch weights, and its
dynamic int8 quantization is faster again. The measurements are in
``benchmarks/results/`` (``scoring_speed.md``, ``score_throughput.md``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from model.backends.base import default_threads
from model.config import DetenteConfig
from model.errors import BackendError
from model.tokenization import length_sorted_batches

OUTPUT_NAMES = ("stance_logits", "sentiment_logits")
# ONNX Runtime rewrites turned off: SkipLayerNormFusion made the int8 graphs slower (the
# measurement is in benchmarks/results/notes_from_code.md).
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


def spinning_default() -> bool:
    """Whether ONNX Runtime's idle intra-op threads spin: no, unless DETENTE_ORT_SPIN=1."""
    return os.environ.get("DETENTE_ORT_SPIN", "0").strip().lower() in ("1", "true", "yes")


def make_session(path: Path, threads: int | None = None, *, spin: bool | None = None):
    """A CPU session: one intra-op thread per core, sequential, every graph optimisation
    but ``DISABLED_OPTIMIZERS``.

    Idle intra-op threads block instead of spinning (``spin``; default from
    ``DETENTE_ORT_SPIN``) so that they leave the cores to the Python thread (tokenizing,
    reading and writing chunks) and to other processes; measured in
    ``benchmarks/results/notes_from_code.md``.
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
        raise BackendError(f"ONNX Runtime cannot load {path}: {err}") from err


class OnnxBackend:
    """Length-sorted, dynamically padded batches through an ONNX Runtime session."""

    def __init__(
        self, session, tokenizer: PreTrainedTokenizerBase, config: DetenteConfig,
        version: str | None, name: str,
    ) -> None:
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


def open_session(path: Path, tokenizer, config: DetenteConfig, version: str | None, name: str,
                 threads: int | None = None) -> OnnxBackend:
    """An ``OnnxBackend`` on the graph at ``path``."""
    return OnnxBackend(make_session(path, threads), tokenizer, config, version, name)
