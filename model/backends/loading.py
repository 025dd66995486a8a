"""Turning ``--backend`` into a running backend for a model folder.

``auto`` follows the choice recorded in the model's ONNX cache (``selection.json``, made on
validation data by ``training.backend_selection`` when the model was trained) if it matches
the weights and the export format; without one it means ONNX fp32, which gives torch's
probabilities (within 1e-4) faster, and torch when the model cannot be exported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from model.backends import cache
from model.backends.base import BACKENDS, Backend, default_threads
from model.backends.onnx_runtime import open_session
from model.backends.quantize import Int8Config
from model.backends.torch_backend import TorchBackend
from model.config import DetenteConfig
from model.errors import BackendError
from model.persistence import check_model_folder, load_model, weights_hash

log = logging.getLogger("detente.backends")


@dataclass(frozen=True)
class ResolvedBackend:
    """A concrete backend for a model folder, its graph (if ONNX) ready in the cache.

    Resolving once in the driver of a Ray job means the workers only load what is cached.
    """

    folder: Path
    name: str
    version: str
    int8: Int8Config | None = None
    graph: Path | None = None


def resolve_backend(folder: str | Path, backend: str = "auto") -> ResolvedBackend:
    """Turn ``auto`` into a concrete backend; export and quantize its graph if needed."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    folder = Path(folder).resolve()
    check_model_folder(folder)
    version = weights_hash(folder)
    if backend == "torch":
        return ResolvedBackend(folder, "torch", version)
    selection = cache.read_selection(folder, version) or {}
    int8 = Int8Config.from_dict(selection.get("int8"))
    name = backend
    if backend == "auto":
        name = selection.get("backend") if selection.get("backend") in BACKENDS[1:] else "onnx"
        if name == "torch":
            return ResolvedBackend(folder, "torch", version)
    try:
        if name == "onnx":
            graph = cache.ensure_fp32(folder, version)
        else:
            graph = cache.ensure_int8(folder, version, int8)
    except BackendError as err:
        if backend != "auto":
            raise
        log.warning("%s; running torch instead", err)
        return ResolvedBackend(folder, "torch", version)
    return ResolvedBackend(folder, name, version, int8, graph)


def load_backend(
    folder: str | Path, backend: str = "torch", *, threads: int | None = None,
    allow_pickle: bool = False,
) -> Backend:
    """A ready backend for a model folder; ``threads`` caps intra-op threads (Ray actors)."""
    if backend == "torch":  # no hashing: the version is read lazily, only if asked for
        model, tokenizer = load_model(folder, allow_pickle=allow_pickle)
        torch.set_num_threads(threads or default_threads())
        return TorchBackend(model, tokenizer)
    resolved = resolve_backend(folder, backend)
    if resolved.name == "torch":
        model, tokenizer = load_model(resolved.folder, allow_pickle=allow_pickle)
        torch.set_num_threads(threads or default_threads())
        return TorchBackend(model, tokenizer, resolved.version)
    return open_resolved(resolved, threads)


def open_resolved(resolved: ResolvedBackend, threads: int | None = None) -> Backend:
    """An ONNX Runtime session on a resolved graph: config and tokenizer, no torch weights."""
    config = DetenteConfig.from_pretrained(resolved.folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(
        resolved.folder, local_files_only=True, config=config.encoder_config()
    )
    return open_session(resolved.graph, tokenizer, config, resolved.version, resolved.name,
                        threads)
