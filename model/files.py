"""Writing files so that a crash never leaves half of one: temp file, fsync, rename.

Readers (a resumed scoring run, the ONNX cache, the corrections log) may open these files at
any moment, so each one must appear whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` whole.

    Write to the yielded path (with any library); when the block ends without an exception
    the file is fsynced (``durable``) and renamed over ``target``. On an exception it is
    deleted and ``target`` is left as it was.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)


def atomic_write_text(target: str | Path, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``target`` through ``atomic_path``."""
    with atomic_path(target, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def fsync_file(path: str | Path) -> None:
    """Flush a written file's contents to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: str | Path) -> None:
    """Make a new or renamed entry durable (POSIX; a no-op where directories cannot open)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
