"""The API process: `init_app()` wires everything; `main()` runs N worker processes on one port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from cassandra.cluster import Cluster

from app import health, openapi
from app.comments import routes as comment_routes
from app.context import (
    CASSANDRA,
    EVENTS,
    IDEMPOTENCY,
    IMAGE_PROCESSOR,
    LIMITER,
    MEDIA_STORE,
    OPENAPI_DOCUMENT,
    REDIS,
    SESSIONS,
    SETTINGS,
    TRUSTED_PROXIES,
    service_key,
)
from app.events import EventPublisher
from app.feed import routes as feed_routes
from app.forwarded import TrustedProxies
from app.hashtags import routes as hashtag_routes
from app.likes import routes as like_routes
from app.media import routes as media_routes
from app.media.processor import ImageProcessor
from app.media.store import S3MediaStore, make_media_store
from app.metrics import CpuMeter
from app.middleware import errors_as_json, security_headers
from app.notifications import routes as notification_routes
from app.posts import routes as post_routes
from app.search import routes as search_routes
from app.settings import Settings
from app.storage import cassandra
from app.stories import routes as story_routes
from app.trending import routes as trending_routes
from app.users import routes as user_routes
from app.web import Route, add_routes
from app.wiring import Caches, Storage, build_services, redis_client

log = logging.getLogger("photos.api")

# a worker of `photos-api --workers N` that dies is started again: after 1 s, doubling while it keeps
# dying within a minute of its start, at most every 30 s
WORKER_STABLE_AFTER_S = 60.0
WORKER_MAX_RESTART_DELAY_S = 30.0
WORKER_POLL_S = 0.2

MAX_UPLOAD_BYTES = 21 * 1024 * 1024
MAX_LINGERING_S = 10.0  # aiohttp's default  # routes that take JSON enforce their own, much smaller, limit


def all_routes() -> list[Route]:
    return [*health.ROUTES, *openapi.ROUTES, *user_routes.ROUTES, *post_routes.ROUTES, *feed_routes.ROUTES,
            *like_routes.ROUTES, *comment_routes.ROUTES, *notification_routes.ROUTES,
            *media_routes.ROUTES, *trending_routes.ROUTES, *hashtag_routes.ROUTES, *story_routes.ROUTES,
            *search_routes.ROUTES]


async def ops_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """The ops listener (app/health.py: /metrics, the detailed /readyz) on ops_host:ops_port, beside the public
    port. The processes of `photos-api --workers N` share it as they share the public port (SO_REUSEPORT):
    a scrape reaches any one of them, which answers with every process's metrics summed."""
    settings = app[SETTINGS]
    if not settings.ops_port:
        yield
        return
    ops = health.ops_app(app)
    ops.on_response_prepare.append(security_headers)
    runner = web.AppRunner(ops, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.ops_host, settings.ops_port, reuse_port=True).start()
    yield
    await runner.cleanup()


async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cassandra, every table owner prepared on it, and the services built from them (app/wiring.py), each put
    under its app key (app/context.py) for the routes.

    While Cassandra cannot be reached this waits (connect_when_up), and the public port, which opens only once
    the start-up is done, is not listening yet: the processes sharing it (SO_REUSEPORT) are only ones that can
    serve, and a load balancer sees this one as down. The ops listener, started before, answers /healthz (alive)
    and /readyz 503 ("starting") meanwhile."""
    settings = app[SETTINGS]
    cluster, storage = await connect_when_up(settings)
    app[CASSANDRA] = storage.cass
    caches = Caches.for_settings(settings, app[REDIS])
    services = build_services(settings, storage, caches, app[EVENTS], app[MEDIA_STORE], app[IMAGE_PROCESSOR])
    app[SESSIONS] = services.sessions
    app[LIMITER] = services.limiter
    app[IDEMPOTENCY] = services.idempotency
    for service in services.domain():
        app[service_key(type(service))] = service
    app[health.SERVING].set()
    log.info("Cassandra answers: serving")
    yield
    await services.close()
    await cassandra.shutdown(cluster)


async def connect_when_up(settings: Settings) -> tuple[Cluster, Storage]:
    """Connect to Cassandra and prepare every statement, waiting (with back-off, a line in the log each time)
    while that fails: an API started during an outage starts serving when Cassandra is back instead of exiting."""
    delay = 0.5
    while True:
        cluster = None
        try:
            cluster, session = await cassandra.connect(settings, settings.cassandra_keyspace,
                                                       slot_wait_s=settings.cassandra_slot_wait_s)
            await session.ping(timeout=settings.cassandra_request_timeout_s)  # prepares the readiness check now
            return cluster, await Storage.prepare(session)
        except Exception as exc:  # NoHostAvailable and the like: nothing to serve without it yet
            if cluster is not None:
                await cassandra.shutdown(cluster)
            log.warning("Cassandra unreachable (%r); trying again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.cassandra_reconnect_max_delay_s)


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = redis_client(settings)
    app[REDIS] = client
    yield
    await client.aclose()


async def cpu_ctx(app: web.Application) -> AsyncIterator[None]:
    """photos_process_cpu_seconds_total{kind="api"}: this process's CPU, added every second and at each scrape."""
    async with CpuMeter("api").running() as meter:
        app[health.CPU_METER] = meter
        yield


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    publisher = EventPublisher(app[SETTINGS])
    await publisher.start()
    app[EVENTS] = publisher
    yield
    await publisher.stop()


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = make_media_store(settings)
    if isinstance(store, S3MediaStore) and settings.s3_endpoint_url:
        await store.ensure_bucket()  # a local S3-compatible server starts empty; AWS buckets are provisioned
    processor = ImageProcessor(settings.media_workers, settings.max_image_pixels)
    app[MEDIA_STORE] = store
    app[IMAGE_PROCESSOR] = processor
    yield
    processor.close()
    await store.close()


