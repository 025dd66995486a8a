"""``detente serve``: parse ``ServeArguments``, warn about open binds, run uvicorn or Ray Serve.

All of the command's logic lives here, so that ``serve/cli.py`` registers it in two lines
and can be reorganised without touching it. Options come from ``ServeArguments`` (flags,
or ``DETENTE_*`` variables); see ``detente serve --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from serve.api.settings import ServeArguments, parse_serve_arguments, read_api_key


def serve(ctx: typer.Context) -> None:
    """Serve the model over HTTP: a JSON API, metrics and the demo, in one process.

    All options come from serve.api.settings.ServeArguments; see `detente serve --help`.
    """
    from model.errors import ModelLoadError
    from model.persistence import check_model_folder
    from serve.cli import fail
    from serve.cli_score import _log_to_stderr

    try:
        args = parse_serve_arguments(ctx.args)
        api_key = read_api_key(args)
        if args.model is not None:  # fail before listening, not in the background
            check_model_folder(Path(args.model))
    except (ValueError, OSError, ModelLoadError) as err:
        fail(str(err))
    _log_to_stderr()
    warn_if_open(args, api_key)
    if args.engine == "ray":
        from serve.api.ray_deployment import run_with_ray

        try:
            run_with_ray(args, api_key)
        except (ValueError, OSError, RuntimeError) as err:
            fail(str(err))
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
