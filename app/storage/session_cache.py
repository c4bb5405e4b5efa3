"""The session cache in front of `sessions` (app/storage/sessions.py), and revocation across API processes.

Two levels, both holding token hash -> (user id, when the session expires):

- **Redis** (`<keyspace>:session:<hex of the token hash>`): `"<user id>:<expiry, unix s>"`, written at login
  and filled after a Cassandra read (`SET NX`), kept for the session's remaining life but at most
  `session_cache_ttl_s`. A revoked token's key holds the tombstone `"-"` for `TOMBSTONE_TTL_S`, so a
  fill racing the revocation (it read the row before the delete) cannot bring the token back: `SET NX`
  does not overwrite a tombstone.
- **In-process** (`LocalSessions`): at most `session_local_max` entries (least recently used leave first),
  each for `session_local_ttl_s` at most and never past the session's expiry. It is used only while this
  process's revocation subscriber is connected, and emptied whenever that connection is lost or made, so
  a revocation published while it was away cannot be missed.

Revocation (logout): the `sessions` row is deleted first (by the caller), then one script sets the
tombstone and publishes the token hash on `<keyspace>:session-revoked`. Every API process subscribes to
that channel on a connection of its own (`SessionCache.start`); each drops the entry, tells its listeners
(the notification hub closes that token's WebSockets), and acknowledges on the revoker's own channel.
The revoker waits up to `ACK_WAIT_S` for as many acknowledgements as PUBLISH counted receivers, so when
logout answers, every connected process has already forgotten the token.

Redis down: lookups and fills fall back (a breaker keeps a hung Redis from adding its timeout to every
request), the subscriber is disconnected, so the in-process level is off too and every request reads
Cassandra, which is the truth: revocation stays immediate. See docs/accounts.md for the bounds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.client_security import redis_options
from app.redis_breaker import RedisBreaker
from app.settings import Settings
from app.storage.subscriber import each_message, listen_forever

log = logging.getLogger(__name__)

TOMBSTONE = b"-"
# a fill that read the row before its delete lands within a Cassandra request timeout; the tombstone
# outlives that by far, and after it the key is simply absent (the row is gone, so a miss reads nothing)
TOMBSTONE_TTL_S = 300
ACK_WAIT_S = 1.0  # how long a revocation waits for the other processes to confirm they dropped the token

# KEYS: the session key; ARGV: the tombstone's TTL, the channel, the message. Returns the receivers.
REVOKE = """
redis.call('SET', KEYS[1], '-', 'EX', ARGV[1])
return redis.call('PUBLISH', ARGV[2], ARGV[3])
"""

RevocationListener = Callable[[bytes], None]


class Session(NamedTuple):
    user_id: int
    expires_at: float  # unix seconds


REVOKED = Session(0, 0.0)  # what Redis answers for a token revoked a moment ago: refuse it, read nothing


class LocalSessions:
    """A bounded, short-lived map of token hash -> Session in one process (least recently used leave first)."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[bytes, tuple[int, float]] = OrderedDict()  # hash -> (user id, good until)
        self._max = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self.epoch = 0  # moves at every drop and clear: a fill that began before one is not kept

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: bytes) -> int | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        user_id, until = entry
        if self._clock() >= until:
            del self._entries[token_hash]
            return None
        self._entries.move_to_end(token_hash)
        return user_id

    def put(self, token_hash: bytes, session: Session, epoch: int) -> None:
        """Remember the session, unless a revocation (or a reconnect) happened since `epoch` was read."""
        if epoch != self.epoch or self._max <= 0 or self._ttl_s <= 0:
            return
        self._entries[token_hash] = (session.user_id, min(self._clock() + self._ttl_s, session.expires_at))
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, token_hash: bytes) -> None:
        self.epoch += 1
        self._entries.pop(token_hash, None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()


class _Acks:
    def __init__(self) -> None:
        self.arrived = 0
        self.expected: int | None = None
        self.done = asyncio.Event()

    def arrive(self) -> None:
        self.arrived += 1
        self._check()

    def expect(self, receivers: int) -> None:
        self.expected = receivers
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.arrived >= self.expected:
            self.done.set()


class SessionCache:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int, local: LocalSessions,
                 subscriber: Callable[[], Redis] | None = None) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s
        self.local = local
        self._make_subscriber = subscriber  # the revocation subscriber's own client, made by start()
        self._breaker = RedisBreaker("session cache")
        self._revoke = redis.register_script(REVOKE)
        self.channel = f"{namespace}:session-revoked"
        self._ack_channel = f"{namespace}:session-acks:{secrets.token_hex(8)}"  # this process's
        self._acks: dict[str, _Acks] = {}
        self._listeners: list[RevocationListener] = []
        self._subscriber: Redis | None = None
        self._task: asyncio.Task | None = None
        self.connected = False  # the subscriber is listening: only then is the in-process level used

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> SessionCache:
        def subscriber() -> Redis:  # no retries inside the client: the listener reconnects itself
            return Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout_s,
                                  socket_connect_timeout=settings.redis_timeout_s, retry=Retry(NoBackoff(), 0),
                                  **redis_options(settings))

        local = LocalSessions(settings.session_local_max, settings.session_local_ttl_s)
        return cls(redis, settings.cassandra_keyspace, settings.session_cache_ttl_s, local, subscriber)

    def key(self, token_hash: bytes) -> str:
        return f"{self._ns}:session:{token_hash.hex()}"

    def on_revoked(self, listener: RevocationListener) -> None:
        """Call `listener(token_hash)` for every revocation this process hears of (its own included)."""
        self._listeners.append(listener)

    # --- lookups and fills ---------------------------------------------------------------------------
    def cached(self, token_hash: bytes) -> int | None:
        """The user of an in-process entry (no I/O); None when there is none or the level is off."""
        return self.local.get(token_hash) if self.connected else None

    async def get(self, token_hash: bytes) -> Session | None:
        """The Redis entry: a Session, REVOKED, or None (absent, or Redis unavailable)."""
        value = await self._breaker.call("get", lambda: self._redis.get(self.key(token_hash)), None)
        if value is None:
            return None
        if value == TOMBSTONE:
            return REVOKED
        user_id, _, expires_at = value.partition(b":")
        return Session(int(user_id), float(expires_at))

    async def put(self, token_hash: bytes, session: Session, *, fill: bool, epoch: int | None = None) -> None:
        """Store the session in Redis (`fill`: only where nothing is, so a tombstone stays) and remember it
        in this process (unless a revocation came in since `epoch`)."""
        if epoch is None:
            epoch = self.local.epoch
        ttl_s = min(self._ttl_s, int(session.expires_at - time.time()))
        if ttl_s >= 1:
            value = f"{session.user_id}:{session.expires_at:.0f}"
            stored = await self._breaker.call(
                "put", lambda: self._redis.set(self.key(token_hash), value, ex=ttl_s, nx=fill), None
            )
            if fill and not stored and self._breaker.available:
                return  # a tombstone (or a racing fill) is there: do not trust what was read
        self.remember(token_hash, session, epoch)

    def remember(self, token_hash: bytes, session: Session, epoch: int) -> None:
        """Keep the session in this process's memory (while revocations can reach it)."""
        if self.connected:
            self.local.put(token_hash, session, epoch)

    # --- revocation --------------------------------------------------------------------------------
    async def revoke(self, token_hash: bytes) -> None:
        """Tombstone the Redis entry and tell every API process; returns once they confirmed (or after
        ACK_WAIT_S). The caller has deleted the `sessions` row already."""
        self.local.drop(token_hash)
        ack_id = secrets.token_hex(8)
        acks = self._acks[ack_id] = _Acks()
        message = f"{token_hash.hex()} {self._ack_channel} {ack_id}"
        try:
            try:
                receivers = int(await self._revoke(keys=[self.key(token_hash)],
                                                   args=[TOMBSTONE_TTL_S, self.channel, message]))
            except (RedisError, OSError, TimeoutError) as exc:
                # the processes that cannot hear this do not use their in-process level; see docs/accounts.md
                log.warning("session revocation not published (%r); other processes read Cassandra meanwhile", exc)
                return
            self._tell_listeners(token_hash)  # this process's sockets, even if its subscriber is away
            if not self.connected:
                return  # acknowledgements come to our subscriber; the others drop the token on their own
            acks.expect(receivers)
            try:
                await asyncio.wait_for(acks.done.wait(), ACK_WAIT_S)
            except TimeoutError:
                log.warning("session revocation: %d of %d processes confirmed within %.1f s",
                            acks.arrived, receivers, ACK_WAIT_S)
        finally:
            del self._acks[ack_id]

    def _tell_listeners(self, token_hash: bytes) -> None:
        for listener in self._listeners:
            try:
                listener(token_hash)
            except Exception:
                log.exception("session revocation listener failed")

    # --- the subscriber ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._make_subscriber is not None and self._task is None:
            self._subscriber = self._make_subscriber()
            self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._subscriber is not None:
            await self._subscriber.aclose()
            self._subscriber = None

    async def _listen_forever(self) -> None:
        await listen_forever(self._listen, name="session revocations", meanwhile="reading sessions from Cassandra",
                             was_connected=lambda: self.connected, disconnected=self._disconnected)

    def _disconnected(self) -> None:
        self.connected = False
        self.local.clear()

    async def _listen(self) -> None:
        assert self._subscriber is not None
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self.channel, self._ack_channel)
            self.local.clear()  # revocations published while we were away were not heard
            self.connected = True
            await self._relay(pubsub)
        finally:
            self._disconnected()
            await pubsub.aclose()

    async def _relay(self, pubsub: PubSub) -> None:
        async for channel, data in each_message(pubsub):
            if channel == self.channel:
                await self._heard_revocation(data)
            else:
                acks = self._acks.get(data)
                if acks is not None:
                    acks.arrive()

    async def _heard_revocation(self, data: str) -> None:
        try:
            hash_hex, ack_channel, ack_id = data.split(" ")
            token_hash = bytes.fromhex(hash_hex)
        except ValueError:
            log.warning("session revocations: ignored a malformed message %r", data[:100])
            return
        self.local.drop(token_hash)
        if ack_channel != self._ack_channel:  # the revoker told its own listeners already
            self._tell_listeners(token_hash)
        try:
            await self._redis.publish(ack_channel, ack_id)
        except (RedisError, OSError, TimeoutError) as exc:  # the revoker stops waiting after ACK_WAIT_S
            log.warning("session revocations: could not confirm (%r)", exc)
