"""Notifications against real Cassandra and Redis: aggregation, replays, moves, trimming, paging, the hub."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from app.cursors import CursorCodec
from app.events import FollowChanged, new_event_fields
from app.ids import IdGenerator
from app.notifications import model
from app.notifications.hub import RESYNC, SLOW_CLIENT, NotificationHub, notification_channel, subscriber_client
from app.notifications.model import Note
from app.notifications.service import NotificationService, TicketStore
from app.notifications.writer import NotificationWriter
from app.storage.follows import FollowRepository
from app.storage.notifications import NotificationRepository
from app.storage.users import UserRepository
from streams.notifications import NoteMaker
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy

ids = IdGenerator()
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
async def repos(cass):
    users = await UserRepository(cass).prepare()
    follows = await FollowRepository(cass).prepare()
    notifications = await NotificationRepository(cass).prepare()
    return users, follows, notifications


def make_writer(repos, *, max_actors: int = 10_000, bump_interval_s: int = 60, max_per_user: int = 1000):
    users, _, notifications = repos
    return NotificationWriter(notifications, users, ttl_s=3600, max_actors=max_actors,
                              bump_interval_s=bump_interval_s, max_per_user=max_per_user)


def make_service(repos, hub=None) -> NotificationService:
    return NotificationService(notifications=repos[2], tickets=None, hub=hub, cursors=CursorCodec("test"))


async def new_user(users: UserRepository, name: str | None = None) -> int:
    user_id = ids.next_id()
    username = name or f"n{user_id}"
    await users.insert(user_id, username, "", "x", datetime.now(UTC))
    await users.claim_username(username, user_id)
    return user_id


def like(recipient: int, actor: int, post_id: int, at_ms: int) -> Note:
    return Note(recipient, model.LIKE, model.like_key(post_id, model.window_of(at_ms, 24)), actor, at_ms,
                post_id=post_id)


async def listed(repos, user_id: int) -> list[dict]:
    items, cursor = await make_service(repos).page(user_id, 100, None)
    assert cursor is None
    return items


# --- aggregation --------------------------------------------------------------------------


async def test_thirteen_likes_make_one_notification_counting_distinct_actors(repos):
    users, _, _ = repos
    author = await new_user(users)
    likers = [await new_user(users, f"liker{i}_{author}") for i in range(13)]
    post_id, now = ids.next_id(), int(time.time() * 1000)
    await make_writer(repos).apply([like(author, liker, post_id, now + i) for i, liker in enumerate(likers)])
    [item] = await listed(repos, author)
    assert item["kind"] == "like" and item["post_id"] == str(post_id)
    assert item["actor_count"] == 13
    assert item["text"] == f"liker12_{author} and 12 others liked your post"
    assert [a["id"] for a in item["actors"]] == [str(likers[12]), str(likers[11]), str(likers[10])]


async def test_a_replayed_batch_counts_nothing_twice_and_is_not_pushed_again(repos):
    users, _, _ = repos
    author, fan = await new_user(users), await new_user(users)
    notes = [like(author, fan, ids.next_id(), int(time.time() * 1000))]
    pushed = []

    async def on_change(group):
        pushed.append(group)

    writer = make_writer(repos)
    for _ in range(3):  # the same batch delivered three times (a worker killed before its commit)
        await writer.apply(notes, on_change=on_change)
    [item] = await listed(repos, author)
    assert item["actor_count"] == 1
    assert len(pushed) == 1


async def test_an_actor_acting_again_neither_counts_again_nor_moves_the_notification(repos):
    users, _, _ = repos
    author, fan = await new_user(users), await new_user(users)
    post_id, now = ids.next_id(), int(time.time() * 1000)
    writer = make_writer(repos)
    await writer.apply([like(author, fan, post_id, now)])
    [before] = await listed(repos, author)
    assert await writer.apply([like(author, fan, post_id, now + 5 * 60_000)]) == []  # unliked and liked again
    assert await listed(repos, author) == [before]


async def test_an_aggregate_that_gains_an_actor_moves_to_the_top_once(repos):
    users, _, _ = repos
    author, fans = await new_user(users), [await new_user(users) for _ in range(3)]
    post_a, post_b, start = ids.next_id(), ids.next_id(), int(time.time() * 1000) - HOUR_MS
    writer = make_writer(repos, bump_interval_s=60)
    await writer.apply([like(author, fans[0], post_a, start)])
    await writer.apply([like(author, fans[1], post_b, start + 1000)])
    assert [i["post_id"] for i in await listed(repos, author)] == [str(post_b), str(post_a)]
    await writer.apply([like(author, fans[2], post_a, start + 120_000)])  # past the bump interval
    items = await listed(repos, author)
    assert [i["post_id"] for i in items] == [str(post_a), str(post_b)]
    assert items[0]["actor_count"] == 2
    rows = await repos[2].list_page(author, None, 10)
    assert len(rows) == 2  # the old row of post A is gone, not just hidden


async def test_within_the_bump_interval_an_aggregate_updates_in_place(repos):
    users, _, _ = repos
    author, fans = await new_user(users), [await new_user(users) for _ in range(3)]
    post_a, post_b, start = ids.next_id(), ids.next_id(), int(time.time() * 1000)
    writer = make_writer(repos, bump_interval_s=60)
    await writer.apply([like(author, fans[0], post_a, start)])
    await writer.apply([like(author, fans[1], post_b, start + 1000)])
    await writer.apply([like(author, fans[2], post_a, start + 2000)])
    items = await listed(repos, author)
    assert [i["post_id"] for i in items] == [str(post_b), str(post_a)]
    assert items[1]["actor_count"] == 2


async def test_concurrent_writers_of_one_aggregate_lose_no_actor(repos):
    """Two workers on one aggregate (one lost its partition and has not noticed): the condition serialises them."""
    users, _, _ = repos
    author = await new_user(users)
    fans = [await new_user(users) for _ in range(10)]
    post_id, now = ids.next_id(), int(time.time() * 1000)
    writers = [make_writer(repos) for _ in range(5)]
    await asyncio.gather(*(
        writer.apply([like(author, fan, post_id, now + i) for i, fan in enumerate(fans[2 * n : 2 * n + 2])])
        for n, writer in enumerate(writers)
    ))
    [item] = await listed(repos, author)
    assert item["actor_count"] == 10


async def test_the_count_stops_at_max_actors_and_the_text_says_so(repos):
    users, _, _ = repos
    author, fans = await new_user(users), [await new_user(users) for _ in range(5)]
    post_id, now = ids.next_id(), int(time.time() * 1000)
    await make_writer(repos, max_actors=3).apply([like(author, fan, post_id, now + i) for i, fan in enumerate(fans)])
    [item] = await listed(repos, author)
    assert item["actor_count"] == 3
    assert item["text"].endswith(" and 2+ others liked your post")
    assert item["actors"][0]["id"] == str(fans[4])  # still the newest, though not counted


async def test_more_new_actors_than_one_write_holds_are_all_counted(repos):
    users, _, _ = repos
    author, post_id, now = await new_user(users), ids.next_id(), int(time.time() * 1000)
    fans = [ids.next_id() for _ in range(250)]  # no user rows needed: only the latest three are looked up
    await make_writer(repos).apply([like(author, fan, post_id, now + i) for i, fan in enumerate(fans)])
    [item] = await listed(repos, author)
    assert item["actor_count"] == 250


# --- the list ------------------------------------------------------------------------------------


async def test_a_row_left_behind_by_an_interrupted_move_is_not_shown(repos):
    users, _, notifications = repos
    author, fan = await new_user(users), await new_user(users)
    post_id, now = ids.next_id(), int(time.time() * 1000)
    [group] = await make_writer(repos).apply([like(author, fan, post_id, now)])
    await notifications.add_to_list(author, group.position + 1, group.group_key, 3600)  # orphan newer row
    await notifications.add_to_list(author, group.position - 1, group.group_key, 3600)  # orphan older row
    items = await listed(repos, author)
    assert [i["id"] for i in items] == [group.group_key]


async def test_pages_follow_the_cursor_newest_first_without_repeats(repos):
    users, _, notifications = repos
    author, fan = await new_user(users), await new_user(users)
    start = int(time.time() * 1000) - HOUR_MS
    posts = [ids.next_id() for _ in range(7)]
    writer = make_writer(repos)
    for i, post_id in enumerate(posts):
        await writer.apply([like(author, fan, post_id, start + i * 1000)])
    [stale] = await writer.apply([like(author, ids.next_id(), posts[3], start + 10 * 60_000)])  # moves post 3 up
    await notifications.add_to_list(author, stale.position - 1, stale.group_key, 3600)  # and a crash leftover
    service, seen, cursor = make_service(repos), [], None
    while True:
        items, cursor = await service.page(author, 2, cursor)
        assert len(items) <= 2
        seen += [item["post_id"] for item in items]
        if cursor is None:
            break
    expected = [posts[3], *reversed([p for p in posts if p != posts[3]])]
    assert seen == [str(p) for p in expected]


async def test_a_forged_cursor_is_refused(repos):
    from app.errors import BadRequest

    with pytest.raises(BadRequest):
        await make_service(repos).page(1, 10, CursorCodec("another secret").encode("notifications", {"p": 1, "g": "x"}))
    with pytest.raises(BadRequest):
        await make_service(repos).page(1, 10, CursorCodec("test").encode("notifications", {"p": "1", "g": "x"}))


async def test_trimming_keeps_the_newest_entries(repos):
    users, _, _ = repos
    author, fan = await new_user(users), await new_user(users)
    start = int(time.time() * 1000) - HOUR_MS
    posts = [ids.next_id() for _ in range(6)]
    writer = make_writer(repos, max_per_user=4)
    for i, post_id in enumerate(posts):
        await writer.apply([like(author, fan, post_id, start + i * 1000)])
    await writer.trim(author)
    assert [i["post_id"] for i in await listed(repos, author)] == [str(p) for p in reversed(posts[2:])]


# --- who is told what (real lookups) -------------------------------------------------------------


async def test_a_follow_undone_before_the_agent_sees_it_notifies_nobody(repos):
    users, follows, _ = repos
    star, fan, gone = await new_user(users), await new_user(users), await new_user(users)
    await follows.claim_edge(fan, star, datetime.now(UTC), 0)
    maker = NoteMaker(users, follows, window_h=24, max_mentions=20)

    def followed(actor):
        return FollowChanged(**new_event_fields(actor), followee_id=star, bucket=0, following=True)

    notes = await maker.notes([followed(fan), followed(gone), followed(star)])
    assert [(n.recipient_id, n.actor_id, n.kind) for n in notes] == [(star, fan, "follow")]


async def test_mentions_resolve_existing_usernames_and_skip_the_author(repos):
    from app.events import PostCreated

    users, follows, _ = repos
    author = await new_user(users)
    named = await new_user(users, f"named_{author}")
    maker = NoteMaker(users, follows, window_h=24, max_mentions=20)
    post = PostCreated(**new_event_fields(author), post_id=ids.next_id(), hashtags=[],
                       mentions=[f"named_{author}", f"n{author}", "nobody_at_all_here", "Not Valid!"])
    notes = await maker.notes([post])
    assert [(n.recipient_id, n.kind, n.group_key) for n in notes] == [
        (named, "mention", model.post_mention_key(post.post_id))
    ]


# --- the hub (real Redis) -------------------------------------------------------------------------


@pytest.fixture
async def hub(settings):
    hub = NotificationHub(subscriber_client(settings), "hubtest", max_queued=3)
    hub.start()
    await eventually(lambda: asyncio.sleep(0, hub.connected), bool)
    yield hub
    await hub.stop()


async def subscribers(redis_client, channel: str) -> int:
    return dict(await redis_client.pubsub_numsub(channel))[channel.encode()]


async def test_the_hub_delivers_to_every_socket_of_the_user_and_no_one_else(hub, redis_client):
    alice, bob = ids.next_id(), ids.next_id()
    async with hub.inbox(alice) as first, hub.inbox(alice) as second, hub.inbox(bob) as other:
        await redis_client.publish(notification_channel("hubtest", alice), b'{"type": "notification"}')
        assert await asyncio.wait_for(first.next(), 5) == '{"type": "notification"}'
        assert await asyncio.wait_for(second.next(), 5) == '{"type": "notification"}'
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.next(), 0.3)


async def test_the_hub_subscribes_with_the_first_socket_and_unsubscribes_with_the_last(hub, redis_client):
    user = ids.next_id()
    channel = notification_channel("hubtest", user)
    async with hub.inbox(user):
        async with hub.inbox(user):
            await eventually(lambda: subscribers(redis_client, channel), lambda n: n == 1)
            assert await subscribers(redis_client, channel) == 1  # one connection per process, not per socket
        assert await subscribers(redis_client, channel) == 1
    await eventually(lambda: subscribers(redis_client, channel), lambda n: n == 0)


async def test_a_full_inbox_ends_its_socket_as_a_slow_client(hub, redis_client):
    user = ids.next_id()
    async with hub.inbox(user) as inbox:
        for i in range(4):  # max_queued is 3 and nobody reads
            await redis_client.publish(notification_channel("hubtest", user), orjson.dumps({"n": i}))
        await asyncio.wait_for(inbox.ended.wait(), 5)
        assert inbox.end_code == SLOW_CLIENT


async def test_the_hub_survives_redis_going_away_and_tells_sockets_to_resync(settings, redis_client):
    proxy = TcpProxy(settings.redis_port)
    proxy.start()
    through_proxy = replace(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    hub = NotificationHub(subscriber_client(through_proxy), "hubtest", max_queued=10)
    hub.start()
    user = ids.next_id()
    channel = notification_channel("hubtest", user)
    try:
        await eventually(lambda: asyncio.sleep(0, hub.connected), bool)
        async with hub.inbox(user) as inbox:
            await eventually(lambda: subscribers(redis_client, channel), lambda n: n == 1)
            proxy.cut()
            await eventually(lambda: asyncio.sleep(0, hub.connected), lambda connected: not connected)
            proxy.start()
            assert await asyncio.wait_for(inbox.next(), 20) == RESYNC
            await eventually(lambda: subscribers(redis_client, channel), lambda n: n == 1)
            await redis_client.publish(channel, b"after")
            assert await asyncio.wait_for(inbox.next(), 5) == "after"
            assert not inbox.ended.is_set()
    finally:
        await hub.stop()
        proxy.close()


async def test_a_socket_opened_while_redis_is_down_is_subscribed_and_told_to_resync_when_it_is_back(
        settings, redis_client):
    proxy = TcpProxy(settings.redis_port)  # not started: Redis is unreachable
    hub = NotificationHub(subscriber_client(replace(settings, redis_url=f"redis://127.0.0.1:{proxy.port}/0")),
                          "hubtest", max_queued=10)
    hub.start()
    user = ids.next_id()
    channel = notification_channel("hubtest", user)
    try:
        async with hub.inbox(user) as inbox:
            assert not hub.connected
            proxy.start()
            assert await asyncio.wait_for(inbox.next(), 20) == RESYNC
            await eventually(lambda: subscribers(redis_client, channel), lambda n: n == 1)
            await redis_client.publish(channel, b"live")
            assert await asyncio.wait_for(inbox.next(), 5) == "live"
    finally:
        await hub.stop()
        proxy.close()


async def test_a_ticket_works_once(settings, redis_client):
    from app.errors import Unauthorized

    tickets = TicketStore(redis_client, "tickettest", ttl_s=60)
    user = ids.next_id()
    issued = await tickets.issue(user)
    assert await tickets.redeem(issued["ticket"]) == user
    with pytest.raises(Unauthorized):
        await tickets.redeem(issued["ticket"])
