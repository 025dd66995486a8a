"""Choosing and loading an inference backend: torch, ONNX Runtime fp32 or dynamic int8.

``auto`` is data driven. ``benchmarks/scoring_speed.py --model M --data D`` measures every
backend on M and writes ``selection.json`` into M's ONNX cache: the fastest backend that
keeps at least 99 % stance-label agreement with torch fp32 and loses at most 0.5
macro-F1 points on D's test split, with the int8 settings that achieved it. ``auto``
follows that file when it matches the weights' hash; without it ``auto`` means ONNX
fp32, which gives the same probabilities as torch (within 1e-4) faster, and falls back
to torch if the model cannot be exported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from model.config import DetenteConfig

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
log = logging.getLogger("detente.score")


class Backend(Protocol):
    """What scoring needs from a backend (``TorchBackend`` or ``OnnxBackend``)."""

    name: str
    tokenizer: object
    config: DetenteConfig
    model_version: str

    def predict_proba(
        self, texts: list[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """``Classifier.predict_proba``: length-sorted batches, dynamic padding, inference mode."""

    name = "torch"

    def __init__(self, classifier) -> None:
        self.classifier = classifier
        self.tokenizer = classifier.tokenizer
        self.config = classifier.config
        self.model_version = classifier.model_version

    def predict_proba(
        self, texts: list[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.classifier.predict_proba(texts, batch_size)


def resolve_model_dir(model: str | Path | None) -> Path:
    """The model folder; ``None`` is the default model (trained first if absent)."""
    if model is None:
        from training.default_model import ensure_default_model

        return Path(ensure_default_model())
    return Path(model)


@dataclass(frozen=True)
class ResolvedBackend:
    """A concrete backend for a model folder, its graph (if ONNX) ready in the cache."""

    folder: Path
    name: str
    version: str
    int8: object = None
    graph: Path | None = None


def resolve_backend(model: str | Path | None = None, backend: str = "auto") -> ResolvedBackend:
    """Turn ``auto`` into a concrete backend and export/quantize its graph if needed.

    Done once in the driver of a Ray job, so workers only load what is already cached.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    from model.persistence import check_model_folder, weights_hash

    folder = resolve_model_dir(model).resolve()
    check_model_folder(folder)
    version = weights_hash(folder)
    if backend == "torch":
        return ResolvedBackend(folder, "torch", version)
    from serve import onnx_backend as ox

    selection = ox.read_selection(folder, version) or {}
    int8 = ox.Int8Config.from_dict(selection.get("int8"))
    name = backend
    if backend == "auto":
        name = selection.get("backend") if selection.get("backend") in BACKENDS[1:] else "onnx"
        if name == "torch":
            return ResolvedBackend(folder, "torch", version)
    try:
        if name == "onnx":
            graph = ox.ensure_fp32(folder, version)
        else:
            graph = ox.ensure_int8(folder, version, int8)
    except ox.OnnxError as err:
        if backend != "auto":
            raise
        log.warning("%s; scoring with torch instead", err)
        return ResolvedBackend(folder, "torch", version)
    return ResolvedBackend(folder, name, version, int8, graph)


def load_backend(
    model: str | Path | None = None, backend: str = "auto", *, threads: int | None = None
) -> Backend:
    """A ready backend for the model folder; ``threads`` caps intra-op threads (Ray actors)."""
    resolved = resolve_backend(model, backend)
    if resolved.name == "torch":
        return _torch_backend(resolved.folder, threads)
    return open_onnx_backend(resolved, threads)


def _torch_backend(folder: Path, threads: int | None) -> TorchBackend:
    """The torch model; ``threads`` set after loading, which would otherwise use every core."""
    import torch

    from model.classifier import Classifier

    classifier = Classifier.load(folder)
    if threads:
        torch.set_num_threads(threads)
    return TorchBackend(classifier)


def open_onnx_backend(resolved: ResolvedBackend, threads: int | None):
    """An ONNX Runtime session on the cached graph: config and tokenizer, no torch weights."""
    from transformers import AutoTokenizer

    from serve import onnx_backend as ox

    config = DetenteConfig.from_pretrained(resolved.folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(
        resolved.folder, local_files_only=True, config=config.encoder_config()
    )
    session = ox.make_session(resolved.graph, threads)
    return ox.OnnxBackend(session, tokenizer, config, resolved.version, resolved.name)


# ----------------------------------------------------------------------------- selection

MIN_AGREEMENT = 0.99  # stance labels equal to torch fp32's on at least 99 % of statements
MAX_F1_DROP = 0.005  # and at most 0.5 macro-F1 points lost on the test split


def is_acceptable(candidate: dict) -> bool:
    """Whether a benchmarked backend may be the default (the rule in the module docstring).

    ``candidate`` has ``backend``, ``stance_agreement`` (vs torch fp32) and
    ``macro_f1_drop`` (torch fp32's test macro-F1 minus the candidate's, in [0, 1], or None
    when the data had no gold labels). Without gold labels the F1 rule cannot be checked,
    so only the fp32 backends qualify.
    """
    if candidate["stance_agreement"] < MIN_AGREEMENT:
        return False
    drop = candidate.get("macro_f1_drop")
    if drop is None:
        return candidate["backend"] in ("torch", "onnx")
    return drop <= MAX_F1_DROP


def choose_fastest(candidates: list[dict]) -> dict:
    """The acceptable candidate with the highest ``statements_per_s`` (torch if none is)."""
    acceptable = [c for c in candidates if is_acceptable(c)]
    if not acceptable:
        return {"backend": "torch", "statements_per_s": None, "reason": "no candidate qualified"}
    return max(acceptable, key=lambda c: c["statements_per_s"])
