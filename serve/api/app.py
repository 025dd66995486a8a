"""The FastAPI app of ``detente serve``: routes, the model's life cycle, the mounted demo.

``create_app(settings)`` returns an app that listens at once and loads the model in the
background, so that a supervisor sees a live process (``/health`` 200) while the model
loads, or while the default model is trained on first use, and sends traffic only once
``/ready`` says 200. Until then ``/v1/*`` answers 503 with ``Retry-After``. When the model
is loaded the demo (``serve.demo``'s Gradio Blocks around the same model folder) is
mounted at ``/demo`` with ``gr.mount_gradio_app``, and ``/`` redirects to it.

The same app runs in this process (``--engine local``: ``batcher.MicroBatcher``) or in
each replica of a Ray Serve deployment (``--engine ray``: ``ray_deployment``, batching
with ``@serve.batch``); only the batcher differs. Shutdown (SIGTERM): uvicorn stops
accepting connections and waits for the requests in flight, whose batches the batcher
keeps running; then the lifespan below stops the batcher.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.api.batcher import BatchFailed, MicroBatcher, QueueFull
from serve.api.limits import (
    ApiError,
    GuardMiddleware,
    RequestIdMiddleware,
    error_response,
    request_id_of,
    validation_error,
)
from serve.api.metrics import RequestMetricsMiddleware, ServiceMetrics
from serve.api.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorResponse,
    ModelInfo,
    Status,
)
from serve.api.scorer import LoadedModel
from serve.api.settings import ServeArguments

log = logging.getLogger("detente.serve")
DEMO_PATH = "/demo"
LOADING_RETRY_AFTER_S = 5
ERRORS = {status: {"model": ErrorResponse, "description": text} for status, text in {
    401: "An API key is set and the request has none, or the wrong one.",
    413: "Too many texts, a text too long, or a body too large (see GET /v1/model limits).",
    422: "Not JSON, not UTF-8, or a field of the wrong type; `field` names it.",
    429: "The queue is full; retry after `Retry-After` seconds.",
    500: "Scoring this request's batch failed; the server log has the request id.",
    503: "The model is still loading (see /ready).",
    504: "Not answered within the time limit (--timeout-s).",
}.items()}

BatcherFactory = Callable[..., Any]  # (model, settings, metrics, in_flight) -> a batcher


def local_batcher(model: LoadedModel, settings: ServeArguments, metrics: ServiceMetrics,
                  in_flight: Callable[[], int] | None = None) -> MicroBatcher:
    """The in-process micro-batcher around the model's ``score``."""
    score = functools.partial(model.score, batch_size=settings.forward_batch_size)
    return MicroBatcher(score, max_batch_size=settings.max_batch_size,
                        max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue,
                        metrics=metrics, in_flight=in_flight)


