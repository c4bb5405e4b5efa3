"""Likes without Paxos against real Cassandra, Redis and Kafka: blind timestamped edges, the one Redis
script (dedupe, order, count, rate limit), and the like worker rolling forward writes that never landed
(a request that died between its publish and its edge write), with Redis lost or down."""

import asyncio
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from redis.asyncio import Redis

from app.cursors import CursorCodec
from app.errors import RateLimited, Unavailable
from app.events import LikeChanged, new_event_fields
from app.ids import IdGenerator, month_bucket
from app.likes.service import LikeService
from app.ratelimit import RateLimiter
from app.storage.feed_cache import FeedCache
from app.storage.like_counts import Claim, LikeCounts, OverLimit, RateWindow
from app.storage.likes import LikeRepository, micros
from app.storage.posts import PostRepository
from streams.like_counts import LikeCounter

ids = IdGenerator()


@pytest.fixture
async def dead_redis():
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    yield client
    await client.aclose()


async def new_post(posts: PostRepository) -> int:
    post_id = ids.next_id()
    await posts.insert(post_id, ids.next_id(), "", [], [], "", None, {}, "", datetime.now(UTC))
    return post_id


class EventLog:
    """Kafka as the service sees it; keeps what it accepted (the worker is fed those by hand)."""

    connected = True

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.published: list[LikeChanged] = []

    async def publish(self, suffix, key, event) -> None:
        if self.refuse:
            raise Unavailable("the event log (Kafka) did not accept the event; retry shortly")
        self.published.append(event)


class EdgesThatFail(LikeRepository):
    """A process that publishes, then dies (or times out) before its edge write lands."""

    async def write(self, *args, **kwargs) -> None:
        raise TimeoutError("the edge write never landed")


def service(likes, counts, posts, events, settings, redis, limiter=None, rate=0) -> LikeService:
    return LikeService(likes=likes, counts=counts, posts=posts, events=events,
                       feed_cache=FeedCache.for_settings(settings, redis), cursors=CursorCodec("s"),
                       limiter=limiter, rate_per_user=rate)


def worker(likes, posts, counts) -> LikeCounter:
    return LikeCounter(likes, posts, counts, likes_per_bucket=100_000)


async def test_the_later_write_wins_whatever_order_the_writes_land_in(likes):
    user, post = ids.next_id(), ids.next_id()
    t = micros(datetime.now(UTC))
    await likes.write(user, post, True, t + 20, 0)
    await likes.write(user, post, False, t + 10, None)  # an older unlike landing late changes nothing
    assert (await likes.edge(user, post)).bucket == 0
    assert await likes.liked_among(user, [post, ids.next_id()]) == {post}
    await likes.write(user, post, False, t + 30, None)
    await likes.write(user, post, True, t + 20, 0)  # a retry of the older like: still unliked
    assert await likes.edge(user, post) is None
    assert await likes.liked_among(user, [post]) == set()
    await likes.write(user, post, True, t + 30, 0)  # the same time as the unlike: the unlike wins, as the worker says
    state = await likes.state(user, post)
    assert not state.liked and state.changed_us == t + 30 and state.buckets == {0}


async def test_a_like_never_moves_a_liker_to_another_bucket(likes):
    """A blind like cannot see where an earlier like put the liker: it names its bucket, the row keeps all."""
    user, post = ids.next_id(), ids.next_id()
    t = micros(datetime.now(UTC))
    await likes.write(user, post, True, t, 3)
    await likes.write(user, post, True, t + 1, 5)  # a retry after Redis forgot, the post's open bucket moved on
    assert (await likes.state(user, post)).buckets == {3, 5}
    assert (await likes.edge(user, post)).bucket == 3


async def test_the_claim_dedupes_orders_and_counts_in_one_script(counts, redis_client):
    user, post = ids.next_id(), ids.next_id()
    first = await counts.claim(user, post, True, stored=41, bucket=2)
    assert (first.count, first.change, first.bucket, first.in_redis) == (42, 1, 2, True)
    retry = await counts.claim(user, post, True, stored=0, bucket=7)  # the same state again: no count, same bucket
    assert (retry.count, retry.change, retry.bucket) == (42, 0, 2) and retry.changed_us > first.changed_us
    unlike = await counts.claim(user, post, False, stored=0, bucket=7)
    assert (unlike.count, unlike.change, unlike.bucket) == (41, -1, None) and unlike.changed_us > retry.changed_us
    again = await counts.claim(user, post, True, stored=0, bucket=7)
    assert (again.count, again.change, again.bucket) == (42, 1, 7) and again.changed_us > unlike.changed_us


async def test_concurrent_claims_of_one_user_get_distinct_increasing_times(counts):
    user, post = ids.next_id(), ids.next_id()
    claims = await asyncio.gather(*(counts.claim(user, post, i % 2 == 0, stored=0, bucket=0) for i in range(40)))
    changed = [c.changed_us for c in claims if c.change]
    assert len(set(changed)) == len(changed) and len(changed) >= 2
    # every request that found the other state flipped it: the changes alternate, whatever order Redis ran them in
    flips = [c.change for c in sorted(claims, key=lambda c: c.changed_us) if c.change]
    assert all(a == -b for a, b in pairwise(flips))


