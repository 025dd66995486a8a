"""Every failure family detente reports to its users, in one place.

Each type means one thing the user can act on; the CLI, the demo and the HTTP API show its
message as one line (``one_line``) instead of a traceback. They live in ``model`` because
every layer raises them: the model loads, training reads data, serving reads and writes
tables.
"""

from __future__ import annotations


class DataError(ValueError):
    """A data file that cannot be read or used; the message names the file, row or field."""


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used, with the reason in words."""


class ModelWriteError(RuntimeError):
    """A model or checkpoint that could not be written (disk full, no permission, ...)."""


class DefaultModelMissing(ModelLoadError):
    """No default model yet, and nothing was allowed to train it."""


class BackendError(RuntimeError):
    """The model could not be exported to, quantized for or run on ONNX Runtime."""


# The name the ONNX code and its users have always used.
OnnxError = BackendError


def one_line(err: BaseException, limit: int = 300, *, last: bool = False) -> str:
    """An exception's message on one line, shortened: enough to act on, no wall of text.

    The first non-blank line is the summary for most libraries; ``last=True`` takes the last
    one instead, for those that put the cause at the end (Ray's task errors end with the
    exception that failed the task, after its traceback).
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = (lines[-1] if last else lines[0]) if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the input, the model folder or the disk is wrong".

    Front ends show these as one line; anything else is a bug and keeps its traceback.
    OSError covers what the machine refuses: no permission, disk full, a file in the way.
    """
    return (DataError, ModelLoadError, ModelWriteError, BackendError, OSError, ValueError)
