"""The session cache through the API (docs/accounts.md#the-session-cache): an authenticated request reads no
`sessions` row once its session is cached, a logout on one API process is refused by every process within
a second and closes the token's WebSockets on every process, and with Redis gone sessions come from
Cassandra and logout stays immediate.

Three API processes take part: the session's pair (tests/e2e/conftest.py, two workers on one port) and a
third one started here on a port of its own, so "another process" is certain, not left to the kernel."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from app.auth import token_hash
from infra.procs import free_port
from tests.e2e.client.contract import checked_session
from tests.e2e.client.notifications import next_message, open_stream, ticket_for
from tests.e2e.client.users import Account, register
from tests.e2e.processes import metrics_url, start_api
from tests.e2e.test_metrics import change, scrape
from tests.support.polling import eventually

ME = "GET /v1/me"
SESSION_REVOKED = 4401
REQUESTS = 20


@pytest.fixture(scope="module")
def other_api(migrated):
    process, url = start_api("api-sessions", {})
    yield url
    process.stop()


@pytest.fixture(scope="module")
def api_without_redis(migrated):
    dead = str(free_port())
    process, url = start_api("api-sessions-no-redis", {"PHOTOS_REDIS_URL": f"redis://127.0.0.1:{dead}/0"})
    yield url
    process.stop()


@pytest.fixture
async def fresh():
    """A client that opens a new connection for every request: the two workers behind one port each get
    some of them (a kept-alive connection would always reach the same one)."""
    async with checked_session(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


async def me_status(http, url: str, token: str) -> int:
    async with http.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def statuses(fresh, urls: list[str], token: str, rounds: int = 4) -> list[int]:
    """GET /v1/me on every url, `rounds` times each (new connections, so both workers of a pair answer)."""
    return await asyncio.gather(*(me_status(fresh, url, token) for url in urls for _ in range(rounds)))


async def log_in_again(http, url: str, account: Account) -> Account:
    body = {"username": account.username, "password": account.password}
    async with http.post(f"{url}/v1/sessions", json=body) as response:
        assert response.status == 201, await response.text()
        token = (await response.json())["token"]
    return Account(account.id, account.username, account.password, token)


async def log_out(http, url: str, account: Account) -> None:
    async with http.delete(f"{url}/v1/sessions/current", headers=account.auth) as response:
        assert response.status == 204, await response.text()


async def test_a_logout_on_one_process_is_refused_by_every_process_within_a_second(http, fresh, api_url, other_api):
    account = await register(http, api_url)
    urls = [api_url, other_api]
    assert set(await statuses(fresh, urls, account.token)) == {200}  # cached in every process now

    await log_out(http, other_api, account)
    refused_at = time.monotonic()
    await eventually(lambda: statuses(fresh, urls, account.token), lambda found: set(found) == {401},
                     timeout=1.0, interval=0.05)
    assert time.monotonic() - refused_at < 1.0
    # and it stays refused
    assert set(await statuses(fresh, urls, account.token)) == {401}


async def test_a_logout_closes_the_tokens_websockets_on_every_process_and_no_others(http, api_url, other_api):
    account = await register(http, api_url)
    by_ticket = await open_stream(http, other_api, account)  # a browser's socket, on another process
    async with http.ws_connect(f"{api_url}/v1/notifications/stream", headers=account.auth) as by_header:
        assert await next_message(by_header) == {"type": "ready"}
        other_device = await log_in_again(http, api_url, account)
        kept = await open_stream(http, other_api, other_device)  # the same user, another session

        await log_out(http, api_url, account)

        for ws in (by_ticket, by_header):
            message = await ws.receive(timeout=1.0)
            assert message.type == aiohttp.WSMsgType.CLOSE, message
            # the code the server sent (the client's own close_code may read 1006 when its answering close
            # frame finds the connection already gone)
            assert message.data == SESSION_REVOKED
            assert "revoked" in (message.extra or "")
        with pytest.raises(TimeoutError):
            await kept.receive(timeout=0.5)  # another session's socket stays open
        assert not kept.closed
        await kept.close()
        await by_ticket.close()


async def test_a_ticket_minted_before_the_logout_opens_nothing(http, api_url, other_api):
    account = await register(http, api_url)
    ticket = await ticket_for(http, api_url, account)
    await log_out(http, api_url, account)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{other_api}/v1/notifications/stream", params={"ticket": ticket})
    assert refused.value.status == 401


async def test_authenticated_requests_read_no_session_row_once_it_is_cached(http, fresh, api_url, migrated):
    account = await register(http, api_url)  # the login wrote the Redis entry
    metrics = metrics_url(api_url)
    before = await scrape(http, metrics)
    for _ in range(REQUESTS):
        assert await me_status(fresh, api_url, account.token) == 200
    after = await scrape(http, metrics)
    served = change(before, after, "photos_http_request_seconds_count", route=ME)
    session_reads = change(before, after, "photos_cassandra_requests_total", route=ME, table="sessions")
    redis_round_trips = change(before, after, "photos_redis_round_trips_total", route=ME)
    print(f"\n{ME} x{served:.0f} after login (2 API workers): sessions reads {session_reads:.0f} "
          f"({session_reads / served:.2f} per request), Redis round trips {redis_round_trips:.0f} "
          f"({redis_round_trips / served:.2f} per request)")
    assert served == REQUESTS
    assert session_reads == 0


async def test_a_session_not_in_redis_is_read_from_cassandra_once(http, fresh, api_url, migrated):
    """A session Redis does not know (Redis restarted, or its entry expired): the first request reads the row
    and fills Redis; every later one, on either worker, reads no row."""
    from redis.asyncio import Redis

    account = await register(http, api_url)
    key = f"{migrated.cassandra_keyspace}:session:{token_hash(account.token).hex()}"
    redis = Redis.from_url(migrated.redis_url)
    try:
        assert await redis.delete(key) == 1
        metrics = metrics_url(api_url)
        before = await scrape(http, metrics)
        for _ in range(REQUESTS):
            assert await me_status(fresh, api_url, account.token) == 200
        after = await scrape(http, metrics)
        assert await redis.exists(key) == 1
    finally:
        await redis.aclose()
    assert change(before, after, "photos_http_request_seconds_count", route=ME) == REQUESTS
    assert change(before, after, "photos_cassandra_requests_total", route=ME, table="sessions") == 1


async def test_with_redis_down_sessions_are_read_from_cassandra_and_logout_is_immediate(http, api_without_redis):
    url = api_without_redis
    account = await register(http, url)  # registration and login need only Cassandra
    metrics = metrics_url(url)
    before = await scrape(http, metrics)
    for _ in range(5):
        assert await me_status(http, url, account.token) == 200
    after = await scrape(http, metrics)
    assert change(before, after, "photos_cassandra_requests_total", route=ME, table="sessions") == 5
    await log_out(http, url, account)
    assert await me_status(http, url, account.token) == 401
