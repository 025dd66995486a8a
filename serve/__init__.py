"""Serving detente: the CLI, batch scoring, the Gradio demo and scale-out on Ray."""

from __future__ import annotations
