"""Serving detente: the CLI, batch scoring, the Gradio demo, the HTTP API and Ray scale-out.

``load_classifier()`` is the Python quick start: the default model, trained on first use.
"""

from __future__ import annotations

__all__ = ["load_classifier", "score_file"]


def __getattr__(name: str):
    """``from serve import score_file`` without importing torch for ``detente --help``."""
    if name == "score_file":
        from serve.scoring import score_file

        return score_file
    if name == "load_classifier":
        from serve.loading import load_classifier

        return load_classifier
    raise AttributeError(f"module 'serve' has no attribute {name!r}")
