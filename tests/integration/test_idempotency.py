"""Idempotency-Key on the real Cassandra table (app/idempotency.py, app/storage/idempotency.py), through the route
table in this process: a request slower than the pending claim's lease keeps its key, and a response whose
store fails is still answered and never created twice. (A key reused with another body: tests/e2e/test_comments.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import uuid

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cassandra import ConsistencyLevel, WriteTimeout, WriteType

from app.context import IDEMPOTENCY, SESSIONS, SETTINGS
from app.idempotency import IdempotencyStore
from app.middleware import errors_as_json
from app.storage.idempotency import IdempotencyTable
from app.web import Route, add_routes, json_response, read_json
from tests.support.polling import eventually

LEASE_S = 2


def cas_timeout() -> WriteTimeout:
    """What the driver raises when a conditional write timed out: it may or may not have landed."""
    return WriteTimeout("timed out", consistency=ConsistencyLevel.LOCAL_SERIAL, required_responses=1,
                        received_responses=0, write_type=WriteType.CAS)


class Sessions:
    async def authenticate(self, request: web.Request) -> int:
        return int(request.headers["X-User"])


class FlakyTable(IdempotencyTable):
    """The real table, whose next `fail_finishes` stores of a response time out (after landing or not)."""

    fail_finishes = 0

    async def finish(self, *args, **kwargs):
        if self.fail_finishes:
            self.fail_finishes -= 1
            raise cas_timeout()
        return await super().finish(*args, **kwargs)


class Creates:
    """A create route that takes `seconds` and counts its runs."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.runs = 0
        self._ids = itertools.count(1)

    def route(self) -> Route:
        async def create_slowly(request: web.Request) -> web.Response:
            body = await read_json(request, 1024)
            self.runs += 1
            await asyncio.sleep(self.seconds)
            return json_response({"id": str(next(self._ids)), **body}, status=201)

        return Route("POST", "/things", create_slowly, "create a thing slowly", idempotency_key=True)


async def client_for(creates: Creates, table: IdempotencyTable, settings) -> TestClient:
    app = web.Application(middlewares=[errors_as_json])
    app[SETTINGS] = settings
    app[SESSIONS] = Sessions()
    app[IDEMPOTENCY] = IdempotencyStore(table, ttl_s=600, pending_ttl_s=LEASE_S)
    add_routes(app, [creates.route()])
    return TestClient(TestServer(app))


async def send(client: TestClient, user: int, key: str, body: dict) -> tuple[int, dict]:
    headers = {"X-User": str(user), "Idempotency-Key": key}
    async with client.post("/things", json=body, headers=headers) as response:
        return response.status, await response.json()


@pytest.fixture
def user() -> int:
    return secrets.randbits(62)


async def test_a_request_slower_than_the_lease_keeps_its_key_until_it_answers(cass, migrated, user):
    creates = Creates(seconds=3 * LEASE_S)
    table = await IdempotencyTable(cass).prepare()
    async with await client_for(creates, table, migrated) as client:
        first = asyncio.create_task(send(client, user, "slow", {"n": 1}))
        await asyncio.sleep(2 * LEASE_S)  # the first claim's TTL alone would have run out by now
        assert (await send(client, user, "slow", {"n": 1}))[0] == 409
        status, body = await first
        assert status == 201
        assert await send(client, user, "slow", {"n": 1}) == (status, body)
    assert creates.runs == 1


async def test_a_response_whose_store_failed_is_answered_and_a_retry_never_creates_again(cass, migrated, user):
    creates = Creates()
    table = await FlakyTable(cass).prepare()
    table.fail_finishes = 1
    async with await client_for(creates, table, migrated) as client:
        status, body = await send(client, user, "k", {"n": 1})
        assert status == 201 and body["id"] == "1"  # the real result, not 503: the thing exists
        assert (await send(client, user, "k", {"n": 1}))[0] == 409  # held while the response is stored again
        await asyncio.sleep(LEASE_S * 1.5)  # past a lease: the claim must not have lapsed into a free key
        await eventually(lambda: send(client, user, "k", {"n": 1}), lambda reply: reply == (status, body))
    assert creates.runs == 1
    row = await cass.one("SELECT state, status, response FROM idempotency_keys WHERE user_id = %s AND key = %s",
                         (user, "POST /things:k"))
    assert (row.state, row.status, orjson.loads(row.response)) == ("done", 201, body)


async def test_a_failed_request_frees_its_key_and_a_dead_one_frees_it_within_a_lease(cass, user):
    table = await IdempotencyTable(cass).prepare()
    store = IdempotencyStore(table, ttl_s=600, pending_ttl_s=LEASE_S)
    claim = await store.claim(user, "failed", b"request")
    await claim.release()
    await (await store.claim(user, "failed", b"request")).release()  # free again at once
    await table.claim(user, "died", uuid.uuid4(), b"request", LEASE_S)  # what a request that died leaves
    await asyncio.sleep(LEASE_S + 1)
    await (await store.claim(user, "died", b"request")).release()
