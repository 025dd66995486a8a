"""``detente serve --engine ray``: the same FastAPI app as a Ray Serve deployment.

Each replica builds the app with ``create_app`` (``serve.ingress`` with a builder, so the
app is made on the replica, not pickled) and loads the model once; the only difference from
``--engine local`` is the batcher: ``ServeBatcher`` submits each statement to a function
decorated with Ray Serve's ``@serve.batch``, which gathers up to ``--max-batch-size``
statements for ``--max-wait-ms``, so batches are counted in statements as locally. Ray
Serve's proxy spreads requests over ``--replicas`` replicas, on this machine or the cluster
at ``RAY_ADDRESS`` (Ray is started or reached by ``serve.ray_engine.init_ray``, as for
``detente score --engine ray``).

The model is resolved once, in the driver, before any replica starts: the default model
trained if missing, the ``auto`` backend chosen and its ONNX graph exported into the model
folder's cache, so replicas only load. On a cluster the model folder must be at the same
path on every node (a shared file system), as for ``detente score --engine ray``.

The demo is not served by replicas (its Gradio queue keeps per-process state that a
load-balanced client would lose between requests); run ``detente demo`` beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serve.api.batcher import BatchFailed, QueueFull
from serve.api.metrics import ServiceMetrics
from serve.api.scorer import LoadedModel
from serve.api.settings import ServeArguments
from serve.loading import resolve

APP_NAME = "detente"


class ServeBatcher:
    """The batcher of a Ray Serve replica: ``@serve.batch`` over single statements."""

    def __init__(self, model: LoadedModel, settings: ServeArguments,
                 metrics: ServiceMetrics) -> None:
        from ray import serve

        self.max_queue = settings.max_queue
        self.metrics = metrics
        self._outstanding = 0  # statements submitted and not yet answered, in this replica
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detente-model")
        executor = self._executor
        score = functools.partial(model.score, batch_size=settings.forward_batch_size)

        @serve.batch(max_batch_size=settings.max_batch_size,
                     batch_wait_timeout_s=settings.max_wait_ms / 1000.0)
        async def score_batch(texts: list[str]) -> list[dict[str, Any]]:
            started = time.perf_counter()
            results = await asyncio.get_running_loop().run_in_executor(executor, score,
                                                                       list(texts))
            metrics.batch_size.observe(len(texts))
            metrics.batch_duration.observe(time.perf_counter() - started)
            return results

        self._score_batch = score_batch

    @property
    def queued(self) -> int:
        return self._outstanding

    def start(self) -> None:
        pass

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: list[str], request_id: str = "-") -> list[dict[str, Any]]:
        n = len(texts)
        if self._outstanding and self._outstanding + n > self.max_queue:
            raise QueueFull(self._outstanding, self.max_queue, retry_after=1)
        self._set_outstanding(self._outstanding + n)
        try:
            return list(await asyncio.gather(*(self._score_batch(t) for t in texts)))
        except (asyncio.CancelledError, QueueFull):
            raise
        except Exception as err:
            raise BatchFailed(f"{type(err).__name__}: {err}") from err
        finally:
            self._set_outstanding(self._outstanding - n)

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _set_outstanding(self, value: int) -> None:
        self._outstanding = value
        self.metrics.queue_depth.set(value)


def serve_batcher(model: LoadedModel, settings: ServeArguments, metrics: ServiceMetrics,
                  in_flight=None) -> ServeBatcher:
    """``app.local_batcher``'s counterpart; ``@serve.batch`` always waits its timeout."""
    return ServeBatcher(model, settings, metrics)


def build_application(settings: ServeArguments, api_key: str | None, model_dir: str):
    """The bound Ray Serve application: ``--replicas`` replicas of the service's app."""
    from ray import serve

    replica_settings = dataclasses.replace(settings, model=model_dir, demo=False)

    def build_app():
        from serve.api.app import create_app
        from serve.api.ray_deployment import serve_batcher

        return create_app(replica_settings, api_key=api_key, engine="ray",
                          batcher_factory=serve_batcher)

    deployment = serve.deployment(
        serve.ingress(build_app)(),
        name=APP_NAME,
        num_replicas=settings.replicas,
        # requests in flight per replica; the replica's own queue (--max-queue) says 429
        max_ongoing_requests=settings.max_queue,
    )
    return deployment.bind()


def start(settings: ServeArguments, api_key: str | None) -> str:
    """Resolve the model, start (or reach) Ray and Serve, deploy; returns the model folder."""
    from serve.ray_engine import init_ray

    resolved = resolve(settings.model, "auto")  # trains the default model if missing
    init_ray()
    try:
        from ray import serve
    except ImportError as err:
        raise RuntimeError(f"--engine ray needs Ray Serve ({err}); install it with "
                           "pip install 'detente[ray]'") from err

    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, api_key, str(resolved.folder)), name=APP_NAME,
              route_prefix="/")
    return str(resolved.folder)


def stop() -> None:
    """Remove the deployment (Ray Serve drains its replicas) and leave Ray."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def run_with_ray(settings: ServeArguments, api_key: str | None) -> None:
    """Deploy, then wait for SIGINT or SIGTERM and shut down."""
    folder = start(settings, api_key)
    where = f"http://{settings.host}:{settings.port}"
    print(f"detente serve (Ray Serve, {settings.replicas} replica(s) of {folder}) at {where}: "
          f"POST {where}/v1/classify, docs {where}/docs; Ctrl+C to stop", file=sys.stderr,
          flush=True)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
