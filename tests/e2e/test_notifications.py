"""Notifications end to end: events through the real agent, the list over HTTP, pushes over WebSocket,
across two API processes."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time

import aiohttp
import orjson
import pytest

from app.events import CommentChanged, EventPublisher, FollowChanged, LikeChanged, new_event_fields
from app.ids import IdGenerator
from app.notifications.hub import GOING_AWAY, SLOW_CLIENT, notification_channel
from tests.e2e.client.comments import comment
from tests.e2e.client.likes import like
from tests.e2e.client.notifications import (
    PUSH_TIMEOUT_S,
    next_message,
    notifications,
    open_stream,
    pushed_notification,
    ticket_for,
    until_notified,
)
from tests.e2e.client.posts import post
from tests.e2e.client.users import Account, follow, register, unfollow
from tests.e2e.processes import start_api
from tests.support.polling import eventually

ids = IdGenerator()


@pytest.fixture(scope="module")
def two_apis(migrated):
    """Two API processes, each on its own port: what one causes, a socket on the other must hear."""
    first, first_url = start_api("notifications-api-a", {})
    second, second_url = start_api("notifications-api-b", {})
    yield first_url, second_url
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def pinging_api(migrated):
    """An API that pings every half second."""
    process, url = start_api("notifications-api-pinging", {"PHOTOS_NOTIFICATION_WS_HEARTBEAT_S": "0.5"})
    yield url
    process.stop()


@pytest.fixture(scope="module")
def small_inbox_api(migrated):
    """An API that drops a client after four unread notifications, and pings too rarely to drop it for an
    unanswered ping first (a client that does not read does not answer pings either)."""
    process, url = start_api(
        "notifications-api-small-inbox",
        {"PHOTOS_NOTIFICATION_WS_HEARTBEAT_S": "600", "PHOTOS_NOTIFICATION_WS_MAX_QUEUED": "4"},
    )
    yield url
    process.stop()


@pytest.fixture(scope="module")
async def publisher(migrated):
    """Publishes events as the API would, for what the API cannot be made to do on cue (a redelivered event,
    a follow already undone, several comments in one exact order)."""
    events = EventPublisher(migrated)
    await events.start()
    await eventually(lambda: asyncio.sleep(0, events.connected), bool, timeout=30)
    yield events
    await events.stop()


def like_event(liker: Account | int, post_id: str, author: Account) -> LikeChanged:
    actor = int(liker.id) if isinstance(liker, Account) else liker
    return LikeChanged(**new_event_fields(actor), post_id=int(post_id), post_author_id=int(author.id), bucket=0,
                       liked=True)


def comment_event(actor: Account, post_id: str, author: Account, *, comment_id: int | None = None,
                  parent: tuple[int, Account] | None = None, mentions: tuple[str, ...] = ()) -> CommentChanged:
    return CommentChanged(
        **new_event_fields(int(actor.id)), post_id=int(post_id), post_author_id=int(author.id),
        comment_id=comment_id or ids.next_id(), parent_id=parent[0] if parent else None,
        parent_author_id=int(parent[1].id) if parent else None, mentions=list(mentions), created=True,
    )


# --- live pushes across processes ------------------------------------------------------------------


async def test_a_socket_on_one_api_process_hears_what_another_process_caused(two_apis, streams_worker, http):
    on_a, on_b = two_apis
    bob, alice, carol = await register(http, on_a), await register(http, on_b), await register(http, on_b)
    ws = await open_stream(http, on_a, bob)
    try:
        await follow(http, on_b, alice, bob)
        pushed = await pushed_notification(ws, lambda n: n["kind"] == "follow")
    finally:
        await ws.close()
    assert pushed["text"] == f"{alice.username} started following you"
    assert pushed["actors"] == [{"id": alice.id, "username": alice.username}]
    assert pushed["actor_count"] == 1

    # bob is offline now; what he missed is in the list, and follows aggregate
    await follow(http, on_b, carol, bob)
    items = await until_notified(http, on_a, bob, lambda n: n["kind"] == "follow" and n["actor_count"] == 2)
    [followed] = [n for n in items if n["kind"] == "follow"]
    assert followed["id"] == pushed["id"]
    assert followed["text"] == f"{carol.username} and 1 other started following you"
    assert [a["id"] for a in followed["actors"]] == [carol.id, alice.id]


async def test_a_follow_undone_before_the_worker_sees_it_notifies_nobody(api_url, streams_worker, http, publisher):
    bob, ghost, fan = await register(http, api_url), await register(http, api_url), await register(http, api_url)
    # the event of a follow that was undone before the agent read it: no edge behind it any more
    await publisher.publish("follows", int(bob.id), FollowChanged(
        **new_event_fields(int(ghost.id)), followee_id=int(bob.id), bucket=0, following=True))
    await follow(http, api_url, fan, bob)  # same key, so handled after the event above
    items = await until_notified(http, api_url, bob, lambda n: n["kind"] == "follow")
    assert [(n["kind"], n["actor_count"], n["actors"][0]["id"]) for n in items] == [("follow", 1, fan.id)]
    await unfollow(http, api_url, fan, bob)  # an unfollow takes nothing back and adds nothing
    assert len(await notifications(http, api_url, bob)) == 1


# --- aggregation and who is told -----------------------------------------------------------------


async def test_likes_aggregate_and_neither_replays_nor_own_likes_count(api_url, streams_worker, http, publisher):
    bob = await register(http, api_url)
    likers = [await register(http, api_url) for _ in range(3)]
    post_id = await post(http, api_url, bob)
    first = like_event(likers[0], post_id, bob)
    for event in [first, first, like_event(bob, post_id, bob), like_event(likers[1], post_id, bob),
                  like_event(likers[2], post_id, bob)]:  # one delivered twice, one by the author
        await publisher.publish("likes", int(post_id), event)
    items = await until_notified(http, api_url, bob, lambda n: n["kind"] == "like" and n["actor_count"] >= 3)
    [liked] = items
    assert liked["actor_count"] == 3
    assert liked["post_id"] == post_id
    assert liked["text"] == f"{likers[2].username} and 2 others liked your post"
    assert [a["id"] for a in liked["actors"]] == [likers[2].id, likers[1].id, likers[0].id]


async def test_comments_replies_and_mentions_tell_each_person_once(api_url, streams_worker, http, publisher):
    bob, carol, dave, erin = [await register(http, api_url) for _ in range(4)]
    post_id = await post(http, api_url, bob)
    carols_comment = ids.next_id()
    for event in [
        comment_event(carol, post_id, bob, comment_id=carols_comment, mentions=(dave.username, bob.username)),
        comment_event(bob, post_id, bob, mentions=(bob.username,)),  # on his own post: nobody to tell
        comment_event(erin, post_id, bob, parent=(carols_comment, carol), mentions=(carol.username,)),
    ]:
        await publisher.publish("comments", int(post_id), event)

    bobs = await until_notified(http, api_url, bob, lambda n: n["kind"] == "comment" and n["actor_count"] == 2)
    assert [(n["kind"], n["text"]) for n in bobs] == [
        ("comment", f"{erin.username} and 1 other commented on your post")
    ]
    carols = await until_notified(http, api_url, carol, lambda n: n["kind"] == "reply")
    assert [(n["kind"], n["text"], n["post_id"]) for n in carols] == [
        ("reply", f"{erin.username} replied to your comment", post_id)
    ]
    daves = await until_notified(http, api_url, dave, lambda n: n["kind"] == "mention")
    assert [(n["text"], n["post_id"], n["comment_id"]) for n in daves] == [
        (f"{carol.username} mentioned you in a comment", post_id, str(carols_comment))
    ]


async def test_likes_comments_and_replies_made_through_the_api_reach_their_people(api_url, streams_worker, http):
    bob, alice, dave, erin = [await register(http, api_url) for _ in range(4)]
    post_id = await post(http, api_url, bob)

    await like(http, api_url, alice, post_id)
    daves = (await comment(http, api_url, dave, post_id, f"nice one @{erin.username}"))["id"]
    erins = (await comment(http, api_url, erin, post_id, "thanks for the mention", parent_id=daves))["id"]

    bobs = await until_notified(http, api_url, bob, lambda n: n["kind"] == "comment" and n["actor_count"] == 2)
    assert sorted((n["kind"], n["actor_count"]) for n in bobs) == [("comment", 2), ("like", 1)]
    assert (await until_notified(http, api_url, dave, lambda n: n["kind"] == "reply"))[0]["comment_id"] == erins
    assert (await until_notified(http, api_url, erin, lambda n: n["kind"] == "mention"))[0]["comment_id"] == daves


async def test_a_caption_mention_tells_the_mentioned_not_the_author(api_url, streams_worker, http):
    bob, alice = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, bob, caption=f"golden hour with @{alice.username}, @{bob.username} "
                                                        "and @nobody_by_that_name_xyz")
    items = await until_notified(http, api_url, alice, lambda n: n["kind"] == "mention")
    assert [(n["text"], n["post_id"], n["comment_id"]) for n in items] == [
        (f"{bob.username} mentioned you in a post", post_id, None)
    ]
    assert await notifications(http, api_url, bob) == []


async def test_the_list_pages_newest_first_without_repeats(api_url, streams_worker, http, publisher):
    bob, fan = await register(http, api_url), await register(http, api_url)
    posts = [await post(http, api_url, bob) for _ in range(3)]
    for post_id in posts:
        await publisher.publish("likes", int(post_id), like_event(fan, post_id, bob))
    await eventually(lambda: notifications(http, api_url, bob), lambda items: len(items) == 3, timeout=PUSH_TIMEOUT_S)
    seen, cursor = [], None
    while True:
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}/v1/notifications", params=params, headers=bob.auth) as response:
            assert response.status == 200
            page = await response.json()
        assert len(page["items"]) <= 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(n["post_id"] for n in seen) == sorted(posts)
    assert len({n["id"] for n in seen}) == 3
    assert [n["updated_at"] for n in seen] == sorted((n["updated_at"] for n in seen), reverse=True)


# --- the WebSocket ------------------------------------------------------------------------------


async def test_a_non_browser_client_may_send_its_bearer_token_on_the_upgrade(api_url, http):
    bob = await register(http, api_url)
    async with http.ws_connect(f"{api_url}/v1/notifications/stream", headers=bob.auth) as ws:
        assert await next_message(ws) == {"type": "ready"}


async def test_a_ticket_opens_one_stream_only_and_expires(api_url, http, redis_client, settings):
    bob = await register(http, api_url)
    ticket = await ticket_for(http, api_url, bob)
    key = f"{settings.cassandra_keyspace}:wsticket:{hashlib.sha256(ticket.encode()).hexdigest()}"
    assert 0 < await redis_client.ttl(key) <= settings.notification_ticket_ttl_s
    async with http.ws_connect(f"{api_url}/v1/notifications/stream", params={"ticket": ticket}) as ws:
        assert await next_message(ws) == {"type": "ready"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{api_url}/v1/notifications/stream", params={"ticket": ticket})
    assert refused.value.status == 401


@pytest.mark.parametrize(
    ("params", "headers", "code"),
    [
        ({}, {}, "ticket_required"),
        ({"ticket": "not-a-ticket-we-ever-issued-0123456789"}, {}, "invalid_ticket"),
        ({"ticket": "short"}, {}, "invalid_ticket"),
        ({}, {"Authorization": "Bearer not-a-live-token-0123456789abcdef"}, "invalid_token"),
    ],
)
async def test_a_stream_without_valid_credentials_is_refused_before_the_upgrade(api_url, http, params, headers, code):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{api_url}/v1/notifications/stream", params=params, headers=headers)
    assert refused.value.status == 401
    # the refusal is a JSON error (ws_connect does not expose the body, so ask with a plain GET)
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with http.get(f"{api_url}/v1/notifications/stream", params=params, headers={**headers, **upgrade}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == code


async def test_a_plain_get_of_the_stream_is_a_400_and_leaves_the_ticket_usable(api_url, http):
    bob = await register(http, api_url)
    ticket = await ticket_for(http, api_url, bob)
    async with http.get(f"{api_url}/v1/notifications/stream", params={"ticket": ticket}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "websocket_required"
    async with http.ws_connect(f"{api_url}/v1/notifications/stream", params={"ticket": ticket}) as ws:
        assert await next_message(ws) == {"type": "ready"}


async def test_the_server_pings_an_idle_socket(pinging_api, http):
    bob = await register(http, pinging_api)
    ws = await open_stream(http, pinging_api, bob, autoping=False)
    try:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.PING
    finally:
        await ws.close()


def small_receive_buffer_socket(addr_info) -> socket.socket:
    """A client socket with a fixed 64 KB receive buffer: left to itself Linux grows it up to tcp_rmem's
    maximum (32 MB here), which could swallow everything the test sends before the server's inbox fills."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


