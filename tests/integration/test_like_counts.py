"""The counted set and the like worker against real Cassandra and Redis: exact counts under
duplicates, reordering, replays, unknown buckets, two writers, crashes and bucket roll-over."""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from app.cursors import CursorCodec
from app.errors import Unavailable
from app.events import LikeChanged, new_event_fields
from app.ids import IdGenerator
from app.likes.service import LikeService
from app.storage.counted_set import CountedSet, Placement
from app.storage.feed_cache import FeedCache
from app.storage.likes import POST_LIKERS, LikeRepository
from app.storage.posts import PostRepository
from streams.like_counts import LikeCounter

ids = IdGenerator()


async def counter(cass, counts, likes_per_bucket=100_000) -> LikeCounter:
    return LikeCounter(await LikeRepository(cass).prepare(), await PostRepository(cass).prepare(), counts,
                       likes_per_bucket)


async def new_post(posts: PostRepository) -> int:
    post_id = ids.next_id()
    await posts.insert(post_id, ids.next_id(), "", [], [], "", None, {}, "", datetime.now(UTC))
    return post_id


def changed(user_id: int, post_id: int, bucket: int | None, liked: bool) -> LikeChanged:
    return LikeChanged(**new_event_fields(user_id), post_id=post_id, post_author_id=1, bucket=bucket, liked=liked)


async def likers_of(likes: LikeRepository, post_id: int) -> list[int]:
    ids_, _ = await likes.likers_page(post_id, (1 << 31) - 1, -(1 << 63), 1000)
    return sorted(ids_)


async def test_counted_set_moves_rows_and_count_together_and_ignores_replays(cass):
    members = await CountedSet(cass, POST_LIKERS).prepare()
    owner = ids.next_id()
    now = datetime.now(UTC)
    placements = {user: Placement(0, set(), (now,)) for user in range(1, 6)}
    assert await members.apply(owner, placements) == {0: 5}
    assert await members.apply(owner, placements) == {0: 5}  # replayed: nothing moves
    # user 1 leaves, user 2 moves to bucket 1, user 6 arrives in bucket 1
    moves = {1: Placement(None, {0}), 2: Placement(1, {0}, (now,)), 6: Placement(1, set(), (now,))}
    assert await members.apply(owner, moves) == {0: 3, 1: 2}
    assert await members.apply(owner, moves) == {0: 3, 1: 2}
    assert (await members.total(owner))[0] == 5
    assert await members.buckets_holding(owner, 2) == {1}
    assert await members.buckets_holding(owner, 1) == set()


async def test_two_writers_of_one_bucket_still_count_exactly(cass):
    """A worker that lost its partition and the one that took it over, applying at once."""
    owner = ids.next_id()
    now = datetime.now(UTC)
    first, second = await CountedSet(cass, POST_LIKERS).prepare(), await CountedSet(cass, POST_LIKERS).prepare()
    wanted = {user: Placement(0, set(), (now,)) for user in range(1, 41)}
    half = dict(list(wanted.items())[:25])
    other = dict(list(wanted.items())[15:])
    await asyncio.gather(first.apply(owner, half), second.apply(owner, other))
    assert (await first.total(owner))[0] == 40
    rows = await cass.rows("SELECT user_id FROM post_likers WHERE post_id = %s AND bucket = 0", (owner,))
    assert len(rows) == 40


async def test_like_worker_counts_the_edges_whatever_the_event_order(cass, likes, posts, counts):
    post_id = await new_post(posts)
    rng = random.Random(7)
    users = [ids.next_id() for _ in range(30)]
    events = []
    for _ in range(200):  # likes, unlikes, retries and duplicates, in the order the API saw them
        user = rng.choice(users)
        if rng.random() < 0.6:
            _, bucket = await likes.like(user, post_id, datetime.now(UTC), 0)
            events.append(changed(user, post_id, bucket, True))
        else:
            removed = await likes.unlike(user, post_id)
            events.append(changed(user, post_id, removed.bucket if removed else None, False))
        if rng.random() < 0.2:
            events.append(events[-1])  # a duplicate delivery
    rng.shuffle(events)  # two API processes publish in any order
    worker = await counter(cass, counts)
    for start in range(0, len(events), 37):
        await worker.apply(events[start : start + 37])
    await worker.apply(events[:50])  # a replay of old events after newer ones
    liked = sorted([u for u in users if await likes.edge(u, post_id) is not None])
    assert await likers_of(likes, post_id) == liked
    assert (await posts.get(post_id)).like_count == len(liked)
    assert 0 < len(liked) < len(users)


async def test_a_batch_cut_off_midway_is_exact_after_the_replay(cass, likes, posts, counts):
    post_id = await new_post(posts)
    users = [ids.next_id() for _ in range(300)]
    events = []
    for user in users:
        _, bucket = await likes.like(user, post_id, datetime.now(UTC), 0)
        events.append(changed(user, post_id, bucket, True))
    worker = await counter(cass, counts)
    # the worker died after settling part of the batch's likers, before writing the count
    now = datetime.now(UTC)
    await worker.likers.apply(post_id, {user: Placement(0, set(), (now,)) for user in users[:130]})
    assert len(await likers_of(likes, post_id)) == 130
    assert not (await posts.get(post_id)).like_count
    await worker.apply(events)  # the whole batch redelivered after the restart
    await worker.apply(events[100:])  # and part of it once more
    assert (await posts.get(post_id)).like_count == 300
    assert len(await likers_of(likes, post_id)) == 300