def init_app(settings: Settings | None = None) -> web.Application:
    """The aiohttp application, with every client created in a cleanup context (nothing at import)."""
    settings = settings or Settings.from_env()
    settings.require_own_secret()  # before anything is built: the API signs cursors with it
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_UPLOAD_BYTES)
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app[TRUSTED_PROXIES] = TrustedProxies(settings.trusted_proxies)
    app[health.SERVING] = asyncio.Event()
    routes = all_routes()
    app[OPENAPI_DOCUMENT] = orjson.dumps(openapi.build_document(routes))
    add_routes(app, routes)
    app.cleanup_ctx.extend([cpu_ctx, ops_listener_ctx, redis_ctx, events_ctx, media_ctx, backend_ctx])
    app.on_shutdown.append(notification_routes.close_streams)  # open WebSockets would hold shutdown up
    return app


def run_worker(settings: Settings) -> None:
    """One API process; with several, they share the port through SO_REUSEPORT."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        uvloop = None
    web.run_app(
        init_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        reuse_port=True,
        # after an answer given before the body was read (a 408 among them) the rest of the body is read and
        # dropped for at most this long, then the connection is closed: no longer than a body may be silent
        lingering_time=min(settings.body_read_idle_timeout_s, MAX_LINGERING_S),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop() if uvloop else None,
    )


def run_workers(settings: Settings, count: int) -> int:
    """Start `count` worker processes, start again any that dies (the others keep serving the port), and
    stop them all when this one is told to stop."""
    env = dict(os.environ)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="photos-metrics-"))

    def start(index: int) -> subprocess.Popen:
        worker_env = env if settings.id_shard < 0 else {**env, "PHOTOS_ID_SHARD": str(settings.id_shard + index)}
        return subprocess.Popen([sys.executable, "-m", "app.main", "--worker"], env=worker_env)  # own id shard each

    workers = [start(i) for i in range(count)]
    started_at = [time.monotonic()] * count
    quick_exits = [0] * count
    log.info("API on http://%s:%d with %d worker processes; ops listener (/metrics, /readyz) on %s", settings.api_host,
             settings.api_port, count, f"{settings.ops_host}:{settings.ops_port}" if settings.ops_port else "none")
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    restart_at: dict[int, float] = {}
    while not stopping:
        for index, worker in enumerate(workers):
            if index not in restart_at and worker.poll() is not None:
                quick = time.monotonic() - started_at[index] < WORKER_STABLE_AFTER_S
                quick_exits[index] = quick_exits[index] + 1 if quick else 0
                delay = min(WORKER_MAX_RESTART_DELAY_S, 2.0 ** max(0, quick_exits[index] - 1))
                log.warning("API worker %d (pid %d) exited with %s; starting it again in %.0f s",
                            index, worker.pid, worker.returncode, delay)
                restart_at[index] = time.monotonic() + delay
        for index, when in list(restart_at.items()):
            if time.monotonic() >= when and not stopping:
                workers[index], started_at[index] = start(index), time.monotonic()
                del restart_at[index]
        time.sleep(WORKER_POLL_S)
    codes = [worker.wait() for worker in workers]
    return max(codes, default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-api", description="Run the Photos HTTP API.")
    parser.add_argument("--workers", type=int, help="worker processes (default: settings.api_workers; 0: one per core)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    try:
        settings = Settings.from_env()
        settings.require_own_secret()  # here too, so a refused secret stops the parent, not each worker in turn
    except ValueError as error:
        print(f"photos-api: {error}", file=sys.stderr)
        return 2
    workers = args.workers or settings.api_workers or os.cpu_count() or 1
    if args.worker or workers == 1:
        run_worker(settings)
        return 0
    return run_workers(settings, workers)


if __name__ == "__main__":
    sys.exit(main())