async def test_a_client_that_does_not_read_is_closed_with_the_slow_client_code(small_inbox_api, redis_client,
                                                                                 settings):
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer_socket)
    async with aiohttp.ClientSession(connector=connector) as http:
        await _a_client_that_does_not_read(http, small_inbox_api, redis_client, settings)


async def _a_client_that_does_not_read(http, small_inbox_api, redis_client, settings) -> None:
    bob = await register(http, small_inbox_api)
    ws = await open_stream(http, small_inbox_api, bob)
    channel = notification_channel(settings.cassandra_keyspace, int(bob.id))
    try:
        big = orjson.dumps({"type": "notification", "notification": {"text": "x" * 256 * 1024}})
        for _ in range(48):  # ~12 MB that nobody reads: the kernel buffers fill, then the 4-message inbox
            await redis_client.publish(channel, big)
        # the server gave up on the socket (its subscription went with it) while we were not reading
        await eventually(lambda: redis_client.pubsub_numsub(channel), lambda counts: counts[0][1] == 0, timeout=30)
        while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            pass  # what was already on its way
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
        assert ws.close_code == SLOW_CLIENT
    finally:
        await ws.close()


async def test_shutting_down_closes_open_streams_with_going_away_at_once(migrated, http):
    process, url = start_api("notifications-api-shutdown", {})
    try:
        bob = await register(http, url)
        ws = await open_stream(http, url, bob)
        started = time.monotonic()
        stopping = asyncio.create_task(asyncio.to_thread(process.stop))
        message = await ws.receive(timeout=20)
        await stopping
        assert message.type == aiohttp.WSMsgType.CLOSE and ws.close_code == GOING_AWAY
        assert time.monotonic() - started < 10  # an open socket does not hold the shutdown up
    finally:
        process.stop()


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"cursor": "garbage"}, "invalid_cursor"),
    ],
)
async def test_bad_list_parameters_are_a_400(api_url, http, params, code):
    bob = await register(http, api_url)
    async with http.get(f"{api_url}/v1/notifications", params=params, headers=bob.auth) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == code


async def test_the_list_and_tickets_need_a_token(api_url, http):
    async with http.get(f"{api_url}/v1/notifications") as response:
        assert response.status == 401
    async with http.post(f"{api_url}/v1/notifications/ticket") as response:
        assert response.status == 401
