"""The bounds of app/auth.py's hashing queue and the settings that size the back-pressure (no I/O; the same
behaviour over HTTP against the real services: tests/e2e/test_back_pressure.py)."""

from __future__ import annotations

import asyncio

import pytest

from app.auth import Passwords
from app.errors import Unavailable
from app.settings import Settings


async def test_a_hash_beyond_the_threads_and_the_waiting_room_is_refused_at_once_and_costs_nothing():
    passwords = Passwords(1, 8192, threads=1, max_waiting=1)
    try:
        running = [asyncio.create_task(passwords.hash("one password")), asyncio.create_task(passwords.hash("two"))]
        await asyncio.sleep(0)  # both taken their places: one hashing, one waiting
        with pytest.raises(Unavailable) as refused:
            await passwords.verify(None, "a third")
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        hashes = await asyncio.gather(*running)
        assert await passwords.verify(hashes[0], "one password")  # room again once they are done
        assert not await passwords.verify(hashes[0], "another password")
    finally:
        passwords.close()


@pytest.mark.parametrize("variable", ["PHOTOS_BODY_READ_IDLE_TIMEOUT_S", "PHOTOS_BODY_READ_DEADLINE_S",
                                      "PHOTOS_ARGON2_THREADS"])
def test_a_bound_that_would_stop_everything_is_refused_at_start(variable):
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: "0"})
