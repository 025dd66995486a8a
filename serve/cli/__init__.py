"""The ``detente`` command line: one typer app, a module per command group.

This module only builds the app: each command is a function in its own module (``train``,
``predict``, ``evaluate``, ``retrain``, ``demo``, ``score``, ``service`` for ``detente
serve``, ``data``), registered below. None of them imports this module back; what they
share (the error path, option parsing) is ``serve.cli.common``.

Every command reads its options from a dataclass (``training.arguments``,
``serve.arguments``, ``serve.api.settings``) through ``serve.option_parsing``: typer hands it
the raw arguments (``PASSTHROUGH``), so typer declares no option and no default itself.
The command modules import nothing heavy at module level, so ``detente --help`` does not
import torch.
"""

from __future__ import annotations

import os

import typer

from serve.cli import data, demo, evaluate, predict, retrain, score, service, train
from serve.cli.common import PASSTHROUGH

# Nothing the CLI runs by default needs the Hub; set HF_HUB_OFFLINE=0 to use a Hub id. Set
# when the CLI is imported, before any command imports transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    help="detente: stance (pro_negotiation / accusatory / neutral) and sentiment of "
    "political statements.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command(context_settings=PASSTHROUGH)(train.train)
app.command(context_settings=PASSTHROUGH)(predict.predict)
app.command(context_settings=PASSTHROUGH)(evaluate.evaluate)
app.command(context_settings=PASSTHROUGH)(retrain.retrain)
app.command(context_settings=PASSTHROUGH)(demo.demo)
app.command(context_settings=PASSTHROUGH)(score.score)
app.command("select-backend", context_settings=PASSTHROUGH)(score.select_backend)
app.command(context_settings=PASSTHROUGH)(service.serve)

data_app = typer.Typer(help="Check labelled data files.", no_args_is_help=True)
data_app.command("check", context_settings=PASSTHROUGH)(data.check)
app.add_typer(data_app, name="data")


def main() -> None:
    app()
