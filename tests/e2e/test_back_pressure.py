"""Back-pressure (docs/reliability.md#back-pressure), each against API processes of its own on the real services:
the password-hashing queue is bounded, a request waits a bounded time for a Cassandra slot, a request body that
stops arriving is cut off with 408, and every refusal is a 503 + Retry-After (or 408) that changed nothing."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import pytest

from tests.e2e.client.posts import SMALL_PHOTO, form, user_posts
from tests.e2e.client.users import PASSWORD, register, unique_username
from tests.e2e.processes import metrics_url, start_api
from tests.e2e.test_metrics import scrape, total
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy

# --- argon2: a bounded queue ------------------------------------------------------------
# one hashing thread, one waiting: of a burst of logins, most are refused at once instead of queueing
HASHING_ENV = {
    "PHOTOS_ARGON2_THREADS": "1",
    "PHOTOS_ARGON2_MAX_WAITING": "1",
    "PHOTOS_ARGON2_TIME_COST": "3",  # ~0.1 s a hash here: the burst arrives while the first ones run
    "PHOTOS_ARGON2_MEMORY_KIB": "32768",
    "PHOTOS_LOGIN_RATE_PER_USERNAME": "100000",
}
BURST = 10


@pytest.fixture(scope="module")
def hashing_api(migrated):
    process, url = start_api("api-hashing-queue", HASHING_ENV)
    yield url
    process.stop()


async def _login(http, url: str, username: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
    async with http.post(f"{url}/v1/sessions", json={"username": username, "password": password}) as response:
        await response.read()
        return response


async def test_a_burst_of_logins_beyond_the_hashing_queue_is_refused_with_503_and_retry_after(http, hashing_api):
    account = await register(http, hashing_api)
    answers = await asyncio.gather(*(_login(http, hashing_api, account.username) for _ in range(BURST)))
    statuses = sorted(answer.status for answer in answers)
    assert set(statuses) == {201, 503}, statuses  # some hashed, the rest refused: nothing else
    assert statuses.count(201) <= BURST - 2
    refused = next(answer for answer in answers if answer.status == 503)
    assert int(refused.headers["Retry-After"]) >= 1
    # a refusal costs nothing: the same login, retried alone, succeeds, and a wrong password is still refused
    assert (await _login(http, hashing_api, account.username)).status == 201
    assert (await _login(http, hashing_api, account.username, "wrong password!")).status == 401


async def test_a_registration_refused_for_a_full_hashing_queue_creates_nothing(http, hashing_api):
    names = [unique_username() for _ in range(BURST)]

    async def create(name: str) -> int:
        async with http.post(f"{hashing_api}/v1/accounts", json={"username": name, "password": PASSWORD}) as answer:
            return answer.status

    statuses = await asyncio.gather(*(create(name) for name in names))
    assert set(statuses) == {201, 503}, statuses
    for name, status in zip(names, statuses, strict=True):
        if status == 503:  # nothing was created: the name is free, and registering it again succeeds
            assert await create(name) == 201


# --- Cassandra: a bounded wait for a slot ---------------------------------------------------
POST_READ = "GET /v1/posts/{post_id}"


async def test_a_request_that_cannot_get_a_cassandra_slot_in_time_is_shed_with_503(http, migrated):
    proxy = TcpProxy(migrated.cassandra_port)
    proxy.start()
    env = {
        "PHOTOS_CASSANDRA_PORT": str(proxy.port),
        "PHOTOS_CASSANDRA_MAX_IN_FLIGHT": "1",  # one request holds the only slot while Cassandra stalls
        "PHOTOS_CASSANDRA_SLOT_WAIT_S": "0.3",
        "PHOTOS_CASSANDRA_REQUEST_TIMEOUT_S": "8",
    }
    process, url = start_api("api-cassandra-slots", env)
    try:
        account = await register(http, url)  # its session is in Redis: authenticating reads no Cassandra
        proxy.stall()
        # a post no one has: its read goes to Cassandra, where it hangs, holding the only slot
        reads = await _post_reads(http, url)
        holder = asyncio.create_task(http.get(f"{url}/v1/posts/{_unknown_id()}", headers=account.auth))
        await eventually(lambda: _post_reads(http, url), lambda sent: sent > reads, timeout=10)
        started = time.monotonic()
        async with http.get(f"{url}/v1/posts/{_unknown_id()}", headers=account.auth,
                            timeout=aiohttp.ClientTimeout(total=5)) as response:
            assert response.status == 503, await response.text()
            assert (await response.json())["error"]["code"] == "service_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 3  # shed after the slot wait, not after the query timeout (8 s)
        proxy.resume()
        async with await holder as held:
            assert held.status == 404  # the request that held the slot got its answer once Cassandra did
        async with http.get(f"{url}/v1/posts/{_unknown_id()}", headers=account.auth) as response:
            assert response.status == 404
    finally:
        proxy.resume()
        process.stop()
        proxy.close()


async def _post_reads(http, url: str) -> float:
    """The Cassandra requests GET /v1/posts/{post_id} has sent, from the API's ops listener."""
    return total(await scrape(http, metrics_url(url)), "photos_cassandra_requests_total", route=POST_READ)


