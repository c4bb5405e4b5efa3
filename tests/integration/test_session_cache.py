"""The session cache on the real Redis and Cassandra (app/storage/session_cache.py, app/auth.py's SessionStore):
what a login and a miss store, revocation reaching another process before it returns, the race a tombstone
closes, and Redis lost (a dropped listener, a dead Redis)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.auth import SessionStore, token_hash
from app.ids import IdGenerator
from app.settings import Settings
from app.storage.session_cache import ACK_WAIT_S, TOMBSTONE, Session, SessionCache
from app.wiring import redis_client
from infra.procs import free_port
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy

ids = IdGenerator(shard=4)


@pytest.fixture
def namespace() -> str:
    return f"sessiontest-{secrets.token_hex(4)}"  # keys and channels of this test alone


def process_settings(settings: Settings, namespace: str, redis_url: str | None = None) -> Settings:
    return replace(settings, cassandra_keyspace=namespace, redis_url=redis_url or settings.redis_url)


class Process:
    """What one API process holds: a session store on its own session cache, its listener started."""

    def __init__(self, settings: Settings, storage) -> None:
        self.redis = redis_client(settings)
        self.cache = SessionCache.for_settings(settings, self.redis)
        self.store = SessionStore(storage.sessions, settings.session_ttl_s, self.cache)
        self.revoked: list[bytes] = []
        self.cache.on_revoked(self.revoked.append)
        self.store.start()

    async def listening(self) -> None:
        await eventually(lambda: asyncio.sleep(0, self.cache.connected), bool)

    async def close(self) -> None:
        await self.store.close()
        await self.redis.aclose()


@pytest.fixture
async def processes(settings, storage, namespace):
    started: list[Process] = []

    async def start(redis_url: str | None = None, **overrides) -> Process:
        process = Process(replace(process_settings(settings, namespace, redis_url), **overrides), storage)
        started.append(process)
        return process

    yield start
    for process in started:
        await process.close()


async def test_a_login_is_kept_in_redis_and_memory_so_lookups_read_no_cassandra(processes, storage, redis_client):
    a = await processes()
    await a.listening()
    user = ids.next_id()
    token = await a.store.create(user)
    hashed = token_hash(token)
    value = await redis_client.get(a.cache.key(hashed))
    stored_user, _, expires_at = value.partition(b":")
    assert int(stored_user) == user
    assert abs(float(expires_at) - (time.time() + a.store._ttl_s)) < 5
    assert 0 < await redis_client.ttl(a.cache.key(hashed)) <= 3600  # PHOTOS_SESSION_CACHE_TTL_S
    assert a.cache.cached(hashed) == user  # in memory at once
    # the row gone behind the cache's back: lookups still answer, so they did not read Cassandra
    await storage.sessions.delete(hashed)
    assert await a.store.user_id(token) == user
    a.cache.local.clear()
    assert await a.store.user_id(token) == user  # from Redis


async def test_a_miss_reads_cassandra_and_fills_redis_with_what_the_session_has_left(processes, storage, redis_client):
    a = await processes()
    await a.listening()
    user = ids.next_id()
    token = secrets.token_urlsafe(32)
    hashed = token_hash(token)
    await storage.sessions.insert(hashed, user, datetime.now(UTC), 100)  # as another login
    assert await redis_client.get(a.cache.key(hashed)) is None
    assert await a.store.user_id(token) == user
    assert 90 <= await redis_client.ttl(a.cache.key(hashed)) <= 100
    _, _, expires_at = (await redis_client.get(a.cache.key(hashed))).partition(b":")
    assert abs(float(expires_at) - (time.time() + 100)) < 5
    assert a.cache.cached(hashed) == user
    assert await a.store.user_id(secrets.token_urlsafe(32)) is None  # an unknown token


async def test_a_revocation_reaches_every_process_before_it_returns(processes, redis_client):
    a, b = await processes(), await processes()
    await asyncio.gather(a.listening(), b.listening())
    user = ids.next_id()
    token = await a.store.create(user)
    hashed = token_hash(token)
    assert await b.store.user_id(token) == user  # from Redis, now in b's memory too
    assert b.cache.cached(hashed) == user

    started = time.monotonic()
    await a.store.revoke(token)
    elapsed = time.monotonic() - started

    assert elapsed < ACK_WAIT_S  # both processes confirmed: the wait did not run out
    assert b.cache.cached(hashed) is None and a.cache.cached(hashed) is None
    assert b.revoked == [hashed] and a.revoked == [hashed]  # their sockets are told (the hub listens)
    assert await redis_client.get(a.cache.key(hashed)) == TOMBSTONE
    assert await b.store.user_id(token) is None
    assert await a.store.user_id(token) is None


async def test_a_fill_racing_a_revocation_cannot_bring_the_token_back(processes, storage, redis_client):
    a = await processes()
    await a.listening()
    user = ids.next_id()
    token = await a.store.create(user)
    hashed = token_hash(token)
    await redis_client.delete(a.cache.key(hashed))
    a.cache.local.clear()
    # a lookup begins: Redis misses, Cassandra answers with the live row...
    epoch = a.cache.local.epoch
    user_id, left_s = await storage.sessions.live(hashed)
    # ...the logout lands meanwhile...
    await a.store.revoke(token)
    # ...and the lookup fills what it read: neither Redis (the tombstone refuses SET NX) nor memory keeps it
    await a.cache.put(hashed, Session(user_id, time.time() + left_s), fill=True, epoch=epoch)
    assert await redis_client.get(a.cache.key(hashed)) == TOMBSTONE
    assert a.cache.cached(hashed) is None
    assert await a.store.user_id(token) is None


async def test_while_the_listener_is_cut_off_memory_is_not_used(processes, settings):
    proxy = TcpProxy(settings.redis_port)
    proxy.start()
    try:
        a = await processes(redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        await a.listening()
        user = ids.next_id()
        token = await a.store.create(user)
        hashed = token_hash(token)
        assert a.cache.cached(hashed) == user
        proxy.cut()  # Redis unreachable: revocations published now would not be heard
        await eventually(lambda: asyncio.sleep(0, a.cache.connected), lambda connected: not connected, timeout=30)
        assert a.cache.cached(hashed) is None and len(a.cache.local) == 0
        assert await a.store.user_id(token) == user  # from Cassandra
        assert a.cache.cached(hashed) is None  # and not kept
        proxy.start()
        await a.listening()
        assert await a.store.user_id(token) == user
        assert a.cache.cached(hashed) == user  # memory is back in use
        await a.close()  # its connections through the proxy first
    finally:
        proxy.close()


async def test_with_redis_down_sessions_come_from_cassandra_and_logout_is_immediate(processes):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    a = await processes(redis_url=dead)
    user = ids.next_id()
    token = await a.store.create(user)  # the row is written; Redis is skipped
    hashed = token_hash(token)
    assert not a.cache.connected
    for _ in range(3):
        assert await a.store.user_id(token) == user
    assert a.cache.cached(hashed) is None
    await a.store.revoke(token)  # the row is deleted; the publish fails and is logged
    assert await a.store.user_id(token) is None
