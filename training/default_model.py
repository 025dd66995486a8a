"""Finding the default model, and training it on first use."""

from __future__ import annotations

import sys
from pathlib import Path

from model.paths import default_model_dir


class DefaultModelMissing(RuntimeError):
    """No default model yet and training it was not allowed."""


def ensure_default_model(train_if_missing: bool = True) -> Path:
    """The default model folder; trains it from the bundled corpus first if it is not there."""
    folder = default_model_dir()
    if (folder / "config.json").is_file():
        return folder
    if not train_if_missing:
        raise DefaultModelMissing(
            f"no default model in {folder}; run `detente train` to build it"
        )
    print(
        f"No default model in {folder} yet: training it from the bundled corpus first "
        "(a few minutes on a laptop CPU; this happens once).",
        file=sys.stderr,
    )
    from training.arguments import TrainArguments
    from training.trainer import format_summary, train

    result = train(TrainArguments(output=str(folder)))
    print(format_summary(result.metrics), file=sys.stderr)
    return result.output
