"""Live notifications: Redis pub/sub in, WebSocket inboxes out, one subscriber connection per process.

The notifications agent publishes each changed notification on the recipient's channel,
`<keyspace>:notify:<user id>`. Every API process holds ONE Redis connection in subscriber mode
(`NotificationHub`), subscribed to the channels of the users it has sockets for: the channel is
subscribed when a user's first socket opens and unsubscribed when their last one closes. A
message goes into the bounded inbox of each of that user's sockets; a socket whose inbox is
full (a client that does not read) is closed with SLOW_CLIENT and catches up with
GET /v1/notifications.

Redis going away: the sockets stay open. The hub reconnects with back-off, subscribes again to
every channel it needs, and then sends every socket a `resync` message, because whatever was
published meanwhile is gone (pub/sub keeps nothing); the client then reads GET /v1/notifications.
A silent, half-open connection is found by a PING after 5 s of quiet (app/storage/subscriber.py).

Limits: a user's sockets across every API process are counted by leases in Redis
(app/notifications/leases.py); this process's sockets, in all, by the hub itself.

Revocation: each socket is registered with the hash of the token it was opened with (through its
ticket or its bearer header). When a session is revoked on any API process, every process hears of it
(app/storage/session_cache.py calls `revoke`) and closes that token's sockets with SESSION_REVOKED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.client_security import redis_options
from app.errors import RateLimited
from app.notifications.leases import SocketLeases
from app.settings import Settings
from app.storage.subscriber import each_message, listen_forever

log = logging.getLogger(__name__)

SOCKET_RETRY_AFTER_S = 30  # a refused stream's Retry-After: sockets are held for minutes, not seconds

# close codes (RFC 6455 leaves 4000-4999 to applications); reasons stay under the 123-byte limit
SLOW_CLIENT = 4008
SLOW_CLIENT_REASON = "too many notifications unread; reconnect and fetch GET /v1/notifications"
GOING_AWAY = 1001
GOING_AWAY_REASON = "server shutting down; reconnect"
SESSION_REVOKED = 4401
SESSION_REVOKED_REASON = "the session was revoked (logged out); log in again to reconnect"

READY = orjson.dumps({"type": "ready"}).decode()
RESYNC = orjson.dumps({"type": "resync", "reason": "live updates were interrupted; fetch GET /v1/notifications"}
                      ).decode()


def subscriber_client(settings: Settings) -> Redis:
    """The hub's own client: its single connection is the process's subscriber connection. No retries
    inside the client: the hub reconnects and resubscribes itself."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
        **redis_options(settings),
    )


def notification_channel(namespace: str, user_id: int) -> str:
    return f"{namespace}:notify:{user_id}"


def push_message(notification: dict) -> bytes:
    """What the agent publishes and the socket sends: {"type": "notification", "notification": {...}}."""
    return orjson.dumps({"type": "notification", "notification": notification})


class Inbox:
    """What waits to be sent to one socket: at most `max_queued` messages, then the socket is ended."""

    def __init__(self, max_queued: int) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_queued)
        self.ended = asyncio.Event()
        self.end_code = 1000
        self.end_reason = ""

    def offer(self, message: str) -> None:
        if self.ended.is_set():
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.end(SLOW_CLIENT, SLOW_CLIENT_REASON)

    def end(self, code: int, reason: str) -> None:
        if not self.ended.is_set():
            self.end_code, self.end_reason = code, reason
            self.ended.set()

    async def next(self) -> str:
        return await self._queue.get()


