"""What handlers reach through `request.app`: the settings, the shared clients, and the services.

Each service lives under its own key, `service_key(PostService)`: a domain's route module asks for the
services it uses by their class, so no module here (or anywhere but the composition root) needs to know
every service. The composition root (app/main.py) builds them and fills the keys.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from redis.asyncio import Redis

from app.auth import SessionStore
from app.events import EventPublisher
from app.forwarded import TrustedProxies
from app.idempotency import IdempotencyStore
from app.media.processor import ImageProcessor
from app.media.store import MediaStore
from app.ratelimit import RateLimiter, address_subject
from app.settings import Settings
from app.storage.cassandra import CassandraSession

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
CASSANDRA = web.AppKey("cassandra", CassandraSession)
REDIS = web.AppKey("redis", Redis)
EVENTS = web.AppKey("events", EventPublisher)
MEDIA_STORE = web.AppKey("media_store", MediaStore)
IMAGE_PROCESSOR = web.AppKey("image_processor", ImageProcessor)
SESSIONS = web.AppKey("sessions", SessionStore)
LIMITER = web.AppKey("limiter", RateLimiter)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)  # used by the route table (app/web.py)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)  # built once, served as is
TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)

_USER_ID = "photos.user_id"
_service_keys: dict[type, web.AppKey] = {}


def service_key(kind: type[T]) -> web.AppKey[T]:
    """The app key the service of this class is kept under (the same key object for every caller)."""
    key = _service_keys.get(kind)
    if key is None:
        key = _service_keys[kind] = web.AppKey(f"{kind.__module__}.{kind.__qualname__}", kind)
    return key


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def client_address(request: web.Request) -> str:
    """The rate-limit subject of the request's client: its TCP peer, or behind a trusted proxy the address
    the proxy forwarded (app/forwarded.py), by IPv4 address or IPv6 /64. Every per-address limit asks
    here, so none counts a load balancer's address for all its clients."""
    forwarded_for = request.headers.getall("X-Forwarded-For", ())
    return address_subject(request.app[TRUSTED_PROXIES].client_of(request.remote, forwarded_for))


async def limit_user_and_address(request: web.Request, scope: str, user_id: int, per_user: int,
                                 per_address: int, cost: int = 1) -> None:
    """Count the request (weighing `cost`) against the user's limit and the client address's in `scope`
    (`<scope>-address`); RateLimited (429) past either. The address's catches one client spreading over
    many accounts."""
    limiter = request.app[LIMITER]
    await limiter.hit(scope, str(user_id), per_user, cost=cost)
    await limiter.hit(f"{scope}-address", client_address(request), per_address, cost=cost)


async def current_user(request: web.Request) -> int:
    """The authenticated user's id (401 without a live token); looked up once per request."""
    if _USER_ID not in request:
        request[_USER_ID] = await request.app[SESSIONS].authenticate(request)
    return request[_USER_ID]
