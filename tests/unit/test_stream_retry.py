import asyncio

import pytest

from streams.retry import until_done


async def test_a_failing_batch_is_retried_until_it_succeeds_and_no_error_escapes():
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("cassandra went away")

    await until_done("test", flaky)
    assert len(attempts) == 3


async def test_cancellation_still_stops_the_retries():
    async def always_failing():
        raise ConnectionError("down")

    task = asyncio.create_task(until_done("test", always_failing))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
