"""Kill a server of a running stack under a write load; nothing it acknowledged may be lost.

A stack of its own (tests/e2e/private_stack.py), launched by photos-stack with its supervisors and
its default durability settings, takes likes, unlikes, follows, unfollows, comments and uploads
from one client per user (tests/e2e/write_load.py). Part-way through, one server is killed with
SIGKILL; its supervisor brings it back; the load goes on until writes are acknowledged again. Then
the audit: every acknowledged write is in Cassandra (or the media store), every derived count is
exact against the truth, and the API and stream worker are the very processes that were running
before (they rode the outage out; the stream worker caught up). Shortened for the suite: a few
seconds of load before the kill and after the return.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from app.storage import cassandra
from tests.e2e.private_stack import PrivateStack
from tests.e2e.write_load import Audit, Cast, WriteLoad, make_cast
from tests.support.polling import eventually

pytestmark = [pytest.mark.crash, pytest.mark.own_stack]

# The suite's length; PHOTOS_TEST_CRASH_SCALE=10 runs the same tests ten times longer and wider (docs/reliability.md).
SCALE = int(os.environ.get("PHOTOS_TEST_CRASH_SCALE", "1"))
USERS = 16 * min(SCALE, 4)  # clients in flight: one per user
POSTS = 8 * SCALE
LOAD_BEFORE_KILL = 60 * SCALE  # writes acknowledged before the kill
LOAD_AFTER_RETURN = 60 * SCALE  # writes acknowledged after the killed server answers again
PROBE_IN_FLIGHT = 64
PROBE_WRITES_BEFORE_KILL = 3000 * SCALE


@pytest.fixture(scope="module")
def stack(migrated):
    stack = PrivateStack(
        "crash",
        PHOTOS_MEDIA_SWEEP_GRACE_S="20",  # an upload that died midway is settled within the audit's patience
        PHOTOS_MEDIA_SWEEP_INTERVAL_S="5",
        PHOTOS_STREAMS_SESSION_TIMEOUT_S="10",
        PHOTOS_LIKE_RATE_PER_USER="100000",
        PHOTOS_COMMENT_RATE_PER_USER="100000",
        # every client of the load is 127.0.0.1: the per-address limits would count them as one
        PHOTOS_UPLOAD_PIXELS_PER_ADDRESS="1000000000000",
        PHOTOS_FOLLOW_RATE_PER_ADDRESS="1000000",
    )
    stack.up()
    yield stack
    stack.down()


@pytest.fixture(scope="module")
async def stack_cass(stack):
    cluster, session = await cassandra.connect(stack.settings, stack.settings.cassandra_keyspace)
    yield session
    await cassandra.shutdown(cluster)


@pytest.fixture(scope="module")
async def cast(stack, stack_http) -> Cast:
    return await make_cast(stack_http, stack.api_url, USERS, POSTS)


async def kill_under_load(stack: PrivateStack, http, cass, cast: Cast, server: str, seed: int) -> None:
    apps = {name: (stack.pid(name), stack.restarts(name)) for name in ("api", "streams")}
    load = WriteLoad(http, stack.api_url, cast, seed)
    load.start()
    try:
        started = time.monotonic()
        await load.until_acknowledged(LOAD_BEFORE_KILL, after=0.0, timeout=60)
        rate = LOAD_BEFORE_KILL / (time.monotonic() - started)
        killed = stack.kill(server)
        killed_at = time.monotonic()
        await stack.until_back(server, killed)
        await load.until_acknowledged(LOAD_AFTER_RETURN, after=killed_at, timeout=120)
    finally:
        await load.stop()
    print(f"{server}: {rate:.0f} writes/s acknowledged before the kill; answers so far {dict(load.ledger.statuses)}")
    assert stack.restarts(server) >= 1
    await eventually(lambda: answers(cass), lambda ok: ok, timeout=30)  # this test's own session is back too
    await Audit(cass, http, stack.api_url, cast).run()
    now = {name: (stack.pid(name), stack.restarts(name)) for name in apps}
    assert now == apps, "the API or the stream worker did not ride the outage out (pid, restarts)"


async def answers(cass) -> bool:
    try:
        await cass.ping(timeout=2)
    except Exception:
        return False
    return True


async def test_the_node_loses_no_write_it_acknowledged_when_killed(stack, stack_cass, stack_http):
    """The commit log setting itself: writes as fast as one client can make them, SIGKILL mid-stream, and
    every write the node acknowledged is there after its restart (periodic sync loses the last ~0.1 s)."""
    cass = stack_cass
    await cass.execute("CREATE TABLE IF NOT EXISTS durability_probe (k bigint PRIMARY KEY)")
    insert = await cass.prepare("INSERT INTO durability_probe (k) VALUES (?)")
    acknowledged: list[int] = []
    keys = iter(range(10**9))

    async def writer() -> None:
        for key in keys:
            try:
                await cass.execute(insert, (key,), timeout=5)
            except Exception:  # the node is gone: this writer's work is done
                return
            acknowledged.append(key)

    async def written() -> int:
        return len(acknowledged)

    writers = [asyncio.create_task(writer()) for _ in range(PROBE_IN_FLIGHT)]
    await eventually(written, lambda n: n >= PROBE_WRITES_BEFORE_KILL, timeout=60, interval=0.01)
    killed = stack.kill("cassandra")
    await asyncio.gather(*writers)
    await stack.until_back("cassandra", killed)
    await eventually(lambda: answers(cass), lambda ok: ok, timeout=30)
    select = await cass.prepare("SELECT k FROM durability_probe WHERE k IN ?")
    found: set[int] = set()
    for start in range(0, len(acknowledged), 100):
        found |= {row.k for row in await cass.rows(select, (acknowledged[start:start + 100],))}
    lost = sorted(set(acknowledged) - found)
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged writes lost, e.g. {lost[:10]}"
    await stack.until_api_ready(stack_http)  # for the tests after this one


async def test_cassandra_killed_under_load_loses_no_acknowledged_write(stack, stack_http, stack_cass, cast):
    await kill_under_load(stack, stack_http, stack_cass, cast, "cassandra", seed=1)


async def test_kafka_killed_under_load_loses_no_acknowledged_write(stack, stack_http, stack_cass, cast):
    await kill_under_load(stack, stack_http, stack_cass, cast, "kafka", seed=2)


async def test_redis_killed_under_load_loses_no_acknowledged_write(stack, stack_http, stack_cass, cast):
    await kill_under_load(stack, stack_http, stack_cass, cast, "redis", seed=3)


async def test_a_worker_started_while_kafka_and_cassandra_are_down_waits_for_them(stack, stack_http, stack_cass,
                                                                                  cast):
    """The start-up steps: a stream worker (re)started during an outage of both waits for Kafka, then keeps
    retrying its agents' start-up and its timers against Cassandra, and runs once both are back."""
    stack.photos_stack("down", "--services", "cassandra,kafka")
    log = stack.service("streams").console_log
    log_mark = log.stat().st_size
    worker = await stack.until_back("streams", stack.kill("streams"))
    restarts = stack.restarts("streams")

    def logged(text: str) -> bool:
        return text in log.read_text(errors="replace")[log_mark:]

    await eventually(lambda: asyncio.to_thread(logged, "waiting for it"), bool, timeout=30)  # for Kafka
    stack.photos_stack("up", "--services", "kafka")
    await eventually(lambda: asyncio.to_thread(logged, "start-up failed"), bool, timeout=60)  # an agent, on Cassandra
    # a timer: the sweep runs on the group's leader only, once the group has rebalanced (~15 s; a rebalance
    # may have to wait out the killed worker's membership first)
    await eventually(lambda: asyncio.to_thread(logged, "media_sweep: tick failed"), bool, timeout=120)
    stack.photos_stack("up", "--services", "cassandra")
    await stack.until_api_ready(stack_http)

    load = WriteLoad(stack_http, stack.api_url, cast, seed=4)
    load.start()
    try:
        await load.until_acknowledged(LOAD_AFTER_RETURN, after=0.0, timeout=60)
    finally:
        await load.stop()
    await Audit(stack_cass, stack_http, stack.api_url, cast).run()
    assert stack.pid("streams") == worker and stack.restarts("streams") == restarts
