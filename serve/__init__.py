"""Serving detente: the CLI, batch scoring, the Gradio demo and scale-out on Ray."""

from __future__ import annotations

__all__ = ["score_file"]


def __getattr__(name: str):
    """``from serve import score_file`` without importing torch for ``detente --help``."""
    if name == "score_file":
        from serve.scoring import score_file

        return score_file
    raise AttributeError(f"module 'serve' has no attribute {name!r}")
