"""What the service refuses, and how it says so: auth, size limits, bad JSON, one error shape.

Every error is JSON (``schemas.ErrorResponse``): a sentence, its ``type``, the ``field`` it
is about when there is one, and the ``request_id`` that is also in the ``X-Request-ID``
header and the server's log line, so a client's report can be matched to the log.

``GuardMiddleware`` runs before FastAPI parses anything, on ``/v1/*`` only:

1. auth, when a key is set: ``Authorization: Bearer <key>``, compared in constant time
   (``hmac.compare_digest``) so the time taken leaks nothing about the key; 401 otherwise;
2. the body size: a ``Content-Length`` over ``max_body_bytes`` is refused before reading,
   and a chunked body is counted as it arrives and cut off at the limit (413);
3. the body must be JSON (``Content-Type: application/json``, or none) encoded as UTF-8
   (422 naming the byte otherwise).

Checking these before parsing means an oversized or unauthenticated body is never held in
memory whole, and FastAPI's own "error parsing the body" (400, no field) never happens.
"""

from __future__ import annotations

import hmac
import itertools
import re
import secrets
from typing import Any

from starlette.responses import JSONResponse

from serve.api.metrics import ServiceMetrics

REQUEST_ID_HEADER = "X-Request-ID"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Ids are a random per-process prefix and a counter: unique, and far cheaper than a uuid4
# per request (measured: benchmarks/results/notes_from_code.md).
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)
API_PREFIX = "/v1/"


class ApiError(Exception):
    """An error answered as JSON with ``status``; ``reason`` labels the rejection metric."""

    def __init__(self, status: int, type: str, message: str, *, field: str | None = None,
                 reason: str | None = None, headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.field = status, type, message, field
        self.reason, self.headers, self.errors = reason, headers, errors


def error_response(error: ApiError, request_id: str) -> JSONResponse:
    body: dict[str, Any] = {"error": error.message, "type": error.type, "field": error.field,
                            "request_id": request_id}
    if error.errors:
        body["errors"] = error.errors
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def request_id_of(scope) -> str:
    return scope.get("state", {}).get("request_id", "-")


class RequestIdMiddleware:
    """Gives each request an id (the client's ``X-Request-ID`` if it is a safe token)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = (given if SAFE_REQUEST_ID.fullmatch(given)
                      else f"{_ID_PREFIX}-{next(_ID_COUNTER):07d}")
        scope.setdefault("state", {})["request_id"] = request_id

        async def add_header(message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, add_header)


class GuardMiddleware:
    """Auth, body size and UTF-8 for ``/v1/*`` (see the module docstring)."""

    def __init__(self, app, *, api_key: str | None, max_body_bytes: int,
                 metrics: ServiceMetrics) -> None:
        self.app = app
        self.api_key = api_key.encode("utf-8") if api_key else None
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            self._check_auth(scope)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                kind = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
                if not is_json_content_type(kind):
                    raise content_type_error(kind)
                body = await self._read_body(scope, receive)
                receive = _replay(body, receive)
        except ApiError as error:
            if error.reason:
                self.metrics.rejected.labels(error.reason).inc()
            await error_response(error, request_id_of(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_auth(self, scope) -> None:
        if self.api_key is None:
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        # compare_digest on the whole token, whatever its length, before looking at the scheme
        matches = hmac.compare_digest(token.strip(), self.api_key)
        if not (matches and scheme.lower() == b"bearer"):
            raise ApiError(401, "unauthorized",
                           "this service needs an API key: send 'Authorization: Bearer <key>'",
                           reason="unauthorized", headers={"WWW-Authenticate": "Bearer"})

    async def _read_body(self, scope, receive) -> bytes:
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit, at_least=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ApiError(422, "invalid_request",
                           f"the body is not valid UTF-8 (byte {err.start}: "
                           f"{body[err.start:err.start + 1]!r}); send JSON encoded as UTF-8",
                           field="body", reason="invalid") from None
        return body


def _too_large(size: int, limit: int, at_least: bool = False) -> ApiError:
    more = "more than " if at_least else ""
    return ApiError(413, "payload_too_large",
                    f"the body is {more}{size:,} bytes; the limit is {limit:,} "
                    "(--max-body-bytes): send fewer or shorter texts per request",
                    field="body", reason="too_large")


def _replay(body: bytes, receive):
    """A ``receive`` that hands the already-read body to the app, then the real stream."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ----------------------------------------------------------------------------- 422 wording


def field_name(loc: tuple | list) -> str:
    """``("body", "texts", 3)`` -> ``texts[3]``; the body itself is ``body``."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


WANTED = {"string_type": "a string", "bool_type": "true or false", "list_type":
          "a list of strings (or one string)", "model_attributes_type":
          'a JSON object such as {"texts": ["..."]}', "dict_type":
          'a JSON object such as {"texts": ["..."]}'}


def describe_validation_error(err: dict[str, Any]) -> dict[str, str]:
    """One pydantic/FastAPI validation error as ``{"field", "message"}`` in plain words."""
    field = field_name(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "json_invalid":
        detail = (err.get("ctx") or {}).get("error", "not valid JSON")
        position = err["loc"][1] if len(err.get("loc", ())) > 1 else None
        where = f" at character {position}" if isinstance(position, int) else ""
        return {"field": "body", "message": f"the body is not valid JSON: {detail}{where}"}
    if kind == "missing":
        if field == "body":
            return {"field": field, "message": 'the request has no body: send a JSON object '
                    'such as {"texts": ["..."]}'}
        return {"field": field, "message": f"{field} is required"}
    if kind == "extra_forbidden":
        return {"field": field, "message": f"{field} is not a field of this request (the "
                "fields are texts and explain)"}
    if kind in WANTED:
        got = json_type(err.get("input"))
        return {"field": field, "message": f"{field} should be {WANTED[kind]}, not {got}"}
    return {"field": field, "message": f"{field}: {err.get('msg', 'invalid')}"}


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """A 422 naming the first problem in its sentence and listing all of them."""
    described = [describe_validation_error(e) for e in errors] or [
        {"field": "body", "message": "the request is not valid"}]
    first = described[0]
    return ApiError(422, "invalid_request", first["message"], field=first["field"],
                    reason="invalid", errors=described if len(described) > 1 else None)


def is_json_content_type(value: str | None) -> bool:
    if not value:
        return True  # FastAPI reads a body without Content-Type as JSON
    kind = value.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def content_type_error(value: str) -> ApiError:
    return ApiError(422, "invalid_request",
                    f"the body must be JSON (Content-Type: application/json), not {value!r}",
                    field="body", reason="invalid")
