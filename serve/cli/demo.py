"""``detente demo``: serve the Gradio demo on this machine.

gradio is imported only when the command runs, after the model has loaded: ``detente
--help`` does not wait for it, and a bad model folder fails before it.
"""

from __future__ import annotations

import typer

from serve.cli.common import description_of, fail, parse_arguments, user_errors_fail


def demo(ctx: typer.Context) -> None:
    """Open the web demo: classify and explain statements, score files, send corrections."""
    from serve.api.settings import LOCAL_HOSTS
    from serve.arguments import DemoArguments
    from serve.corrections import default_corrections_path
    from serve.loading import load_classifier

    args = parse_arguments(DemoArguments, ctx.args, prog="detente demo",
                           description=description_of(demo))
    if args.host not in LOCAL_HOSTS:
        typer.secho(
            f"warning: listening on {args.host}: the demo has no login, so anyone who can "
            f"reach this address can use it and write to the corrections file.",
            fg=typer.colors.YELLOW, err=True,
        )
    with user_errors_fail():
        classifier = load_classifier(args.model, allow_pickle=args.allow_pickle)
    corrections = args.corrections or default_corrections_path()
    typer.echo(f"model {classifier.path} (version {classifier.model_version}); "
               f"corrections go to {corrections}", err=True)

    from serve.demo import launch

    try:
        launch(classifier, host=args.host, port=args.port, corrections_path=corrections,
               open_browser=args.open_browser)
    except OSError as err:
        fail(f"cannot serve on {args.host}:{args.port} ({err}); choose another --port or "
             "--host")
