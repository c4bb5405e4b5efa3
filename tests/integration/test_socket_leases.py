"""A user's notification sockets counted across API processes by leases in the real Redis
(app/notifications/leases.py): two SocketLeases stand for two processes."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from app.errors import RateLimited
from app.notifications.leases import SocketLeases
from tests.support.polling import eventually


def namespace() -> str:
    return f"leasetest{secrets.token_hex(4)}"


async def admitted(leases: SocketLeases, user_id: int) -> str | None:
    try:
        return await leases.acquire(user_id)
    except RateLimited:
        return None


async def test_processes_admitting_at_once_never_exceed_the_users_limit(redis_client):
    space = namespace()
    processes = [SocketLeases(redis_client, space, 3, lease_s=30, retry_after_s=5) for _ in range(2)]
    results = await asyncio.gather(*(admitted(processes[i % 2], 7) for i in range(20)))
    assert sum(member is not None for member in results) == 3
    assert await redis_client.zcard(processes[0].key(7)) == 3
    assert await admitted(processes[1], 8) is not None  # another user has places of their own


async def test_a_released_place_is_free_again_on_every_process(redis_client):
    space = namespace()
    first, second = (SocketLeases(redis_client, space, 1, lease_s=30, retry_after_s=5) for _ in range(2))
    member = await first.acquire(1)
    with pytest.raises(RateLimited) as refused:
        await second.acquire(1)
    assert refused.value.headers["Retry-After"] == "5"
    await first.release(1, member)
    assert await second.acquire(1) is not None


async def test_an_unrenewed_lease_runs_out_and_a_renewed_one_does_not(redis_client):
    space = namespace()
    dead = SocketLeases(redis_client, space, 1, lease_s=0.5, retry_after_s=1)
    living = SocketLeases(redis_client, space, 1, lease_s=0.5, retry_after_s=1)
    other = SocketLeases(redis_client, space, 1, lease_s=0.5, retry_after_s=1)
    await dead.acquire(1)  # a process that dies now: nobody renews it
    assert await admitted(other, 1) is None
    await eventually(lambda: admitted(other, 1), lambda member: member is not None, timeout=5)

    await living.acquire(2)
    renewer = asyncio.create_task(living.run())
    try:
        for _ in range(3):  # three lease lengths later it still holds the place
            await asyncio.sleep(0.5)
            assert await admitted(other, 2) is None
    finally:
        renewer.cancel()
    await eventually(lambda: admitted(other, 2), lambda member: member is not None, timeout=5)


async def test_no_limit_keeps_no_leases(redis_client):
    leases = SocketLeases(redis_client, namespace(), 0, lease_s=30, retry_after_s=5)
    assert await leases.acquire(1) is None
    assert await redis_client.exists(leases.key(1)) == 0
