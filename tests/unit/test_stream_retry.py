import asyncio
import logging

import pytest

from streams import retry
from streams.retry import GaveUp, timer, until_done, until_ready
from tests.support.polling import eventually


async def test_a_failing_batch_is_retried_until_it_succeeds_and_no_error_escapes():
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("cassandra went away")

    await until_done("test", flaky)
    assert len(attempts) == 3


async def test_cancellation_still_stops_the_retries():
    attempts = []

    async def always_failing():
        attempts.append(1)
        raise ConnectionError("down")

    task = asyncio.create_task(until_done("test", always_failing))
    await eventually(lambda: asyncio.sleep(0, len(attempts)), bool, timeout=5)  # failed once: backing off now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_batch_gives_up_at_its_limit_of_failures_that_are_no_outage(monkeypatch):
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.001)
    attempts = []

    async def broken():
        attempts.append(1)
        if len(attempts) % 2:
            raise ConnectionRefusedError("redis went away")  # an outage: never counted
        raise ValueError("the event cannot be applied")

    with pytest.raises(GaveUp) as gave_up:
        await until_done("test", broken, give_up_after=3)
    assert len(attempts) == 6 and gave_up.value.failures == 3
    assert isinstance(gave_up.value.error, ValueError)


async def test_a_start_up_step_is_retried_and_its_result_returned():
    attempts = []

    async def connect():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("NoHostAvailable")
        return "session"

    assert await until_ready("test", connect) == "session"
    assert len(attempts) == 3


class RecordingApp:
    """Stands in for faust.App.timer: keeps the function it would run every interval."""

    def __init__(self) -> None:
        self.ticks = {}

    def timer(self, *, interval, on_leader, name):
        def register(fun):
            self.ticks[name] = fun
            return fun

        return register


async def test_a_failing_timer_tick_is_logged_and_never_raised_and_the_next_tick_runs(caplog):
    caplog.set_level(logging.INFO, logger="streams.retry")
    app = RecordingApp()
    outcomes = [ConnectionError("cassandra went away"), ConnectionError("still down"), None]
    ran = []

    @timer(app, interval=1.0, name="sweep", on_leader=True)
    async def sweep():
        ran.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    for _ in range(3):
        await app.ticks["sweep"]()  # what faust would await on each tick: nothing may escape
    assert len(ran) == 3
    messages = [record.getMessage() for record in caplog.records]
    assert "sweep: tick failed; the next tick tries again" in messages
    assert "sweep: tick succeeded again after 2 failed" in messages
