"""The route table's Idempotency-Key: a route marked `idempotency_key` runs at most once per (user, scope, key)
and a retry gets the first response again, byte for byte. In process: the real IdempotencyStore on a dict that
answers its conditional statements as Cassandra does, and the real create routes on stub services."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cassandra import ConsistencyLevel, WriteTimeout, WriteType

from app.comments import routes as comment_routes
from app.context import IDEMPOTENCY, LIMITER, SESSIONS, SETTINGS
from app.errors import Unavailable
from app.idempotency import IdempotencyStore
from app.middleware import errors_as_json
from app.posts import routes as post_routes
from app.settings import Settings
from app.storage.idempotency import IdempotencyTable
from app.stories import routes as story_routes
from app.web import Route, add_routes, json_response, read_json, read_upload


def cas_timeout() -> WriteTimeout:
    """What the driver raises when a conditional write timed out: it may or may not have landed."""
    return WriteTimeout("timed out", consistency=ConsistencyLevel.LOCAL_SERIAL, required_responses=1,
                        received_responses=0, write_type=WriteType.CAS)


class IdempotencySession:
    """A Cassandra session holding `idempotency_keys` in a dict, answering the table's conditional statements (the
    claim, renewal, finish, insert of a response, release) as Cassandra does. TTLs are not kept."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], dict] = {}
        self.fail_finishes = 0

    async def prepare(self, cql: str) -> str:
        return cql

    async def execute(self, statement: str, params: tuple):
        if statement.startswith("INSERT") and "'pending'" in statement:
            user_id, key, owner, fingerprint, _ttl = params
            return self._insert(user_id, key, state="pending", owner=owner, fingerprint=fingerprint)
        if statement.startswith("INSERT"):
            user_id, key, status, response, owner, fingerprint, _ttl = params
            return self._insert(user_id, key, state="done", status=status, response=response, owner=owner,
                                fingerprint=fingerprint)
        if statement.startswith("UPDATE") and "'done'" in statement:
            if self.fail_finishes:
                self.fail_finishes -= 1
                raise cas_timeout()
            _ttl, status, response, owner, fingerprint, user_id, key, expected = params
            return self._update(user_id, key, expected, state="done", status=status, response=response,
                                owner=owner, fingerprint=fingerprint)
        if statement.startswith("UPDATE"):
            _ttl, owner, fingerprint, user_id, key, expected = params
            if self.rows.get((user_id, key), {}).get("state") != "pending":
                return self._not_applied(user_id, key)
            return self._update(user_id, key, expected, owner=owner, fingerprint=fingerprint)
        user_id, key, expected = params
        row = self.rows.get((user_id, key))
        if row is None or row["state"] != "pending" or row["owner"] != expected:
            return self._not_applied(user_id, key)
        del self.rows[user_id, key]
        return SimpleNamespace(was_applied=True, current_rows=[])

    def _insert(self, user_id: int, key: str, **values):
        if (user_id, key) in self.rows:
            return self._not_applied(user_id, key)
        self.rows[user_id, key] = {"status": None, "response": None} | values
        return SimpleNamespace(was_applied=True, current_rows=[])

    def _update(self, user_id: int, key: str, expected_owner, **values):
        row = self.rows.get((user_id, key))
        if row is None or row["owner"] != expected_owner:
            return self._not_applied(user_id, key)
        row.update(values)
        return SimpleNamespace(was_applied=True, current_rows=[])

    def _not_applied(self, user_id: int, key: str):
        row = self.rows.get((user_id, key))
        return SimpleNamespace(was_applied=False, current_rows=[SimpleNamespace(**(row or {"applied": False}))])


class Sessions:
    async def authenticate(self, request: web.Request) -> int:
        return int(request.headers["X-User"])


class Limiter:
    async def hit(self, *args) -> None:
        return None


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.fail_next = False


def counting_route(path: str, counter: Counter, scope: str = "") -> Route:
    serial = itertools.count(1)

    async def create_thing(request: web.Request) -> web.Response:
        await read_json(request, 1024)
        counter.calls += 1
        if counter.fail_next:
            counter.fail_next = False
            raise Unavailable("down for a moment")
        return json_response({"id": str(next(serial)), "path": path, "float": 0.1, "text": "é"}, status=201)

    create_thing.__name__ = f"create_{path.strip('/')}"  # route names are unique
    return Route("POST", path, create_thing, "create a thing", idempotency_key=True, idempotency_scope=scope)


async def app_client(routes: list[Route], keys: dict | None = None, session: IdempotencySession | None = None
                     ) -> TestClient:
    app = web.Application(middlewares=[errors_as_json])
    app[SETTINGS] = Settings.from_env()
    app[SESSIONS] = Sessions()
    app[LIMITER] = Limiter()
    app[IDEMPOTENCY] = IdempotencyStore(await IdempotencyTable(session or IdempotencySession()).prepare(), ttl_s=60)
    for key, value in (keys or {}).items():
        app[key] = value
    add_routes(app, routes)
    return TestClient(TestServer(app))


@pytest.fixture
async def things() -> AsyncIterator[tuple[TestClient, Counter, Counter]]:
    first, second = Counter(), Counter()
    client = await app_client([counting_route("/things", first), counting_route("/others", second)])
    async with client:
        yield client, first, second


async def send(client: TestClient, path: str, user: int = 1, key: str | None = None, body: bytes = b"{}"
               ) -> tuple[int, bytes]:
    headers = {"X-User": str(user), "Content-Type": "application/json"} | ({"Idempotency-Key": key} if key else {})
    async with client.post(path, data=body, headers=headers) as response:
        return response.status, await response.read()


