"""``ServeArguments``: every setting of ``detente serve``, from flags or ``DETENTE_*`` variables.

One dataclass holds each setting once, with its default and its help text (field metadata).
``parse_serve_arguments`` builds the command line from it (``HfArgumentParser``, as
``detente train`` does) and takes defaults from the environment first: the variable of a
field is ``DETENTE_`` and its name in capitals (``--max-batch-size`` is
``DETENTE_MAX_BATCH_SIZE``), and a flag given on the command line wins over the variable.
Containers and service managers set variables; people at a terminal type flags.

The API key itself is never a flag (a command line is visible to every user of the machine
in ``ps``): it comes from ``--api-key-file`` or the ``DETENTE_API_KEY`` variable.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from serve.option_parsing import DataclassParser
from serve.scored_rows import DEFAULT_BATCH_SIZE, MAX_TEXT_CHARS

ENV_PREFIX = "DETENTE_"
API_KEY_ENV = "DETENTE_API_KEY"
ENGINES = ("local", "ray")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class ServeArguments:
    """How ``detente serve`` loads its model, batches requests and limits what it accepts."""

    model: str | None = field(default=None, metadata=_help(
        "Model folder. Default: the default model, trained first if there is none."))
    host: str = field(default="127.0.0.1", metadata=_help(
        "Address to listen on; 127.0.0.1 keeps the service on this machine. Any other "
        "address without an API key prints a warning."))
    port: int = field(default=8000, metadata=_help("Port to listen on."))
    max_batch_size: int = field(default=64, metadata=_help(
        "Most statements in one model batch: concurrent requests are gathered up to this, "
        "then scored in forward passes of similar lengths (at most 32 statements each)."))
    max_wait_ms: float = field(default=5.0, metadata=_help(
        "Longest a batch waits for more requests once the model is free (milliseconds); "
        "only while other requests are being received: a lone request never waits."))
    max_texts: int = field(default=256, metadata=_help(
        "Most texts in one request (more: 413)."))
    max_chars: int = field(default=MAX_TEXT_CHARS, metadata=_help(
        "Most characters in one text (more: 413). Longer texts than the model reads are "
        "scored in sentence windows, as `detente score` does."))
    max_body_bytes: int = field(default=4 * 1024 * 1024, metadata=_help(
        "Largest request body in bytes (more: 413)."))
    max_queue: int = field(default=1024, metadata=_help(
        "Most statements waiting for a batch; a request that would go past it gets 429 with "
        "Retry-After."))
    timeout_s: float = field(default=30.0, metadata=_help(
        "A request not answered in this many seconds gets 504."))
    api_key_file: str | None = field(default=None, metadata=_help(
        "File holding the API key: /v1/* then need 'Authorization: Bearer <key>'. Or set "
        "the key in DETENTE_API_KEY. /health, /ready and /metrics stay open."))
    demo: bool = field(default=True, metadata=_help(
        "Serve the Gradio demo at /demo (and redirect / to it). Off with --engine ray."))
    corrections: str | None = field(default=None, metadata=_help(
        "The demo's corrections file. Default: $DETENTE_HOME/corrections.jsonl."))
    engine: str = field(default="local", metadata=_help(
        "local: this process; ray: a Ray Serve deployment of the same app (local Ray, or "
        "the cluster at RAY_ADDRESS; needs detente[ray]).", choices=list(ENGINES)))
    replicas: int = field(default=1, metadata=_help(
        "Replicas of the model with --engine ray (each loads the model once)."))
    access_log: bool = field(default=False, metadata=_help(
        "Log one line per HTTP request on stderr."))

    def __post_init__(self) -> None:
        positive = ("max_batch_size", "max_texts", "max_chars", "max_body_bytes", "max_queue",
                    "replicas")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be more than 0, got {self.timeout_s}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")

    @property
    def forward_batch_size(self) -> int:
        """Most statements per forward pass inside a batch: ``detente score``'s
        ``--batch-size`` (32), or ``max_batch_size`` if smaller. Within that, a batch is
        cut into passes of similar token lengths (``scorer.LoadedModel.length_groups``)."""
        return min(self.max_batch_size, DEFAULT_BATCH_SIZE)

    @property
    def local_only(self) -> bool:
        return self.host in LOCAL_HOSTS

    def limits(self) -> dict[str, float | int]:
        """What a client may send and how requests are batched (``GET /v1/model``)."""
        names = ("max_texts", "max_chars", "max_body_bytes", "max_queue", "timeout_s",
                 "max_batch_size", "max_wait_ms")
        return {name: getattr(self, name) for name in names}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def env_defaults(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The fields set by ``DETENTE_*`` variables, converted to each field's type."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(ServeArguments)
    values: dict[str, Any] = {}
    for f in fields(ServeArguments):
        raw = environ.get(env_name(f.name))
        if raw is None:
            continue
        values[f.name] = _convert(raw.strip(), hints[f.name], env_name(f.name))
    return values


def _convert(raw: str, kind: Any, variable: str) -> Any:
    """A variable's text as ``kind`` (str, int, float, bool or an optional of them)."""
    args = typing.get_args(kind)
    if type(None) in args:  # ``X | None``: an empty variable means None
        if raw == "":
            return None
        kind = next(a for a in args if a is not type(None))
    try:
        if kind is bool:
            if raw.lower() in TRUE_WORDS:
                return True
            if raw.lower() in FALSE_WORDS:
                return False
            raise ValueError
        return kind(raw)
    except ValueError:
        expected = {bool: "true or false", int: "a whole number"}.get(kind, "a number")
        raise ValueError(f"{variable}={raw!r} is not {expected}") from None


def parse_serve_arguments(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> ServeArguments:
    """Flags over ``DETENTE_*`` variables over the dataclass defaults.

    The parser is the one every ``detente`` command uses (``serve.option_parsing``). argparse
    itself reports an unknown or malformed flag (and ``--help``) and exits.
    """
    parser = DataclassParser(ServeArguments, prog="detente serve", description=SERVE_HELP)
    parser.set_defaults(**env_defaults(environ))
    return parser.parse(argv)


def read_api_key(args: ServeArguments, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key from ``--api-key-file`` or ``DETENTE_API_KEY`` (never both), or None."""
    environ = os.environ if environ is None else environ
    from_env = environ.get(API_KEY_ENV)
    if args.api_key_file and from_env:
        raise ValueError(f"give the API key in --api-key-file or in {API_KEY_ENV}, not both")
    if args.api_key_file:
        key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        if not key:
            raise ValueError(f"the API key file {args.api_key_file} is empty")
        return key
    if from_env is not None:
        if not from_env.strip():
            raise ValueError(f"{API_KEY_ENV} is set but empty")
        return from_env.strip()
    return None


SERVE_HELP = """\
Serve the model over HTTP: a JSON API for programs and the demo for people, from one
loaded model. Routes: POST /v1/classify, GET /v1/model, /health, /ready, /metrics
(Prometheus), /docs (OpenAPI) and the demo at /demo. Concurrent requests are gathered
into model batches (--max-batch-size, --max-wait-ms). Every option can also be set by a
variable: DETENTE_ and the option's name in capitals with underscores
(DETENTE_MAX_BATCH_SIZE=32); a flag wins over its variable. See docs/serving.md."""
