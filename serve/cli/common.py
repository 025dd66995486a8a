"""What every ``detente`` command shares: the one error path, option parsing, logging.

A mistake of the user's (a missing file, a bad model folder, a full disk, a bad value) ends
every command the same way: ``error: <message>`` in red on stderr and exit status 1, never a
traceback. Anything else is a bug in detente and keeps its traceback. The exception types
that count as the user's come from ``model.errors.user_errors()``, so the CLI, the demo and
the HTTP API agree on them.

Nothing here imports torch or transformers at module level: ``detente --help`` imports
every command module, and must stay fast.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
import typer

T = TypeVar("T")

# The context of a command whose options a dataclass parser reads (serve.option_parsing): click
# hands every argument, --help included, through to the command as ``ctx.args``.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
               "help_option_names": []}

# A validation report (training.validation.Report) after its first line: one problem a line.
REPORT_LINE_PREFIXES = ("  ERROR:", "  WARNING:")
# Longest error line shown: room for our sentences that name two paths before saying what to
# do (``ScoreWriteError``: the part, the kept folder, "--resume"); a library's text is cut.
MESSAGE_LIMIT = 1000


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def message_of(err: BaseException) -> str:
    """What the user reads for ``err``.

    A data validation report keeps its lines: each names a problem and its rows, which is
    what the user fixes the file with. Any other message is shortened to one line
    (``one_line``): a library's multi-line text is noise at a terminal.
    """
    from model.errors import DataError, one_line

    lines = [line for line in str(err).splitlines() if line.strip()]
    if (isinstance(err, DataError) and len(lines) > 1
            and all(line.startswith(REPORT_LINE_PREFIXES) for line in lines[1:])):
        return "\n".join(lines)
    return one_line(err, MESSAGE_LIMIT)


@contextmanager
def user_errors_fail(*extra: type[BaseException]) -> Iterator[None]:
    """Inside the block, a user's mistake (``model.errors.user_errors()`` or ``extra``) fails.

    ``extra`` names the errors a command adds (``detente score``'s ``ScoreWriteError``).
    model.errors is imported only once something went wrong: importing ``model`` imports
    torch, which ``--help`` must not wait for.
    """
    try:
        yield
    except click.exceptions.Exit:  # typer.Exit, a RuntimeError, is how a command ends
        raise
    except Exception as err:
        from model.errors import user_errors

        if not isinstance(err, (*user_errors(), *extra)):
            raise
        fail(message_of(err))


def parse_arguments(
    dataclass_type: type[T],
    args: Sequence[str],
    *,
    prog: str,
    description: str | None = None,
    positional: Collection[str] = (),
) -> T:
    """A command's options from ``ctx.args``, as its dataclass (see ``serve.option_parsing``).

    A value the dataclass refuses (its ``__post_init__`` raises ValueError) fails here, in
    one line, like any other user error; a malformed or unknown flag is argparse's usage
    error (exit status 2), and ``--help`` prints the help and exits 0.
    """
    from serve.option_parsing import parse_arguments as parse

    with user_errors_fail():
        return parse(dataclass_type, args, prog=prog, description=description,
                     positional=positional)


def description_of(command: Any) -> str:
    """A command's docstring as its ``--help`` description, the same text typer lists."""
    return inspect.getdoc(command) or ""


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when it emits.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was given; when the command
    runs inside a host that swaps ``sys.stderr`` per call (a test runner, a notebook), a
    later call would write to a closed stream and print a "Logging error" traceback.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # set by StreamHandler.__init__; always sys.stderr
        pass


def log_to_stderr() -> None:
    """Show detente's notices (resuming, renamed columns) as plain lines on stderr."""
    logger = logging.getLogger("detente")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
