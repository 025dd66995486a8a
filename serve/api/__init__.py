"""``detente serve``: the classifier as an HTTP service (issue 13).

One process serves programs (a JSON API) and people (the Gradio demo, mounted at /demo)
from one loaded model. A module per idea:

- ``settings``: ``ServeArguments``, every option once, from flags or ``DETENTE_*`` variables;
- ``schemas``: the request and response models (the OpenAPI at /docs);
- ``scorer``: the model, loaded and scored exactly as ``detente score`` does;
- ``batcher``: micro-batching of concurrent requests, with a bounded queue;
- ``limits``: API-key auth, body limits, and one JSON shape for every error;
- ``metrics``: Prometheus metrics at /metrics;
- ``app``: the FastAPI app, its routes and the model's life cycle;
- ``ray_deployment``: the same app as a Ray Serve deployment (``--engine ray``).

The ``detente serve`` command itself (uvicorn, or Ray Serve) is ``serve.cli.service``.
"""

from __future__ import annotations

from serve.api.settings import ServeArguments

__all__ = ["ServeArguments", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # imported on use: fastapi and the model stack are heavy
        from serve.api.app import create_app

        return create_app
    raise AttributeError(name)