async def test_unlike_retried_after_a_lost_event_is_found_in_any_bucket(cass, likes, posts, counts):
    post_id = await new_post(posts)
    user = ids.next_id()
    worker = await counter(cass, counts)
    _, bucket = await likes.like(user, post_id, datetime.now(UTC), 0)
    await worker.apply([changed(user, post_id, bucket, True)])
    assert (await posts.get(post_id)).like_count == 1
    await likes.unlike(user, post_id)  # ... and its event was never published (503 to the client)
    assert await likes.unlike(user, post_id) is None  # the retry removes nothing and knows no bucket
    await worker.apply([changed(user, post_id, None, False)])
    assert (await posts.get(post_id)).like_count == 0
    assert await likers_of(likes, post_id) == []


async def test_full_bucket_opens_the_next_and_the_total_spans_buckets(cass, likes, posts, counts):
    post_id = await new_post(posts)
    worker = await counter(cass, counts, likes_per_bucket=5)
    for round_ in range(3):
        bucket = (await posts.get(post_id)).like_bucket or 0
        events = []
        for _ in range(5):
            user = ids.next_id()
            _, b = await likes.like(user, post_id, datetime.now(UTC), bucket)
            events.append(changed(user, post_id, b, True))
        await worker.apply(events)
        assert (await posts.get(post_id)).like_bucket == round_ + 1
    assert (await posts.get(post_id)).like_count == 15
    assert await worker.likers.buckets(post_id) == {0: 5, 1: 5, 2: 5}
    first, cursor_bucket = await likes.likers_page(post_id, (1 << 31) - 1, -(1 << 63), 7)
    assert len(first) == 7 and cursor_bucket == 1  # newest bucket first
    rest, _ = await likes.likers_page(post_id, cursor_bucket, first[-1], 100)
    assert len(set(first) | set(rest)) == 15 and not set(first) & set(rest)


async def test_deleted_post_is_not_counted_and_leaves_no_stray_row(cass, likes, posts, counts):
    post_id = await new_post(posts)
    user = ids.next_id()
    _, bucket = await likes.like(user, post_id, datetime.now(UTC), 0)
    await posts.delete(await posts.get(post_id))
    await (await counter(cass, counts)).apply([changed(user, post_id, bucket, True)])
    assert await posts.get(post_id) is None
    assert await cass.rows("SELECT post_id FROM posts WHERE post_id = %s", (post_id,)) == []


async def test_redis_count_moves_from_the_stored_count_and_settles_to_the_exact_one(counts, redis_client):
    post_id = ids.next_id()
    assert await counts.move(post_id, 1, stored=41) == 42
    assert await counts.move(post_id, 0, stored=0) == 42
    assert await counts.move(post_id, -1, stored=0) == 41
    await counts.settle({post_id: 17, post_id + 1: 5})
    assert int(await redis_client.get(counts.key(post_id))) == 17
    assert await redis_client.get(counts.key(post_id + 1)) is None  # cold posts are not loaded into Redis


async def test_worker_batches_are_tallied_for_operators(cass, likes, posts, counts, redis_client):
    before = {k.decode(): int(v) for k, v in (await redis_client.hgetall(counts.stats_key)).items()}
    post_id = await new_post(posts)
    events = []
    for _ in range(4):
        user = ids.next_id()
        _, bucket = await likes.like(user, post_id, datetime.now(UTC), 0)
        events.append(changed(user, post_id, bucket, True))
    await (await counter(cass, counts)).apply(events)
    after = {k.decode(): int(v) for k, v in (await redis_client.hgetall(counts.stats_key)).items()}
    assert after["events"] - before.get("events", 0) >= 4
    assert after["count_writes"] - before.get("count_writes", 0) >= 1
    assert after["batches"] - before.get("batches", 0) >= 1


class RefusingEventLog:
    """An event log that is connected but refuses the event (Kafka timing out mid-request)."""

    connected = True

    def __init__(self) -> None:
        self.refuse = True
        self.published: list = []

    async def publish(self, suffix, key, event) -> None:
        if self.refuse:
            raise Unavailable("the event log (Kafka) did not accept the event; retry shortly")
        self.published.append(event)


async def test_a_like_whose_event_is_refused_changes_nothing(likes, posts, counts, settings, redis_client):
    events = RefusingEventLog()
    feed_cache = FeedCache.for_settings(settings, redis_client)
    service = LikeService(likes=likes, counts=counts, posts=posts, events=events, feed_cache=feed_cache,
                          cursors=CursorCodec("s"))
    post_id, user = await new_post(posts), ids.next_id()
    with pytest.raises(Unavailable):
        await service.like(user, post_id)
    assert await likes.edge(user, post_id) is None  # the 503 left no edge behind
    events.refuse = False
    assert await service.like(user, post_id) == {"liked": True, "like_count": 1}
    events.refuse = True
    with pytest.raises(Unavailable):
        await service.unlike(user, post_id)
    assert await likes.edge(user, post_id) is not None  # ... and no missing one
    events.refuse = False
    assert await service.unlike(user, post_id) == {"liked": False, "like_count": 0}
    assert await likes.edge(user, post_id) is None
    assert [e.liked for e in events.published] == [True, False]