async def test_over_the_rate_limit_the_claim_changes_nothing(counts, redis_client):
    user, post = ids.next_id(), ids.next_id()
    window = RateWindow(f"rl:liketest:{user}", 2, 60)
    assert isinstance(await counts.claim(user, post, True, 0, 0, window), Claim)
    assert isinstance(await counts.claim(user, post, False, 0, 0, window), Claim)
    before = await redis_client.get(counts.member_key(post, user))
    assert await counts.claim(user, post, True, 0, 0, window) == OverLimit(3)
    assert await redis_client.get(counts.member_key(post, user)) == before
    assert int(await redis_client.get(counts.key(post))) == 0


async def test_the_service_refuses_past_the_rate_limit(likes, counts, posts, settings, redis_client):
    limiter = RateLimiter(redis_client, 60)
    likes_service = service(likes, counts, posts, EventLog(), settings, redis_client, limiter, rate=3)
    post, user = await new_post(posts), ids.next_id()
    for liked in (True, False, True):
        await likes_service._change(user, post, liked=liked)
    with pytest.raises(RateLimited):
        await likes_service.unlike(user, post)
    assert (await likes.edge(user, post)) is not None  # the refused unlike wrote nothing


async def test_a_refused_event_puts_the_claim_back(likes, counts, posts, settings, redis_client):
    events = EventLog(refuse=True)
    likes_service = service(likes, counts, posts, events, settings, redis_client)
    post, user = await new_post(posts), ids.next_id()
    with pytest.raises(Unavailable):
        await likes_service.like(user, post)
    assert await redis_client.get(counts.member_key(post, user)) is None
    assert int(await redis_client.get(counts.key(post))) == 0
    assert await likes.state(user, post) is None  # nothing reached Cassandra either


async def test_a_request_that_dies_after_its_publish_still_lands_through_the_worker(
    cass, likes, counts, posts, settings, redis_client
):
    events = EventLog()
    post, fans = await new_post(posts), [ids.next_id() for _ in range(3)]
    healthy = service(likes, counts, posts, events, settings, redis_client)
    dying = service(await EdgesThatFail(cass).prepare(), counts, posts, events, settings, redis_client)
    await healthy.like(fans[0], post)
    with pytest.raises(Unavailable):  # the client hears 503: retry; the event is out all the same
        await dying.like(fans[1], post)
    with pytest.raises(Unavailable):
        await dying.like(fans[2], post)
    assert await likes.edge(fans[1], post) is None
    counter = worker(likes, posts, counts)
    await counter.apply(events.published)
    assert {u for u in fans if await likes.edge(u, post)} == set(fans)
    assert (await posts.get(post)).like_count == 3 and counter.edges_written == 2
    # an unlike that died the same way, and the client's retry of it: one removal
    with pytest.raises(Unavailable):
        await dying.unlike(fans[0], post)
    assert await healthy.unlike(fans[0], post) == {"liked": False, "like_count": 2}
    await counter.apply(events.published)  # every event again: a replay changes nothing
    assert (await posts.get(post)).like_count == 2
    assert await likes.edge(fans[0], post) is None


async def test_the_worker_reads_the_edge_not_the_event_order(likes, counts, posts, settings, redis_client):
    """A like and an unlike of one user whose events arrive in the wrong order, each after its write."""
    events = EventLog()
    likes_service = service(likes, counts, posts, events, settings, redis_client)
    post, user = await new_post(posts), ids.next_id()
    await likes_service.like(user, post)
    await likes_service.unlike(user, post)
    await likes_service.like(user, post)
    await worker(likes, posts, counts).apply(list(reversed(events.published)))
    assert (await posts.get(post)).like_count == 1
    await likes_service.unlike(user, post)
    await worker(likes, posts, counts).apply([events.published[-1], events.published[0]])
    assert (await posts.get(post)).like_count == 0


async def test_after_redis_lost_its_keys_a_retried_like_counts_once(
    likes, counts, posts, settings, redis_client
):
    events = EventLog()
    likes_service = service(likes, counts, posts, events, settings, redis_client)
    post, user = await new_post(posts), ids.next_id()
    counter = worker(likes, posts, counts)
    assert await likes_service.like(user, post) == {"liked": True, "like_count": 1}
    await counter.apply(events.published)
    await posts.open_like_bucket(post, 4)  # the open bucket moved on meanwhile
    await redis_client.delete(counts.member_key(post, user), counts.key(post))  # Redis lost everything
    reply = await likes_service.like(user, post)  # it cannot tell a retry: the reply's count is one over...
    assert reply == {"liked": True, "like_count": 2}
    await counter.apply(events.published[-1:])
    assert (await posts.get(post)).like_count == 1  # ... until the worker counts the edge: once, in its first bucket
    assert int(await redis_client.get(counts.key(post))) == 1
    assert await counter.likers.buckets(post) == {0: 1}
    assert (await likes.edge(user, post)).bucket == 0


