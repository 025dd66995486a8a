"""The ONNX cache beside a model's weights: exported graphs and the backend choice.

``<model>/onnx/`` (or, for a read-only model folder, ``$DETENTE_HOME/onnx-cache/<hash>/``)
holds ``model.fp32.onnx``, ``model.int8-<tag>.onnx`` and ``cache.json`` with the content
hash of the weights they came from and ``GRAPH_FORMAT``, the version of the way graphs are
exported. A model whose weights changed, or a cache written by an older export, is exported
again. ``selection.json`` (written by ``training.backend_selection``) records which backend
``auto`` runs for exactly these weights, with the measurements behind the choice.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from model.backends.export import OPSET, export_onnx
from model.backends.quantize import Int8Config, quantize_int8
from model.files import atomic_path, atomic_write_text
from model.paths import detente_home

CACHE_DIR = "onnx"
CACHE_INDEX = "cache.json"
SELECTION_FILE = "selection.json"
FP32_FILE = "model.fp32.onnx"
# Bumped whenever the export changes the graph or the session runs it differently (2: eager
# attention; 3: no SkipLayerNormFusion), so caches and backend selections measured on older
# graphs are rebuilt instead of trusted.
GRAPH_FORMAT = 3


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
    atomic_write_text(path, json.dumps(data, indent=2) + "\n", durable=False)


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
    with atomic_path(folder / name, durable=False) as tmp:
        shutil.copyfile(built, tmp)
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
    return detente_home() / "onnx-cache" / weights_version
