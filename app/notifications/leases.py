"""How many notification WebSockets a user holds across every API process: leases in Redis.

A user's open sockets are the members of one sorted set, `<keyspace>:ws:<user id>`, each scored by
the moment its lease ends (milliseconds of Redis's own clock, so the API hosts' clocks do not
matter). Opening a socket drops the expired members and adds one only while fewer than the
limit remain, in one script, so two processes admitting at once cannot both take the last place.
The process holding a socket renews its lease every third of the lease's length and removes it
when the socket closes; the sockets of a process that died without closing them stop counting
when their leases run out (`notification_ws_lease_s`, 60 s).

Redis unreachable: the socket is admitted (live notifications need Redis anyway, and the hub
tells the socket to resync once it is back); the per-process limits still hold. The lease is
taken at the next renewal that reaches Redis, even if that makes the user exceed the limit for a
while: nobody's open socket is closed by it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os

from redis.asyncio import Redis

from app.errors import RateLimited

log = logging.getLogger(__name__)

# KEYS[1] the user's set; ARGV: member, limit, lease ms. 1: admitted, 0: the user holds `limit` live leases.
ACQUIRE = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

# KEYS[1] the user's set; ARGV: lease ms, then the members this process holds for the user.
RENEW = """
local now = redis.call('TIME')
local until_ms = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], until_ms, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return #ARGV - 1
"""


class SocketLeases:
    """The leases of this process's sockets. `acquire` before the upgrade, `release` when the socket
    closes; `run` renews them until cancelled."""

    def __init__(self, redis: Redis, namespace: str, max_per_user: int, lease_s: float,
                 retry_after_s: int) -> None:
        self._redis = redis
        self._namespace = namespace
        self._max_per_user = max_per_user  # 0: no limit, and no leases are kept
        self._lease_ms = max(1, int(lease_s * 1000))
        self._retry_after_s = retry_after_s
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._process = os.urandom(6).hex()  # members of this process: <process>:<n>
        self._numbers = itertools.count()
        self._held: dict[int, set[str]] = {}  # user id -> the members this process holds

    def key(self, user_id: int) -> str:
        return f"{self._namespace}:ws:{user_id}"

    async def acquire(self, user_id: int) -> str | None:
        """A lease for one more socket of the user: its member, None when no limit is kept, RateLimited
        (429) when the user already holds `max_per_user` live leases."""
        if not self._max_per_user:
            return None
        member = f"{self._process}:{next(self._numbers)}"
        try:
            admitted = await self._acquire(keys=[self.key(user_id)],
                                           args=[member, self._max_per_user, self._lease_ms])
        except Exception as exc:  # Redis away: admit (the module docstring says why); renewals take it later
            log.warning("socket lease for user %s not taken (%r); admitting on the per-process limits", user_id, exc)
            admitted = 1
        if not admitted:
            raise RateLimited(f"at most {self._max_per_user} notification streams may be open at once; close one "
                              "or retry later", self._retry_after_s)
        self._held.setdefault(user_id, set()).add(member)
        return member

    async def release(self, user_id: int, member: str | None) -> None:
        if member is None:
            return
        members = self._held.get(user_id, set())
        members.discard(member)
        if not members:
            self._held.pop(user_id, None)
        try:
            await self._redis.zrem(self.key(user_id), member)
        except Exception as exc:  # its lease runs out by itself
            log.warning("socket lease %s of user %s not released (%r); it expires", member, user_id, exc)

    async def renew_all(self) -> int:
        """Renew every lease this process holds, in one pipeline; the number renewed."""
        held = [(user_id, sorted(members)) for user_id, members in self._held.items()]
        if not held:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, members in held:
                await self._renew(keys=[self.key(user_id)], args=[self._lease_ms, *members], client=pipe)
            await pipe.execute()
        return sum(len(members) for _, members in held)

    async def run(self) -> None:
        """Renew every third of a lease until cancelled; a failed renewal is retried at the next turn."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self.renew_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("socket leases not renewed (%r); retrying", exc)