class Service:
    """The model, its batcher and the demo, and whether they are ready."""

    def __init__(
        self,
        settings: ServeArguments,
        metrics: ServiceMetrics,
        *,
        engine: str,
        model: LoadedModel | None = None,
        batcher_factory: BatcherFactory = local_batcher,
        on_load_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine = engine
        self.model = model
        self.batcher: Any = None
        self.batcher_factory = batcher_factory
        self.on_load_failure = on_load_failure
        self.status = "loading"
        self.error: str | None = None
        self.classifying = 0  # /v1/classify requests being handled
        self.demo_mounted = False
        self._stack = AsyncExitStack()
        self._task: asyncio.Task | None = None

    @property
    def serves_demo(self) -> bool:
        return self.settings.demo and self.engine == "local"

    def begin(self, app: FastAPI) -> None:
        self._task = asyncio.get_running_loop().create_task(self._start(app),
                                                            name="detente-load")

    async def _start(self, app: FastAPI) -> None:
        try:
            if self.model is None:
                self.model = await asyncio.to_thread(
                    LoadedModel.load, self.settings.model)
            self.batcher = self.batcher_factory(self.model, self.settings, self.metrics,
                                                lambda: self.classifying)
            self.batcher.start()
            if self.serves_demo:
                await self._mount_demo(app)
        except Exception as err:
            log.exception("the model could not be loaded")
            self.status, self.error = "failed", f"{type(err).__name__}: {err}"
            if self.on_load_failure:
                self.on_load_failure(err)
            return
        self.status = "ready"
        self.metrics.ready.set(1)
        self.metrics.model.info({"version": self.model.version, "backend":
                                 self.model.backend_name, "engine": self.engine})
        log.info("model %s ready (%s backend, version %s)", self.model.folder,
                 self.model.backend_name, self.model.version)

    async def _mount_demo(self, app: FastAPI) -> None:
        """Mount the demo's Blocks at /demo and start what gradio starts with its app.

        ``gr.mount_gradio_app`` hooks gradio's start-up into the host app's lifespan, which
        has already run by the time the model is loaded; so its lifespan is entered here and
        held until shutdown, and its queue started, as that hook would.
        """
        import gradio as gr

        from serve.demo import prepare_demo, serving_options
        from serve.demo_batch import BatchLimits

        limits = BatchLimits()
        demo = await asyncio.to_thread(prepare_demo, self.model.classifier,
                                       corrections_path=self.settings.corrections,
                                       limits=limits)
        gr.mount_gradio_app(app, demo, path=DEMO_PATH, server_name=self.settings.host,
                            server_port=self.settings.port, **serving_options(limits))
        gradio_app = app.router.routes[-1].app
        app.router.routes[:] = [r for r in app.router.routes
                                if getattr(r, "name", "") != "demo_loading"]
        await self._stack.enter_async_context(gradio_app.router.lifespan_context(gradio_app))
        blocks = gradio_app.get_blocks()
        blocks.run_startup_events()
        await blocks.run_extra_startup_events()
        self.demo_mounted = True

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.batcher is not None:
            await self.batcher.close()
        await self._stack.aclose()

    def ready_model(self) -> LoadedModel:
        """The loaded model, or a 503 that says why there is none yet."""
        if self.status == "ready":
            return self.model
        if self.status == "failed":
            raise ApiError(503, "model_failed", f"the model could not be loaded: {self.error}",
                           reason="loading")
        raise ApiError(503, "model_loading", "the model is loading; retry in a few seconds",
                       reason="loading",
                       headers={"Retry-After": str(LOADING_RETRY_AFTER_S)})


def create_app(
    settings: ServeArguments | None = None,
    *,
    api_key: str | None = None,
    engine: str | None = None,
    model: LoadedModel | None = None,
    batcher_factory: BatcherFactory = local_batcher,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """The service's app. ``model``: an already loaded model (tests, embedding code)."""
    settings = settings or ServeArguments()
    metrics = ServiceMetrics()
    service = Service(settings, metrics, engine=engine or settings.engine, model=model,
                      batcher_factory=batcher_factory, on_load_failure=on_load_failure)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.begin(app)
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="detente",
        summary="Stance (pro_negotiation / accusatory / neutral) and sentiment of political "
        "statements.",
        description=API_DESCRIPTION,
        version=_package_version(),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.metrics = metrics
    add_routes(app, service)
    add_error_handlers(app, metrics)
    # add_middleware wraps: the last one added sees the request first.
    app.add_middleware(GuardMiddleware, api_key=api_key,
                       max_body_bytes=settings.max_body_bytes, metrics=metrics)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


def add_routes(app: FastAPI, service: Service) -> None:
    settings, metrics = service.settings, service.metrics
    v1 = APIRouter(prefix="/v1", tags=["classify"], responses=ERRORS)

    # The results are built as plain dicts in the shape of ClassifyResponse (the tests check
    # it against the schema) and sent as they are: a second validation pass costs CPU on
    # every request for nothing (measured: benchmarks/results/notes_from_code.md).
    @v1.post("/classify", response_model=ClassifyResponse, response_class=JSONResponse)
    async def classify(body: ClassifyRequest, request: Request) -> JSONResponse:
        """Label statements: stance and sentiment, one result per text, in order.

        Concurrent requests are scored together in one model batch. An empty text keeps
        its place with `error` set; a text longer than the model reads is scored in
        sentence windows. With `explain: true` each result gets its word attributions.
        """
        model = service.ready_model()
        check_limits(body.texts, settings)
        request_id = request_id_of(request.scope)
        service.classifying += 1
        try:
            results = await asyncio.wait_for(answer(service, model, body, request_id),
                                             timeout=settings.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"not answered within {settings.timeout_s:g} s "
                           "(--timeout-s); send fewer texts per request, or retry later",
                           reason="timeout") from None
        except QueueFull as full:
            raise ApiError(429, "queue_full", f"the server is busy: {full}; retry after "
                           f"{full.retry_after} s", reason="queue_full",
                           headers={"Retry-After": str(full.retry_after)}) from None
        except BatchFailed:
            raise ApiError(500, "batch_failed", "scoring this request's batch failed; the "
                           f"server log has the cause under request id {request_id}",
                           reason="failed_batch") from None
        finally:
            service.classifying -= 1
        return JSONResponse({"model_version": model.version, "results": results})

    @v1.get("/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        """The model card summary, labels, version, backend, metrics and the limits."""
        model = service.ready_model()
        return ModelInfo(**model.info(), engine=service.engine, limits=settings.limits())

    app.include_router(v1)

    @app.get("/health", response_model=Status, tags=["operations"],
             responses={503: {"model": Status, "description": "The model failed to load."}})
    async def health() -> JSONResponse:
        """Liveness: 200 while the process serves (also while the model loads)."""
        failed = service.status == "failed"
        return JSONResponse({"status": "failed" if failed else "ok", "error": service.error},
                            status_code=503 if failed else 200)

    @app.get("/ready", response_model=Status, tags=["operations"],
             responses={503: {"model": Status, "description": "Loading, or failed to load."}})
    async def ready() -> JSONResponse:
        """Readiness: 200 once the model is loaded, 503 before (and if loading failed)."""
        body = {"status": service.status, "error": service.error,
                "model_version": service.model.version if service.status == "ready" else None}
        return JSONResponse(body, status_code=200 if service.status == "ready" else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text format)."""
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        if service.serves_demo:
            return RedirectResponse(DEMO_PATH + "/")
        return RedirectResponse("/docs")

    async def demo_loading(rest: str = "") -> JSONResponse:
        return JSONResponse({"status": service.status, "error": "the demo starts once the "
                             "model is loaded; retry in a few seconds"}, status_code=503,
                            headers={"Retry-After": str(LOADING_RETRY_AFTER_S)})

    if service.serves_demo:  # replaced by the demo itself once the model is loaded
        for path in (DEMO_PATH, DEMO_PATH + "/{rest:path}"):
            app.add_api_route(path, demo_loading, include_in_schema=False, name="demo_loading")


def check_limits(texts: list[str], settings: ServeArguments) -> None:
    """413 for too many texts or a text too long, naming the field."""
    if len(texts) > settings.max_texts:
        raise ApiError(413, "payload_too_large", f"texts has {len(texts):,} texts; the limit "
                       f"is {settings.max_texts:,} per request (--max-texts): split the list",
                       field="texts", reason="too_large")
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            raise ApiError(413, "payload_too_large", f"texts[{i}] has {len(text):,} "
                           f"characters; the limit is {settings.max_chars:,} (--max-chars)",
                           field=f"texts[{i}]", reason="too_large")


async def answer(service: Service, model: LoadedModel, body: ClassifyRequest,
                 request_id: str) -> list[dict[str, Any]]:
    """Score through the batcher; then, if asked, explain each scored text on the model thread."""
    results = await service.batcher.submit(body.texts, request_id)
    scored = [r for r in results if r["error"] is None]
    service.metrics.statements.labels("scored").inc(len(scored))
    service.metrics.statements.labels("error").inc(len(results) - len(scored))
    if body.explain:
        results = [dict(r) for r in results]
        for text, result in zip(body.texts, results):
            result["explanation"] = None if result["error"] is not None else (
                await service.batcher.run(model.explain, text, result["stance"]))
    return results


def add_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Every error as ``ErrorResponse`` JSON, and counted by reason."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        if error.reason:
            metrics.rejected.labels(error.reason).inc()
        return error_response(error, request_id_of(request.scope))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("invalid").inc()
        return error_response(validation_error(list(exc.errors())), request_id_of(request.scope))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        error = ApiError(exc.status_code, kind, str(exc.detail),
                         headers=getattr(exc, "headers", None))
        return error_response(error, request_id_of(request.scope))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        request_id = request_id_of(request.scope)
        log.error("request %s failed", request_id, exc_info=exc)
        error = ApiError(500, "internal_error", "the server failed on this request; its log "
                         f"has the cause under request id {request_id}")
        return error_response(error, request_id)


def _package_version() -> str:
    try:
        return version("detente")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "0"


API_DESCRIPTION = """\
Label political statements with a **stance** (`pro_negotiation`, `accusatory`,
`neutral`) and a **sentiment** (`negative`, `neutral`, `positive`, and a score from
-1 to 1), with the same model and numbers as `detente score`.

```bash
curl -s http://127.0.0.1:8000/v1/classify -H 'Content-Type: application/json' \\
  -d '{"texts": ["We are ready to talk, but the other side keeps stalling."]}'
```

Every error is JSON with `error` (a sentence), `type`, `field` and `request_id`.
When an API key is set, `/v1/*` need `Authorization: Bearer <key>`.
The demo is at [/demo](/demo/); Prometheus metrics at [/metrics](/metrics).
"""