async def test_with_redis_down_likes_and_unlikes_still_land_and_count_exactly(
    likes, posts, settings, redis_client, dead_redis
):
    events = EventLog()
    down = LikeCounts.for_settings(settings, dead_redis)
    limiter = RateLimiter(dead_redis, 60)  # counts in process memory
    likes_service = service(likes, down, posts, events, settings, dead_redis, limiter, rate=100)
    post, fans = await new_post(posts), [ids.next_id() for _ in range(4)]
    for fan in fans:
        assert (await likes_service.like(fan, post))["liked"] is True
    assert (await likes_service.unlike(fans[0], post))["liked"] is False
    assert await likes.liked_among(fans[1], [post]) == {post} and await likes.edge(fans[0], post) is None
    assert all(e.changed_us for e in events.published)
    await worker(likes, posts, LikeCounts.for_settings(settings, redis_client)).apply(events.published)
    assert (await posts.get(post)).like_count == 3


class UnconfirmedLog(EventLog):
    """Kafka that takes the event but does not confirm it in time: the service hears a timeout (503) and puts
    its claim back, yet the producer delivers the event later, and the worker applies it."""

    async def publish(self, suffix, key, event) -> None:
        self.published.append(event)
        raise Unavailable("the event log (Kafka) did not accept the event; retry shortly")


async def test_a_like_acknowledged_after_an_unconfirmed_unlike_is_the_edge(likes, counts, posts, settings,
                                                                         redis_client):
    events = EventLog()
    healthy = service(likes, counts, posts, events, settings, redis_client)
    unconfirmed = service(likes, counts, posts, UnconfirmedLog(), settings, redis_client)
    post, user = await new_post(posts), ids.next_id()
    await healthy.like(user, post)
    with pytest.raises(Unavailable):
        await unconfirmed.unlike(user, post)  # Redis is put back to "liked"; the unlike's event is out all the same
    late = unconfirmed.events.published[-1]
    await worker(likes, posts, counts).apply([late])  # delivered late: the worker writes the unlike
    assert await likes.edge(user, post) is None
    assert (await healthy.like(user, post))["liked"] is True  # Redis says "already liked": a retry
    assert await likes.edge(user, post) is not None  # acknowledged, so it is the edge
    await worker(likes, posts, counts).apply([*events.published, late])  # any order, any replay
    assert await likes.edge(user, post) is not None and (await posts.get(post)).like_count == 1


async def test_a_like_acknowledged_after_an_unlike_made_while_redis_was_down_is_the_edge(
    likes, counts, posts, settings, redis_client, dead_redis
):
    events = EventLog()
    healthy = service(likes, counts, posts, events, settings, redis_client)
    without_redis = service(likes, LikeCounts.for_settings(settings, dead_redis), posts, events, settings, dead_redis)
    post, user = await new_post(posts), ids.next_id()
    await healthy.like(user, post)
    await without_redis.unlike(user, post)  # the process's clock; Redis still remembers "liked"
    assert await likes.edge(user, post) is None
    assert (await healthy.like(user, post))["liked"] is True
    assert await likes.edge(user, post) is not None
    await worker(likes, posts, counts).apply(events.published)
    assert (await posts.get(post)).like_count == 1


async def test_rows_written_with_paxos_before_still_count(cass, likes, counts, posts):
    """An edge from before migration 0011 (its bucket in `bucket`, no `changed_us`), liked again and unliked."""
    post, user, other = await new_post(posts), ids.next_id(), ids.next_id()
    for u in (user, other):
        await cass.execute("INSERT INTO likes (user_id, month, post_id, liked_at, bucket) VALUES (%s, %s, %s, %s, 0)",
                           (u, month_bucket(post), post, datetime.now(UTC)))
    counter = worker(likes, posts, counts)
    old_style = [LikeChanged(**new_event_fields(u), post_id=post, post_author_id=1, bucket=0, liked=True)
                 for u in (user, other)]
    await counter.apply(old_style)
    assert (await posts.get(post)).like_count == 2
    t = micros(datetime.now(UTC))
    await likes.write(user, post, True, t, 6)  # liked again while the post's open bucket is 6
    await likes.write(other, post, False, t, None)
    new_style = [LikeChanged(**new_event_fields(user), post_id=post, post_author_id=1, bucket=6, liked=True,
                             changed_us=t),
                 LikeChanged(**new_event_fields(other), post_id=post, post_author_id=1, bucket=None, liked=False,
                             changed_us=t)]
    await counter.apply(new_style)
    assert (await posts.get(post)).like_count == 1
    assert await counter.likers.buckets(post) == {0: 1}
