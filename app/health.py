"""Operations endpoints: liveness, readiness with each dependency named, Prometheus metrics."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram

from app.context import CASSANDRA, EVENTS, REDIS
from app.metrics import CpuMeter, exposition
from app.web import Route, json_response

REQUESTS = Counter("photos_http_requests_total", "HTTP requests served", ["method", "route", "status"])
LATENCY = Histogram(
    "photos_http_request_seconds",
    "HTTP request latency (handler and middleware), by route as \"<METHOD> <path template>\"",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
UNMATCHED = "unmatched"  # no route: 404, 405
CPU_METER = web.AppKey("cpu_meter", CpuMeter)  # this process's, added at each scrape (app/main.py starts it)


class RouteLabels:
    """The labels of one aiohttp route: `template` ("/v1/feed": photos_http_requests_total's route) and
    `cost` ("GET /v1/feed": the route of the cost metrics (app/metrics.py) and of the latency)."""

    __slots__ = ("cost", "template")

    def __init__(self, template: str, cost: str) -> None:
        self.template = template
        self.cost = cost


_UNMATCHED = RouteLabels(UNMATCHED, UNMATCHED)
_route_labels: dict[object, RouteLabels] = {}
_request_children: dict[tuple[str, str, int], tuple] = {}  # (method, cost route, status) -> metric children


def route_labels(request: web.Request) -> RouteLabels:
    """The request's route labels, worked out once per route (the router has matched before middlewares run)."""
    route = request.match_info.route
    labels = _route_labels.get(route)
    if labels is None:
        resource = route.resource if route is not None else None
        if resource is None:
            return _UNMATCHED
        labels = _route_labels[route] = RouteLabels(resource.canonical, f"{route.method} {resource.canonical}")
    return labels


def observe(request: web.Request, status: int, started: float, labels: RouteLabels | None = None) -> None:
    labels = labels or route_labels(request)
    key = (request.method, labels.cost, status)
    children = _request_children.get(key)
    if children is None:
        children = (REQUESTS.labels(request.method, labels.template, str(status)),
                    LATENCY.labels(request.method, labels.cost))
        if len(_request_children) < 10_000:  # the method is the client's: do not keep every one it makes up
            _request_children[key] = children
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 while Cassandra answers (naming a degraded Redis or Kafka); 503 when it does not."""
    cassandra, redis, kafka = await asyncio.gather(
        _check_cassandra(request), _check_redis(request), request.app[EVENTS].is_healthy()
    )
    checks = {
        "cassandra": "ok" if cassandra else "down",
        "redis": "ok" if redis else "degraded",
        "kafka": "ok" if kafka else "degraded",
    }
    if not cassandra:
        return json_response({"status": "unavailable", "checks": checks}, status=503, headers={"Retry-After": "5"})
    degraded = [name for name, state in checks.items() if state != "ok"]
    body: dict = {"status": "degraded" if degraded else "ok", "checks": checks}
    if degraded:
        body["effects"] = {name: DEGRADED_EFFECTS[name] for name in degraded}
    return json_response(body)


# what still works while a dependency other than Cassandra is down (docs/reliability.md, "When a dependency is down")
DEGRADED_EFFECTS = {
    "redis": "the feed cache is bypassed: every feed read comes from Cassandra; sessions are read from Cassandra"
             " on every request; rate limits count per process;"
             " notification pushes pause (sockets stay open and get resync) and WebSocket tickets answer 503;"
             " search answers 503 (the workers rebuild its index when Redis is back)",
    "kafka": "writes that publish events (posts, follows, likes, comments, stories, story views) answer 503;"
             " reads are served",
}


async def _check_cassandra(request: web.Request) -> bool:
    try:
        await request.app[CASSANDRA].ping(timeout=2.0)
    except Exception:  # any failure means "cannot serve", whatever the driver raised
        return False
    return True


async def _check_redis(request: web.Request) -> bool:
    try:
        return bool(await asyncio.wait_for(request.app[REDIS].ping(), timeout=1.0))
    except Exception:  # a timeout, a refused connection, a protocol error: all mean degraded
        return False


async def metrics(request: web.Request) -> web.Response:
    # this process's CPU is added first; several API processes: their metric files are read and summed,
    # off the event loop
    cpu = request.app.get(CPU_METER)
    body = await asyncio.get_running_loop().run_in_executor(None, exposition, cpu)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [
    Route("GET", "/healthz", healthz, "The process is alive", public=True, responses={200: "Health"}, tag="ops"),
    Route(
        "GET",
        "/readyz",
        readyz,
        "Whether the API can serve; each dependency reported",
        public=True,
        responses={200: "Ready", 503: "Ready"},
        tag="ops",
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (text exposition format)",
        public=True,
        responses={200: "Prometheus text"},
        tag="ops",
    ),
]
