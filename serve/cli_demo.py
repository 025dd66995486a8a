"""``detente demo``: serve the Gradio demo on this machine.

Kept apart from ``serve/cli.py`` so that the CLI starts without importing gradio; the
command is registered there with ``app.command()(demo)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serve.cli_training import ALLOW_PICKLE_HELP

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def demo(
    model: Annotated[
        Path | None,
        typer.Option(help="Model folder (default: the default model, trained first if "
                     "missing)."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; 127.0.0.1 keeps the demo on this machine."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 7860,
    corrections: Annotated[
        Path | None,
        typer.Option(help="JSONL file that collects corrections "
                     "(default: $DETENTE_HOME/corrections.jsonl)."),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the demo in a web browser.")
    ] = False,
    allow_pickle: Annotated[
        bool, typer.Option(help=ALLOW_PICKLE_HELP)
    ] = False,
) -> None:
    """Open the web demo: classify and explain statements, score files, send corrections."""
    from serve.cli import fail, user_errors
    from serve.corrections import default_corrections_path
    from serve.loading import load_classifier

    if host not in LOCAL_HOSTS:
        typer.secho(
            f"warning: listening on {host}: the demo has no login, so anyone who can reach "
            f"this address can use it and write to the corrections file.",
            fg=typer.colors.YELLOW, err=True,
        )
    try:
        classifier = load_classifier(model, allow_pickle=allow_pickle)
    except user_errors() as err:
        fail(str(err))
    corrections = corrections or default_corrections_path()
    typer.echo(f"model {classifier.path} (version {classifier.model_version}); "
               f"corrections go to {corrections}", err=True)

    from serve.demo import launch

    try:
        launch(classifier, host=host, port=port, corrections_path=corrections,
               open_browser=open_browser)
    except OSError as err:
        fail(f"cannot serve on {host}:{port} ({err}); choose another --port or --host")
