"""How a model runs: PyTorch, ONNX Runtime fp32, or ONNX Runtime dynamic int8.

Every backend turns texts into both heads' raw logits (``Backend.predict_logits``); the
``Classifier`` above them windows long texts and calibrates, once for all backends.

- ``base``: the ``Backend`` protocol, the names and the thread default.
- ``torch_backend``: the reference.
- ``onnx_runtime``: sessions and the ONNX backend.
- ``export``: a model folder to a verified ONNX graph.
- ``quantize``: int8 graphs and which MatMuls to keep in fp32.
- ``cache``: graphs and the ``auto`` choice beside the weights.
- ``loading``: ``--backend`` to a running backend.
"""

from __future__ import annotations

from model.backends.base import BACKENDS, Backend, default_threads
from model.backends.loading import ResolvedBackend, load_backend, open_resolved, resolve_backend
from model.backends.torch_backend import TorchBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "ResolvedBackend",
    "TorchBackend",
    "default_threads",
    "load_backend",
    "open_resolved",
    "resolve_backend",
]
