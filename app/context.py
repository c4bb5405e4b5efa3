"""What handlers reach through `request.app`: the settings and the wired services."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from app.events import EventPublisher
from app.media.processor import ImageProcessor
from app.media.store import MediaStore
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.wiring import Services

SETTINGS = web.AppKey("settings", Settings)
CASSANDRA = web.AppKey("cassandra", CassandraSession)
REDIS = web.AppKey("redis", Redis)
EVENTS = web.AppKey("events", EventPublisher)
MEDIA_STORE = web.AppKey("media_store", MediaStore)
IMAGE_PROCESSOR = web.AppKey("image_processor", ImageProcessor)
SERVICES = web.AppKey("services", Services)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)  # built once, served as is

_USER_ID = "photos.user_id"


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


async def current_user(request: web.Request) -> int:
    """The authenticated user's id (401 without a live token); looked up once per request."""
    if _USER_ID not in request:
        request[_USER_ID] = await request.app[SERVICES].sessions.authenticate(request)
    return request[_USER_ID]
