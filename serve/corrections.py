"""The corrections file: labels that demo users give, in the project's data format.

Each line is one JSON object with ``text``, ``stance`` and ``sentiment`` (one of the two may
be null) plus ``id``, ``time``, ``model_version``, ``model_stance``, ``model_sentiment`` and
``source``, so ``detente retrain --data corrections.jsonl`` reads the file as it is, and
``training.data.load_labelled`` + ``training.validation.validate`` accept it.

Validation rejects a file in which one statement appears twice, so a second correction of
the same statement (same text after normalisation) replaces the first instead of adding a
line: the latest judgement wins and the file stays valid.

Writes are safe under concurrency: a per-path thread lock plus an advisory ``flock`` on a
sidecar ``.lock`` file (other processes), each new record written as one full line in one
``write`` on an ``O_APPEND`` descriptor, then ``fsync``; a replacement rewrites the file into
a temporary sibling and renames it over the original. A reader never sees half a line.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from model.files import atomic_write_text, fsync_dir
from model.paths import detente_home
from training.validation import normalise_text

try:  # POSIX only; on other systems the thread lock still protects one process
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

CORRECTIONS_FILE = "corrections.jsonl"
_PATH_LOCKS: dict[Path, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


class CorrectionError(ValueError):
    """A correction that cannot be stored, or a corrections file that cannot be read."""


def default_corrections_path() -> Path:
    """``$DETENTE_HOME/corrections.jsonl``: where the demo collects corrections."""
    return detente_home() / CORRECTIONS_FILE


@dataclass(frozen=True)
class SaveResult:
    record: dict
    replaced: bool  # True when an earlier correction of the same statement was replaced
    count: int  # corrections in the file afterwards


def _thread_lock(path: Path) -> threading.Lock:
    with _PATH_LOCKS_GUARD:
        return _PATH_LOCKS.setdefault(path, threading.Lock())


class CorrectionStore:
    """Append-mostly JSONL store of corrections, safe across threads and processes."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        stance_labels: Sequence[str],
        sentiment_labels: Sequence[str],
    ) -> None:
        self.path = Path(path or default_corrections_path()).expanduser().absolute()
        self.stance_labels = list(stance_labels)
        self.sentiment_labels = list(sentiment_labels)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _thread_lock(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                yield
                return
            lock_path = self.path.with_name(self.path.name + ".lock")
            with open(lock_path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def count(self) -> int:
        """How many corrections wait in the file (0 when there is no file yet)."""
        with self._locked():
            return len(self._read())

    def records(self) -> list[dict]:
        with self._locked():
            return [record for _, record in self._read()]

    def add(
        self,
        text: str,
        stance: str | None,
        sentiment: str | None,
        *,
        model_version: str,
        model_stance: str,
        model_sentiment: str,
    ) -> SaveResult:
        """Store one correction; replaces an earlier one of the same statement."""
        record = self.make_record(
            text, stance, sentiment, model_version=model_version,
            model_stance=model_stance, model_sentiment=model_sentiment,
        )
        key = normalise_text(record["text"])
        with self._locked():
            rows = self._read()
            same = [i for i, (_, old) in enumerate(rows) if normalise_text(old["text"]) == key]
            if same:
                lines = [line for i, (line, _) in enumerate(rows) if i not in same]
                self._rewrite(lines + [json_line(record)])
                return SaveResult(record, replaced=True, count=len(lines) + 1)
            self._append(json_line(record))
            return SaveResult(record, replaced=False, count=len(rows) + 1)

    def make_record(
        self,
        text: str,
        stance: str | None,
        sentiment: str | None,
        *,
        model_version: str,
        model_stance: str,
        model_sentiment: str,
    ) -> dict:
        """Check a correction and build its record (raises CorrectionError with the reason)."""
        text = (text or "").strip()
        if not text:
            raise CorrectionError("there is no statement to correct")
        if not normalise_text(text):
            raise CorrectionError("the statement has no words to label")
        stance, sentiment = stance or None, sentiment or None
        if stance is None and sentiment is None:
            raise CorrectionError("choose the right stance, the right sentiment, or both")
        check_label("stance", stance, self.stance_labels)
        check_label("sentiment", sentiment, self.sentiment_labels)
        return {
            "text": text,
            "stance": stance,
            "sentiment": sentiment,
            "id": f"demo-{uuid.uuid4().hex[:16]}",
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_version": model_version,
            "model_stance": model_stance,
            "model_sentiment": model_sentiment,
            "source": "demo",
        }

    def _read(self) -> list[tuple[str, dict]]:
        """``(line, record)`` for every non-blank line; a broken line is an error."""
        if not self.path.exists():
            return []
        rows = []
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CorrectionError(
                        f"{self.path} line {number} is not valid JSON ({err.msg}); "
                        "fix or move the file"
                    ) from err
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise CorrectionError(f"{self.path} line {number} has no text field")
                rows.append((line.rstrip("\n") + "\n", record))
        return rows

    def _append(self, line: str) -> None:
        data = line.encode("utf-8")
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not created and not _ends_with_newline(self.path):
                data = b"\n" + data  # a hand-edited file without a final newline
            written = os.write(fd, data)
            while written < len(data):  # regular files write fully; never lose a tail
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)

    def _rewrite(self, lines: list[str]) -> None:
        atomic_write_text(self.path, "".join(lines))


def check_label(head: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise CorrectionError(f"unknown {head} label {value!r}; allowed: {list(allowed)}")


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
