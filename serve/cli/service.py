"""``detente serve``: parse ``ServeArguments``, warn about open binds, run uvicorn or Ray Serve.

Options come from ``serve.api.settings.ServeArguments`` (flags, or ``DETENTE_*``
variables); see ``detente serve --help``. The settings module (and so the scoring code and
torch) is imported when the command runs, not for ``detente --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from serve.cli.common import fail, log_to_stderr, user_errors_fail

if TYPE_CHECKING:
    from serve.api.settings import ServeArguments


def serve(ctx: typer.Context) -> None:
    """Serve the model over HTTP: a JSON API, metrics and the demo, in one process."""
    from model.persistence import check_model_folder
    from serve.api.settings import parse_serve_arguments, read_api_key

    with user_errors_fail():
        args = parse_serve_arguments(ctx.args)
        api_key = read_api_key(args)
        if args.model is not None:  # fail before listening, not in the background
            check_model_folder(Path(args.model))
    log_to_stderr()
    warn_if_open(args, api_key)
    if args.engine == "ray":
        from serve.api.ray_deployment import run_with_ray

        with user_errors_fail(RuntimeError):  # Ray cannot start, or the deployment fails
            run_with_ray(args, api_key)
        return
    failure = run_local(args, api_key)
    if failure is not None:
        fail(f"the model could not be loaded: {failure}")


def warn_if_open(args: ServeArguments, api_key: str | None) -> None:
    """Say so when the service listens beyond this machine without protection."""
    if args.local_only:
        return
    if api_key is None:
        typer.secho(f"warning: listening on {args.host} without an API key: anyone who can "
                    "reach this address can use the API (set DETENTE_API_KEY or "
                    "--api-key-file).", fg=typer.colors.YELLOW, err=True)
    if args.demo and args.engine == "local":
        typer.secho("warning: the demo at /demo has no login and writes to the corrections "
                    "file; --no-demo serves the API alone.", fg=typer.colors.YELLOW, err=True)


def run_local(args: ServeArguments, api_key: str | None) -> str | None:
    """Serve until SIGINT/SIGTERM (in-flight requests are answered first).

    Returns why the model could not be loaded, or None after a normal shutdown.
    """
    import uvicorn

    from serve.api.app import create_app

    failures: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(err: BaseException) -> None:
        failures.append(f"{type(err).__name__}: {err}")
        if server is not None:
            server.should_exit = True

    app = create_app(args, api_key=api_key, on_load_failure=stop_on_failure)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, access_log=args.access_log,
        log_level="info", lifespan="on", server_header=False,
        # in-flight requests finish within --timeout-s; then SIGTERM stops what is left
        timeout_graceful_shutdown=int(args.timeout_s) + 5,
    )
    server = uvicorn.Server(config)
    where = f"http://{args.host}:{args.port}"
    print(f"detente serve at {where}: POST {where}/v1/classify, docs {where}/docs, metrics "
          f"{where}/metrics" + (f", demo {where}/demo/" if args.demo else "")
          + "; loading the model (/ready turns 200 when done)", file=sys.stderr, flush=True)
    server.run()
    return failures[0] if failures else None
