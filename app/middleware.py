"""Request middlewares: errors to JSON (one place for every status), request metrics, and the route every
cost metric of the request's work is counted for (app/metrics.py); and the headers every answer carries
(`security_headers`, run as each response is prepared, so error answers and WebSocket handshakes get them too)."""

from __future__ import annotations

import logging
import time

from aiohttp import hdrs, web
from botocore.exceptions import BotoCoreError, ClientError
from cassandra import OperationTimedOut, ReadFailure, ReadTimeout, WriteFailure, WriteTimeout
from cassandra import Unavailable as CassandraUnavailable
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from redis.exceptions import RedisError

from app.errors import AppError, RequestTimeout
from app.health import observe, route_labels
from app.media.store import MediaStoreError
from app.metrics import ROUTE
from app.web import json_response

log = logging.getLogger(__name__)

# a store the request needs did not answer in time or failed: retryable, so 503
DEPENDENCY_DOWN = (
    NoHostAvailable, OperationTimedOut, ReadTimeout, WriteTimeout, ReadFailure, WriteFailure, CassandraUnavailable,
    ConnectionException, RedisError, BotoCoreError, ClientError, MediaStoreError,
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: no answer may be sniffed into another type (an uploaded image read as HTML), no
    JSON answer may be kept by a cache (each is one user's view, and some carry a token or a ticket), and no
    answer names the server software and its version (aiohttp adds `Server: Python/... aiohttp/...`), which
    only helps someone matching known vulnerabilities. A handler that set its own Cache-Control keeps it."""
    response.headers.popall(hdrs.SERVER, None)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "application/json":
        response.headers.setdefault(hdrs.CACHE_CONTROL, "no-store")


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


@web.middleware
async def errors_as_json(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    labels = route_labels(request)
    route_token = ROUTE.set(labels.cost)  # what the handler's work sends to the stores counts for this route
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except AppError as exc:
        status = exc.status
        response = json_response(error_body(exc.code, exc.message), status=exc.status, headers=exc.headers)
        if isinstance(exc, RequestTimeout):
            response.force_close()  # the rest of the body may never come: the connection is closed after it
        return response
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_response(error_body(code, exc.reason), status=exc.status, headers=headers)
    except DEPENDENCY_DOWN as exc:
        status = 503
        log.warning("%s %s: dependency unavailable: %r", request.method, request.path, exc)
        return json_response(
            error_body("service_unavailable", "a storage dependency is unavailable; retry shortly"),
            status=503,
            headers={"Retry-After": "2"},
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_response(error_body("internal_error", "something went wrong on our side"), status=500)
    finally:
        ROUTE.reset(route_token)
        observe(request, status, started, labels)
