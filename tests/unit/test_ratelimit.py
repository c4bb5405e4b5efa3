import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.errors import RateLimited
from app.ratelimit import RateLimiter, address_subject


class DownRedis:
    """A Redis client whose server is unreachable."""

    def register_script(self, script):
        async def run(keys=(), args=()):
            raise RedisConnectionError("connection refused")

        return run


async def test_with_redis_down_limits_still_hold_in_process_memory():
    limiter = RateLimiter(DownRedis(), window_s=60)
    for _ in range(3):
        await limiter.hit("login", "alice", limit=3)
    with pytest.raises(RateLimited) as err:
        await limiter.hit("login", "alice", limit=3)
    assert int(err.value.headers["Retry-After"]) >= 1
    await limiter.hit("login", "bob", limit=3)  # another subject has its own count


async def test_a_hit_weighs_its_cost_in_process_memory_too():
    limiter = RateLimiter(DownRedis(), window_s=60)
    await limiter.hit("upload-pixels", "alice", limit=10, cost=6)
    await limiter.hit("upload-pixels", "alice", limit=10, cost=0)  # free: counted, costs nothing
    with pytest.raises(RateLimited):
        await limiter.hit("upload-pixels", "alice", limit=10, cost=6)


@pytest.mark.parametrize(
    ("remote", "subject"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # same subscriber, same subject
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
    ],
)
def test_ipv6_clients_are_limited_by_their_64_prefix(remote, subject):
    assert address_subject(remote) == subject
