"""Loading a model for people and programs: the default model is trained on first use.

``model`` loads folders that exist; training the default model is ``training``'s job. This
is where the two meet, so that ``detente`` commands, the demo, the HTTP API and the Python
quick start (``from serve import load_classifier``) all get a model on a fresh machine.
"""

from __future__ import annotations

from pathlib import Path

from model.backends import ResolvedBackend, resolve_backend
from model.classifier import Classifier
from training.backend_selection import ensure_default_choice
from training.default_model import ensure_default_model


def model_folder(model: str | Path | None, backend: str = "torch") -> Path:
    """The folder to load; ``None`` is the default model, trained first if absent or stale.

    For ``backend="auto"`` the default model's backend choice is made too if it is missing
    (a newer detente that exports graphs differently invalidates it).
    """
    if model is not None:
        return Path(model)
    folder = Path(ensure_default_model())
    if backend == "auto":
        ensure_default_choice(folder)
    return folder


def load_classifier(
    model: str | Path | None = None,
    *,
    backend: str = "torch",
    allow_pickle: bool = False,
    threads: int | None = None,
) -> Classifier:
    """``Classifier.load``, with the default model trained first when it is not there yet."""
    return Classifier.load(model_folder(model, backend), backend=backend,
                           allow_pickle=allow_pickle, threads=threads)


def resolve(model: str | Path | None, backend: str) -> ResolvedBackend:
    """``resolve_backend`` for a model folder or the default model (Ray drivers use it)."""
    return resolve_backend(model_folder(model, backend), backend)
