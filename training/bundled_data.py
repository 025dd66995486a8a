"""What the default model is trained on: the labelled files bundled in ``data/``.

They are listed here once; ``detente train`` with no ``--data`` uses them, the default
model's fingerprint covers them (a changed file retrains it), and the datasheet
(``data/README.md``) describes each. The real-statement validation rows, not the written
ones, choose the epoch, the temperatures and the scoring backend: real text is what the
model is for, and the written corpus overstates quality on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from model.paths import repo_root

DEFAULT_DATA_FILES = (
    "statements.jsonl",  # the written corpus (stance and sentiment)
    "real_statements.jsonl",  # real sentences labelled under LABELS.md (stance and sentiment)
    "vader_nyt.jsonl",  # NYT sentences, 20 reader ratings each (graded sentiment)
    "newsmtsc.jsonl",  # news sentences, sentiment towards a person (weight 0.5)
)
REAL_SOURCES = ("ungdc", "wh_briefings", "wikinews")
# The files with both labels: what `detente retrain` replays so a retrained model keeps them.
REPLAY_FILES = DEFAULT_DATA_FILES[:2]


def default_data_files() -> list[Path]:
    """The bundled training files, in the order above."""
    return [repo_root() / "data" / name for name in DEFAULT_DATA_FILES]


def selection_data_file() -> Path:
    """The file whose validation rows choose the default model's scoring backend."""
    return repo_root() / "data" / "real_statements.jsonl"


def replay_data_files() -> list[Path]:
    return [repo_root() / "data" / name for name in REPLAY_FILES]


def data_fingerprint(paths: list[Path] | None = None) -> str:
    """A short hash of the files' bytes; 'missing' names a file that is not there."""
    digest = hashlib.sha256()
    for path in paths or default_data_files():
        path = Path(path)
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    return digest.hexdigest()[:16]
