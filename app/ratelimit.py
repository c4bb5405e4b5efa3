"""Fixed-window rate limits, counted in Redis and shared by every API process.

When Redis is unreachable the limiter counts in process memory instead: limits then
hold per process rather than cluster-wide, which keeps logins protected and available
while Redis is down.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import RateLimited

log = logging.getLogger(__name__)
_LOCAL_KEYS_MAX = 100_000


def address_subject(client: str | None) -> str:
    """The rate-limit subject for a client's address: an IPv4 address, or the /64 of an IPv6 one. Routes
    get it from `app.context.client_address`, which finds the client behind trusted proxies.

    One IPv6 subscriber usually holds a whole /64, so limiting single IPv6 addresses limits nothing.
    """
    if not client:
        return "unknown"
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


# KEYS: the window's counter; ARGV: its TTL, the hit's cost. One command per hit (cheaper than
# MULTI/INCRBY/EXPIRE/EXEC).
COUNT_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return n
"""


class RateLimiter:
    def __init__(self, redis: Redis, window_s: int) -> None:
        self._redis = redis
        self._window_s = window_s
        self._local: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._count = redis.register_script(COUNT_HIT)

    async def hit(self, scope: str, subject: str, limit: int, cost: int = 1) -> None:
        """Count one attempt of `subject` in `scope`, weighing `cost` (an upload's pixels; 1 for a request);
        RateLimited (429) once the window's total is past `limit`. A refused attempt is counted too."""
        window = int(time.time()) // self._window_s
        key = f"rl:{scope}:{subject}:{window}"
        try:
            count = await self._count_in_redis(key, cost)
        except (RedisError, OSError) as exc:
            log.warning("rate limiter falling back to process memory: %r", exc)
            count = self._count_locally(key, window, cost)
        self.judge(scope, count, limit)

    def window(self, scope: str, subject: str) -> tuple[str, int]:
        """The current window's counter key and the TTL it needs, for a caller that counts the attempt in a
        Redis script of its own (the like request's, saving a round trip) and hands the count to `judge`;
        without Redis it calls `hit`, which counts in process memory."""
        return f"rl:{scope}:{subject}:{int(time.time()) // self._window_s}", self._window_s + 1

    def judge(self, scope: str, count: int, limit: int) -> None:
        """RateLimited (429) when `count` attempts in this window are past `limit`."""
        if count > limit:
            retry_after = self._window_s - int(time.time()) % self._window_s
            raise RateLimited(f"too many {scope} attempts; retry in {retry_after} s", retry_after)

    async def _count_in_redis(self, key: str, cost: int) -> int:
        return int(await self._count(keys=[key], args=[self._window_s + 1, cost]))

    def _count_locally(self, key: str, window: int, cost: int) -> int:
        if len(self._local) > _LOCAL_KEYS_MAX:  # bound memory: forget windows that are over
            self._local = {k: v for k, v in self._local.items() if v[0] == window}
        _, count = self._local.get(key, (window, 0))
        self._local[key] = (window, count + cost)
        return count + cost