class NotificationHub:
    def __init__(self, redis: Redis, namespace: str, max_queued: int, max_per_process: int = 0,
                 leases: SocketLeases | None = None) -> None:
        self._redis = redis  # a client of its own: its one pub/sub connection is the hub's
        self._namespace = namespace
        self._max_queued = max_queued
        self._max_per_process = max_per_process  # open sockets in this process; 0: no limit
        self._leases = leases  # a user's open sockets on every process; None: not limited
        self._control_channel = f"{namespace}:notify:-"  # keeps the connection subscribed with no sockets
        self._inboxes: dict[str, set[Inbox]] = {}  # channel -> the inboxes of its user's sockets
        self._by_session: dict[bytes, set[Inbox]] = {}  # token hash -> the inboxes of the sockets it opened
        self._subscribed: set[str] = set()
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()  # orders commands on the subscriber connection
        self._listener: asyncio.Task | None = None
        self._renewer: asyncio.Task | None = None
        self.connected = False

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever())
        if self._leases is not None:
            self._renewer = asyncio.create_task(self._leases.run())

    async def stop(self) -> None:
        self.close_all()
        for task in (self._listener, self._renewer):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        await self._redis.aclose()

    def close_all(self) -> None:
        """End every socket (server shutdown); their handlers close them with GOING_AWAY."""
        for inboxes in self._inboxes.values():
            for inbox in inboxes:
                inbox.end(GOING_AWAY, GOING_AWAY_REASON)

    @property
    def socket_count(self) -> int:
        return sum(len(inboxes) for inboxes in self._inboxes.values())

    def revoke(self, token_hash: bytes) -> None:
        """End every socket opened with this token (its session was revoked); handlers close them with
        SESSION_REVOKED."""
        for inbox in self._by_session.get(token_hash, ()):
            inbox.end(SESSION_REVOKED, SESSION_REVOKED_REASON)

    @asynccontextmanager
    async def inbox(self, user_id: int, token_hash: bytes | None = None) -> AsyncIterator[Inbox]:
        """An inbox for one socket of the user, subscribed to the user's channel while it is open; ended
        when the session of `token_hash` (the token the socket was opened with) is revoked."""
        channel = notification_channel(self._namespace, user_id)
        self._admit()  # RateLimited; checked and registered with no await between them
        inbox = Inbox(self._max_queued)
        self._inboxes.setdefault(channel, set()).add(inbox)
        if token_hash is not None:
            self._by_session.setdefault(token_hash, set()).add(inbox)
        lease = None
        try:
            if self._leases is not None:
                lease = await self._leases.acquire(user_id)  # RateLimited: the user's sockets on every process
            await self._reconcile(channel)
            yield inbox
        finally:
            if self._leases is not None:
                await self._leases.release(user_id, lease)
            inboxes = self._inboxes.get(channel, set())
            inboxes.discard(inbox)
            if not inboxes:
                self._inboxes.pop(channel, None)
            if token_hash is not None:
                opened = self._by_session.get(token_hash, set())
                opened.discard(inbox)
                if not opened:
                    self._by_session.pop(token_hash, None)
            await self._reconcile(channel)

    def _admit(self) -> None:
        """RateLimited (429) when this process already holds as many sockets as allowed."""
        if self._max_per_process and self.socket_count >= self._max_per_process:
            raise RateLimited("this server holds as many notification streams as it can; retry later",
                              SOCKET_RETRY_AFTER_S)

    async def _reconcile(self, channel: str) -> None:
        """Make the subscription to `channel` match whether any socket wants it."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # not connected: the listener subscribes to every wanted channel when it connects
            wanted = channel in self._inboxes
            try:
                if wanted and channel not in self._subscribed:
                    await pubsub.subscribe(channel)
                    self._subscribed.add(channel)
                elif not wanted and channel in self._subscribed:
                    await pubsub.unsubscribe(channel)
                    self._subscribed.discard(channel)
            except Exception as exc:  # a broken connection: the listener notices, reconnects and resubscribes
                log.warning("notification hub: (un)subscribing %s failed: %r", channel, exc)

    async def _listen_forever(self) -> None:
        await listen_forever(self._listen, name="notification hub", meanwhile="reconnecting; sockets stay open",
                             was_connected=lambda: self.connected, disconnected=self._disconnected)

    def _disconnected(self) -> None:
        self.connected = False

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        try:
            async with self._lock:
                await pubsub.subscribe(self._control_channel, *self._inboxes)
                self._subscribed = set(self._inboxes)
                self._pubsub = pubsub
            self.connected = True
            # sockets opened or kept while Redis was away missed what was published meanwhile
            # (pub/sub keeps nothing); at start-up there are none yet
            self._broadcast(RESYNC)
            await self._relay(pubsub)
        finally:
            async with self._lock:
                self._pubsub = None
                self._subscribed = set()
            await pubsub.aclose()

    async def _relay(self, pubsub: PubSub) -> None:
        async for channel, message in each_message(pubsub, ping_lock=self._lock):
            self._deliver(channel, message)

    def _deliver(self, channel: str, message: str) -> None:
        for inbox in self._inboxes.get(channel, ()):
            inbox.offer(message)

    def _broadcast(self, message: str) -> None:
        for inboxes in self._inboxes.values():
            for inbox in inboxes:
                inbox.offer(message)