def _unknown_id() -> str:
    return str(uuid.uuid4().int % 10**15 + 10**17)


# --- request bodies: an idle timeout per read ------------------------------------------------
SLOW_BODY_ENV = {"PHOTOS_BODY_READ_IDLE_TIMEOUT_S": "1", "PHOTOS_BODY_READ_DEADLINE_S": "20"}


@pytest.fixture(scope="module")
def slow_body_api(migrated):
    process, url = start_api("api-slow-bodies", SLOW_BODY_ENV)
    yield url
    process.stop()


async def _send_raw(url: str, head: str, body_parts: list[bytes], pause_s: float = 0.0,
                    see_close: bool = True) -> tuple[bytes, bool]:
    """Send a request by hand, its body in `body_parts` with `pause_s` between them (and nothing after the last
    one); the answer's bytes, and whether the server then closed the connection (within 5 s; with `see_close`)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        for index, part in enumerate(body_parts):
            if index:
                await asyncio.sleep(pause_s)  # the trickle itself is what is tested
            writer.write(part)
            await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(line.split(b":")[1] for line in answer.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        answer += await asyncio.wait_for(reader.readexactly(length), 5)
        if not see_close:
            return answer, False
        try:
            closed = await asyncio.wait_for(reader.read(1), 5) == b""
        except TimeoutError:
            closed = False
        return answer, closed
    finally:
        writer.close()


def _head(method: str, path: str, url: str, content_type: str, length: int, headers: dict[str, str]) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.removeprefix('http://')}", f"Content-Type: {content_type}",
             f"Content-Length: {length}", *(f"{name}: {value}" for name, value in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


async def test_a_json_body_that_stops_arriving_is_answered_408_and_its_connection_closed(slow_body_api):
    body = b'{"username": "someone", "password": "correct horse battery"}'
    head = _head("POST", "/v1/sessions", slow_body_api, "application/json", len(body), {})
    started = time.monotonic()
    answer, closed = await _send_raw(slow_body_api, head, [body[:10]])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert closed
    assert time.monotonic() - started < 4


async def _multipart_body(image: bytes) -> tuple[bytes, str]:
    """The bytes and content type of POST /v1/posts's multipart body, to send by hand."""
    payload = form(image=image)()
    chunks: list[bytes] = []

    class Sink:
        async def write(self, chunk: bytes) -> None:
            chunks.append(bytes(chunk))

    await payload.write(Sink())
    return b"".join(chunks), payload.content_type


async def test_an_upload_that_stalls_mid_body_is_answered_408_and_holds_nothing(http, slow_body_api):
    author = await register(http, slow_body_api)
    body, content_type = await _multipart_body(SMALL_PHOTO)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    head = _head("POST", "/v1/posts", slow_body_api, content_type, len(body),
                 {**author.auth, **key})
    answer, closed = await _send_raw(slow_body_api, head, [body[: len(body) // 2]])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert closed
    assert await user_posts(http, slow_body_api, author, author.id) == []
    # nothing was claimed or charged: the same request, sent whole with the same key, creates the post
    async with http.post(f"{slow_body_api}/v1/posts", data=form(image=SMALL_PHOTO),
                         headers={**author.auth, **key}) as response:
        assert response.status == 201, await response.text()
    assert len(await user_posts(http, slow_body_api, author, author.id)) == 1


async def test_an_upload_on_a_slow_link_that_keeps_sending_is_accepted(http, slow_body_api):
    author = await register(http, slow_body_api)
    body, content_type = await _multipart_body(SMALL_PHOTO)
    head = _head("POST", "/v1/posts", slow_body_api, content_type, len(body), author.auth)
    pieces = [body[i:i + len(body) // 6 + 1] for i in range(0, len(body), len(body) // 6 + 1)]
    started = time.monotonic()
    answer, _ = await _send_raw(slow_body_api, head, pieces, pause_s=0.4, see_close=False)
    assert time.monotonic() - started > 1.5  # longer in all than the idle timeout, never silent that long
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
