"""Operations endpoints. On the public port: liveness (/healthz) and a detail-free readiness answer (/readyz),
what a load balancer needs. On the ops listener (settings ops_host:ops_port, app/main.py): Prometheus metrics
summed over every worker process, readiness with each dependency named, and liveness again."""

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
API_APP = web.AppKey("api_app", web.Application)  # the ops listener's: the API application it reports on
# set once the process has reached Cassandra and built its services (app/main.py); until then only the ops
# listener answers (its public port opens after)
SERVING = web.AppKey("serving", asyncio.Event)
NOT_READY_RETRY_AFTER = "5"


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
    """The public readiness answer: 200 while this process can serve (Cassandra answers), 503 + Retry-After
    while it cannot, or is still waiting for it at start. No detail: which dependency is down is the ops
    listener's to tell (`readyz_detail`), not anyone's on the internet."""
    if await _check_cassandra(request.app):
        return json_response({"status": "ok"})
    return json_response({"status": "unavailable"}, status=503, headers={"Retry-After": NOT_READY_RETRY_AFTER})


async def readyz_detail(request: web.Request) -> web.Response:
    """The ops listener's readiness: 200 while Cassandra answers (naming a degraded Redis or Kafka and what
    that stops); 503 when it does not, or has not answered yet since the start ("starting": true)."""
    app = request.app[API_APP]
    cassandra, redis, kafka = await asyncio.gather(_check_cassandra(app), _check_redis(app), _check_kafka(app))
    checks = {
        "cassandra": "ok" if cassandra else "down",
        "redis": "ok" if redis else "degraded",
        "kafka": "ok" if kafka else "degraded",
    }
    if not cassandra:
        body: dict = {"status": "unavailable", "checks": checks}
        if not _serving(app):
            body["starting"] = True
        return json_response(body, status=503, headers={"Retry-After": NOT_READY_RETRY_AFTER})
    degraded = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "degraded" if degraded else "ok", "checks": checks}
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


def _serving(app: web.Application) -> bool:
    """Whether the API has reached Cassandra and built its services since it started (app/main.py)."""
    serving = app.get(SERVING)
    return serving is None or serving.is_set()


async def _check_cassandra(app: web.Application) -> bool:
    if not _serving(app):
        return False
    try:
        await app[CASSANDRA].ping(timeout=2.0)
    except Exception:  # any failure means "cannot serve", whatever the driver raised
        return False
    return True


async def _check_kafka(app: web.Application) -> bool:
    events = app.get(EVENTS)  # not there in the first moments of a start
    return events is not None and await events.is_healthy()


async def _check_redis(app: web.Application) -> bool:
    if REDIS not in app:
        return False
    try:
        return bool(await asyncio.wait_for(app[REDIS].ping(), timeout=1.0))
    except Exception:  # a timeout, a refused connection, a protocol error: all mean degraded
        return False


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: this process's CPU is added first; with several API processes their metric files are
    read and summed (off the event loop), so whichever process the scrape reaches answers for all of them."""
    cpu = request.app[API_APP].get(CPU_METER)
    body = await asyncio.get_running_loop().run_in_executor(None, exposition, cpu)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [  # the public port's (and the OpenAPI document's)
    Route("GET", "/healthz", healthz, "The process is alive", public=True, responses={200: "Health"}, tag="ops"),
    Route(
        "GET",
        "/readyz",
        readyz,
        "Whether this process can serve (no detail: the ops listener names each dependency)",
        public=True,
        responses={200: "Health", 503: "Health"},
        tag="ops",
    ),
]


def ops_app(api: web.Application) -> web.Application:
    """The ops listener's application, reporting on the API application `api` (app/main.py serves it on
    ops_host:ops_port). Its requests are not counted in the request metrics: scrapes are not traffic."""
    ops = web.Application()
    ops[API_APP] = api
    ops.router.add_get("/metrics", metrics)
    ops.router.add_get("/readyz", readyz_detail)
    ops.router.add_get("/healthz", healthz)
    return ops
