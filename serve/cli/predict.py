"""``detente predict``: label statements given on the command line or on standard input.

Its options are ``serve.arguments.PredictArguments``; the statements are its positional
``TEXTS``, parsed like every other option.
"""

from __future__ import annotations

import json
import sys

import typer

from serve.cli.common import description_of, fail, parse_arguments, user_errors_fail


def predict(ctx: typer.Context) -> None:
    """Label statements given on the command line or on standard input."""
    from serve.arguments import PredictArguments
    from serve.loading import load_classifier

    args = parse_arguments(PredictArguments, ctx.args, prog="detente predict",
                           description=description_of(predict), positional=["texts"])
    texts = args.texts
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        fail("no statements given")
    with user_errors_fail():
        classifier = load_classifier(args.model, allow_pickle=args.allow_pickle)
    for text, pred in zip(texts, classifier.predict(texts, batch_size=args.batch_size)):
        if args.json:
            typer.echo(json.dumps({"text": text, **pred.to_dict()}, ensure_ascii=False))
        else:
            probs = "  ".join(f"{k} {v:.2f}" for k, v in pred.stance_probs.items())
            typer.echo(f"{pred.stance:<16} ({probs})  sentiment {pred.sentiment} "
                       f"{pred.sentiment_score:+.2f}  | {text}")
