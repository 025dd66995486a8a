"""Finding the default model, and training it on first use.

The default model is a product of the bundled data. When it changes (a ``git pull``
brought new rows), a model trained on the old data is stale: it is retrained, with a message,
the next time something needs it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from model.errors import DefaultModelMissing
from model.paths import default_model_dir
from training.arguments import TrainArguments
from training.bundled_data import data_fingerprint
from training.trainer import format_summary, train


def trained_fingerprint(folder: Path) -> str | None:
    summary = folder / "training_summary.json"
    if not summary.is_file():
        return None
    try:
        values = json.loads(summary.read_text())
    except json.JSONDecodeError:
        return None
    # A model from before the bundled data had several files recorded only the corpus's hash.
    return values.get("data_fingerprint", "stale" if "corpus_fingerprint" in values else None)


def ensure_default_model(train_if_missing: bool = True) -> Path:
    """The default model folder; (re)trains it from the bundled corpus when absent or stale."""
    folder = default_model_dir()
    exists = (folder / "config.json").is_file()
    current = data_fingerprint()
    if exists and trained_fingerprint(folder) in (current, None):
        return folder
    if not train_if_missing:
        if exists:
            return folder
        raise DefaultModelMissing(f"no default model in {folder}; run `detente train` to build it")
    reason = ("the bundled data changed since it was trained" if exists
              else "there is none yet")
    print(
        f"Training the default model in {folder} because {reason} (about 12 minutes on 2 "
        "CPU cores, less on a GPU; this happens once).",
        file=sys.stderr,
    )
    result = train(TrainArguments(output=str(folder), force=True))
    print(format_summary(result.metrics), file=sys.stderr)
    return result.output