async def test_a_retry_with_the_same_key_gets_the_first_response_byte_for_byte_and_runs_nothing(things):
    client, counter, _ = things
    first = await send(client, "/things", key="k1")
    assert first[0] == 201
    assert await send(client, "/things", key="k1") == first
    assert counter.calls == 1
    assert (await send(client, "/things", key="k2"))[1] != first[1]  # another key: another thing
    assert counter.calls == 2


async def test_without_a_key_every_request_runs():
    counter = Counter()
    async with await app_client([counting_route("/things", counter)]) as client:
        assert (await send(client, "/things"))[1] != (await send(client, "/things"))[1]
    assert counter.calls == 2


async def test_keys_are_per_user_and_per_route(things):
    client, first, second = things
    mine = await send(client, "/things", user=1, key="k")
    theirs = await send(client, "/things", user=2, key="k")
    other_route = await send(client, "/others", user=1, key="k")
    assert mine[1] != theirs[1] and other_route[1] != mine[1]
    assert (first.calls, second.calls) == (2, 1)


async def test_a_failed_first_request_frees_its_key(things):
    client, counter, _ = things
    counter.fail_next = True
    assert (await send(client, "/things", key="k"))[0] == 503
    status, body = await send(client, "/things", key="k")
    assert status == 201 and await send(client, "/things", key="k") == (status, body)
    assert counter.calls == 2


async def test_the_same_key_with_another_body_is_refused_and_runs_nothing(things):
    client, counter, _ = things
    first = await send(client, "/things", key="k", body=b'{"text": "one", "n": 1}')
    assert await send(client, "/things", key="k", body=b'{ "n": 1,  "text": "one" }') == first  # the same JSON
    status, body = await send(client, "/things", key="k", body=b'{"text": "two", "n": 1}')
    assert status == 422 and orjson.loads(body)["error"]["code"] == "idempotency_key_reused"
    assert counter.calls == 1
    assert await send(client, "/things", key="k", body=b'{"text": "one", "n": 1}') == first


async def test_a_response_that_could_not_be_stored_is_still_answered_and_never_created_twice():
    counter, session = Counter(), IdempotencySession()
    session.fail_finishes = 1
    async with await app_client([counting_route("/things", counter)], session=session) as client:
        status, body = await send(client, "/things", key="k")
        assert status == 201  # the thing exists: the client hears so
        assert (await send(client, "/things", key="k"))[0] == 409  # held while the response is stored again
        for _ in range(50):
            if session.rows[1, "POST /things:k"]["state"] == "done":
                break
            await asyncio.sleep(0.1)
        assert await send(client, "/things", key="k") == (status, body)
    assert counter.calls == 1


def upload_route(counter: Counter) -> Route:
    async def create_upload(request: web.Request) -> web.Response:
        _, fields = await read_upload(request, "image", ("caption",))
        counter.calls += 1
        return json_response({"id": str(counter.calls), "caption": fields.get("caption", "")}, status=201)

    return Route("POST", "/uploads", create_upload, "upload a thing", idempotency_key=True)


async def test_a_form_resent_with_another_boundary_is_the_same_request_and_another_file_is_not():
    counter = Counter()

    async def upload(client: TestClient, image: bytes, caption: str) -> tuple[int, bytes]:
        form = aiohttp.FormData()  # a new random boundary each time
        form.add_field("caption", caption)
        form.add_field("image", image, filename="a.jpg", content_type="image/jpeg")
        async with client.post("/uploads", data=form, headers={"X-User": "1", "Idempotency-Key": "u"}) as response:
            return response.status, await response.read()

    async with await app_client([upload_route(counter)]) as client:
        first = await upload(client, b"jpeg bytes", "hi")
        assert first[0] == 201 and await upload(client, b"jpeg bytes", "hi") == first
        assert (await upload(client, b"other bytes", "hi"))[0] == 422
        assert (await upload(client, b"jpeg bytes", "ho"))[0] == 422
    assert counter.calls == 1


async def test_a_route_taking_keys_must_read_its_body_before_acting():
    async def create_blindly(request: web.Request) -> web.Response:
        return json_response({}, status=201)

    route = Route("POST", "/blind", create_blindly, "create without reading", idempotency_key=True)
    async with await app_client([route]) as client:
        assert (await send(client, "/blind", key="k"))[0] == 500


async def test_a_malformed_key_is_refused_before_the_handler_runs(things):
    client, counter, _ = things
    status, body = await send(client, "/things", key="x" * 256)
    assert status == 400 and b"invalid_idempotency_key" in body
    assert counter.calls == 0


def test_the_create_routes_keep_their_scopes():
    """The scopes are part of the stored keys: renaming one would let a retry across a deploy create twice."""
    marked = {route.handler.__name__: route.scope
              for routes in (post_routes.ROUTES, comment_routes.ROUTES, story_routes.ROUTES)
              for route in routes if route.idempotency_key}
    assert marked == {"create_post": "post", "create_comment": "comment", "create_story": "story"}


class StubComments:
    def __init__(self) -> None:
        self.created: list[tuple] = []

    async def create(self, author_id: int, post_id: int, text: str, parent_id: int | None) -> dict:
        self.created.append((author_id, post_id, text, parent_id))
        return {"id": str(len(self.created)), "post_id": str(post_id), "text": text}


async def test_a_created_comment_is_answered_201_and_a_retry_gets_it_again():
    comments = StubComments()
    async with await app_client(comment_routes.ROUTES, {comment_routes.COMMENTS: comments}) as client:
        headers = {"X-User": "7", "Idempotency-Key": "c1"}
        replies = []
        for _ in range(2):
            async with client.post("/v1/posts/5/comments", json={"text": "hi"}, headers=headers) as response:
                replies.append((response.status, await response.read()))
    assert replies[0][0] == 201 and replies[1] == replies[0]
    assert comments.created == [(7, 5, "hi", None)]
