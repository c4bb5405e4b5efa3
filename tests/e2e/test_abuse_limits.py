"""Rate limits on uploads (charged by decoded pixels), follows, profile edits, notification tickets and
notification WebSockets, per user and per client address, against an API of small limits.

The API trusts 127.0.0.1 as its proxy: each test says, in X-Forwarded-For, which client it is, so the
per-address counts (kept in the shared Redis) are its own.
"""

from __future__ import annotations

import ipaddress
import random
import struct
import zlib

import aiohttp
import pytest

from tests.e2e.client.common import expect_error
from tests.e2e.client.posts import PHOTO, SMALL_PHOTO, form
from tests.e2e.client.stories import story_form
from tests.e2e.client.users import register
from tests.e2e.processes import isolated_api_fixture, start_api
from tests.support.polling import eventually

PHOTO_PIXELS = 1600 * 1200  # PHOTO's size
LIMITS = {
    "PHOTOS_TRUSTED_PROXIES": "127.0.0.1/32",
    "PHOTOS_RATE_WINDOW_S": "3600",
    "PHOTOS_UPLOAD_PIXELS_PER_USER": str(PHOTO_PIXELS + PHOTO_PIXELS // 2),  # one PHOTO, not two
    "PHOTOS_UPLOAD_PIXELS_PER_ADDRESS": str(3 * PHOTO_PIXELS - 1),  # two PHOTOs, not three
    "PHOTOS_FOLLOW_RATE_PER_USER": "3",
    "PHOTOS_FOLLOW_RATE_PER_ADDRESS": "5",
    "PHOTOS_PROFILE_RATE_PER_USER": "2",
    "PHOTOS_PROFILE_RATE_PER_ADDRESS": "3",
    "PHOTOS_NOTIFICATION_TICKET_RATE_PER_USER": "2",
    "PHOTOS_NOTIFICATION_TICKET_RATE_PER_ADDRESS": "3",
    "PHOTOS_NOTIFICATION_WS_MAX_PER_USER": "2",
    "PHOTOS_NOTIFICATION_WS_MAX_PER_PROCESS": "3",
    "PHOTOS_STORY_RATE_PER_USER": "2",
}
limited_api = isolated_api_fixture("abuse", LIMITS)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def some_client() -> str:
    """An address no other run is likely to have used in this window: the counts live in the shared Redis."""
    return str(SHARED_ADDRESS_SPACE[random.randrange(SHARED_ADDRESS_SPACE.num_addresses)])


def headers(account, client: str) -> dict[str, str]:
    return {**account.auth, "X-Forwarded-For": client}


async def expect_rate_limited(response) -> None:
    await expect_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


async def upload(http, url, account, client, image: bytes = PHOTO):
    return await http.post(f"{url}/v1/posts", data=form(image), headers=headers(account, client))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header says width x height and whose pixel data ends after one row: nothing to decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    one_row = zlib.compress(b"\0" * (1 + 3 * width))[:-4]  # cut short
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", one_row)


async def test_uploads_are_charged_by_pixels_not_by_request(http, limited_api):
    client = some_client()
    big, small = await register(http, limited_api), await register(http, limited_api)
    async with await upload(http, limited_api, big, client) as r:
        assert r.status == 201, await r.text()
    async with await upload(http, limited_api, big, client) as r:
        await expect_rate_limited(r)  # two large photos are past the budget
    async with http.post(f"{limited_api}/v1/stories", data=story_form(), headers=headers(big, client)) as r:
        await expect_rate_limited(r)  # stories draw on the same budget
    for _ in range(6):  # many small photos are not
        async with await upload(http, limited_api, small, some_client(), SMALL_PHOTO) as r:
            assert r.status == 201, await r.text()


async def test_the_charge_is_read_from_the_header_before_the_image_pool_decodes_anything(http, limited_api):
    client = some_client()
    user = await register(http, limited_api)
    async with await upload(http, limited_api, user, client, png_header_only(1600, 1200)) as r:
        await expect_error(r, 422, "corrupt_image")  # the pool found no pixels to decode...
    async with await upload(http, limited_api, user, client, png_header_only(1600, 1200)) as r:
        await expect_rate_limited(r)  # ...yet the header's pixels were charged, and now it is not reached


async def test_uploads_per_address_are_charged_by_pixels(http, limited_api):
    client = some_client()
    users = [await register(http, limited_api) for _ in range(3)]
    for user in users[:2]:
        async with await upload(http, limited_api, user, client) as r:
            assert r.status == 201, await r.text()
    async with await upload(http, limited_api, users[2], client) as r:
        await expect_rate_limited(r)  # the third user's first photo, from the same address


async def follow(http, url, who, whom, client, method="PUT"):
    return await http.request(method, f"{url}/v1/users/{whom.id}/follow", headers=headers(who, client))


async def test_follows_and_unfollows_are_rate_limited_per_user_and_per_address(http, limited_api):
    client = some_client()
    reader, other_reader, author = [await register(http, limited_api) for _ in range(3)]
    for method in ("PUT", "DELETE", "PUT"):
        async with await follow(http, limited_api, reader, author, some_client(), method) as r:
            assert r.status == 204, await r.text()
    async with await follow(http, limited_api, reader, author, some_client(), "DELETE") as r:
        await expect_rate_limited(r)
    third = await register(http, limited_api)
    for who, methods in ((other_reader, ("PUT", "DELETE", "PUT")), (third, ("PUT", "DELETE"))):
        for method in methods:
            async with await follow(http, limited_api, who, author, client, method) as r:
                assert r.status == 204, await r.text()
    async with await follow(http, limited_api, third, author, client) as r:
        await expect_rate_limited(r)  # the address's 6th, the user's 3rd


async def edit_profile(http, url, who, client):
    return await http.patch(f"{url}/v1/me", json={"bio": "hello"}, headers=headers(who, client))


async def test_profile_edits_are_rate_limited_per_user_and_per_address(http, limited_api):
    client = some_client()
    first, second = await register(http, limited_api), await register(http, limited_api)
    for _ in range(2):
        async with await edit_profile(http, limited_api, first, some_client()) as r:
            assert r.status == 200, await r.text()
    async with await edit_profile(http, limited_api, first, some_client()) as r:
        await expect_rate_limited(r)
    third = await register(http, limited_api)
    for who in (second, second, third):
        async with await edit_profile(http, limited_api, who, client) as r:
            assert r.status == 200, await r.text()
    async with await edit_profile(http, limited_api, third, client) as r:
        await expect_rate_limited(r)  # the address's 4th, the user's 2nd


async def ticket(http, url, who, client):
    return await http.post(f"{url}/v1/notifications/ticket", headers=headers(who, client))


async def test_notification_tickets_are_rate_limited_per_user_and_per_address(http, limited_api):
    client = some_client()
    first, second = await register(http, limited_api), await register(http, limited_api)
    for _ in range(2):
        async with await ticket(http, limited_api, first, some_client()) as r:
            assert r.status == 201, await r.text()
    async with await ticket(http, limited_api, first, some_client()) as r:
        await expect_rate_limited(r)
    third = await register(http, limited_api)
    for who in (second, second, third):
        async with await ticket(http, limited_api, who, client) as r:
            assert r.status == 201, await r.text()
    async with await ticket(http, limited_api, third, client) as r:
        await expect_rate_limited(r)  # the address's 4th, the user's 2nd


async def open_socket(http, url, who):
    """A notification socket opened with the bearer header (tickets are limited here), once `ready`."""
    ws = await http.ws_connect(f"{url}/v1/notifications/stream", headers=who.auth)
    assert (await ws.receive_json(timeout=30)) == {"type": "ready"}
    return ws


async def try_socket(http, url, who):
    """A socket opened once `ready`, or None when the upgrade is refused with 429 (a closed socket frees its
    place once the server has seen it close)."""
    try:
        return await open_socket(http, url, who)
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 429
        return None


async def refused_upgrade(http, url, who) -> aiohttp.WSServerHandshakeError:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{url}/v1/notifications/stream", headers=who.auth)
    assert refused.value.status == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    return refused.value


async def test_notification_sockets_are_limited_per_user_and_per_process(http, limited_api):
    first, second, third = [await register(http, limited_api) for _ in range(3)]
    sockets = [await open_socket(http, limited_api, first) for _ in range(2)]
    try:
        await refused_upgrade(http, limited_api, first)  # a third socket of the same user
        sockets.append(await open_socket(http, limited_api, second))
        await refused_upgrade(http, limited_api, third)  # the process holds its 3
        await sockets.pop(0).close()
        sockets.append(await eventually(lambda: try_socket(http, limited_api, third), lambda ws: ws is not None))
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_retried_story_gets_its_first_answer_not_the_story_limits_429(http, limited_api):
    me = await register(http, limited_api)
    client = some_client()

    async def story(key: str):
        return await http.post(f"{limited_api}/v1/stories", data=story_form(SMALL_PHOTO),
                               headers={**headers(me, client), "Idempotency-Key": key})

    first = await story("first")
    assert first.status == 201, await first.text()
    assert (await story("second")).status == 201  # the limit's two stories
    await expect_rate_limited(await story("third"))
    replay = await story("first")  # a retry of an answered story is not a new one
    assert replay.status == 201
    assert (await replay.json())["id"] == (await first.json())["id"]


@pytest.fixture(scope="module")
def other_api(limited_api):
    """A second API process of the same limits, sharing the Redis that counts a user's sockets."""
    process, url = start_api("api-abuse-other", LIMITS)
    yield url
    process.stop()


async def test_a_users_sockets_are_counted_across_api_processes(http, limited_api, other_api):
    me = await register(http, limited_api)
    sockets = [await open_socket(http, limited_api, me), await open_socket(http, other_api, me)]
    try:
        await refused_upgrade(http, limited_api, me)  # each process holds one: the user holds two
        await refused_upgrade(http, other_api, me)
        await sockets.pop().close()
        sockets.append(await eventually(lambda: try_socket(http, limited_api, me), lambda ws: ws is not None))
    finally:
        for ws in sockets:
            await ws.close()


async def test_the_sockets_of_a_killed_api_process_stop_counting_when_their_leases_end(http, limited_api):
    me = await register(http, limited_api)
    process, doomed = start_api("api-abuse-doomed", {**LIMITS, "PHOTOS_NOTIFICATION_WS_LEASE_S": "2"})
    try:
        held = [await open_socket(http, doomed, me) for _ in range(2)]
        await refused_upgrade(http, limited_api, me)
        process.kill()  # SIGKILL: its sockets are never closed, their leases never released
        for ws in held:
            await ws.close()
        survivor = await eventually(lambda: try_socket(http, limited_api, me), lambda ws: ws is not None, timeout=15)
        await survivor.close()
    finally:
        process.stop()
