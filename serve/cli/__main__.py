"""``python -m serve.cli``: the ``detente`` command, for torchrun and checkouts without it."""

from __future__ import annotations

from serve.cli import main

if __name__ == "__main__":
    main()
