"""The story view worker against real Cassandra: exact counts under duplicates, replays and
reordering, every cell expiring with the story, bucket roll-over, expired stories ignored."""

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.events import StoryViewed, new_event_fields
from app.ids import IdGenerator
from app.storage.stories import StoryRepository
from streams.story_views import ViewCounter

ids = IdGenerator()


@pytest.fixture(scope="module")
async def stories(cass):
    return await StoryRepository(cass).prepare()


async def new_story(stories, life_s: int = 3600) -> tuple[int, int, datetime]:
    author, story_id = ids.next_id(), ids.next_id()
    expires_at = datetime.now(UTC) + timedelta(seconds=life_s)
    await stories.insert(author, story_id, {"thumbnail": ("s/x.jpg", 10, 10)}, "", datetime.now(UTC), expires_at)
    return author, story_id, expires_at


def viewed(story_id: int, author: int, viewer: int, expires_at: datetime, bucket: int = 0) -> StoryViewed:
    return StoryViewed(**new_event_fields(viewer), story_id=story_id, author_id=author, bucket=bucket,
                       viewed_at_ms=int(time.time() * 1000), expires_at_ms=int(expires_at.timestamp() * 1000))


async def stored_count(cass, author: int, story_id: int) -> int:
    row = await cass.one("SELECT view_count FROM stories WHERE author_id = %s AND story_id = %s", (author, story_id))
    return row.view_count or 0


async def test_duplicated_shuffled_and_replayed_views_count_each_viewer_once(cass, stories):
    author, story_id, expires_at = await new_story(stories)
    viewers = [ids.next_id() for _ in range(40)]
    events = [viewed(story_id, author, v, expires_at) for v in viewers for _ in range(3)]
    random.Random(3).shuffle(events)
    counter = ViewCounter(stories, views_per_bucket=100_000)
    await counter.apply(events[:70])
    await counter.apply(events[50:])  # overlapping: a redelivered tail
    await counter.apply(events)  # a full replay
    assert await stored_count(cass, author, story_id) == len(viewers)
    page, _ = await stories.viewer_pages.page(story_id, (1 << 31) - 1, -(1 << 63), 100)
    assert sorted(page) == sorted(viewers)


async def test_every_cell_the_worker_writes_expires_with_the_story(cass, stories):
    author, story_id, expires_at = await new_story(stories, life_s=600)
    counter = ViewCounter(stories, views_per_bucket=100_000)
    await counter.apply([viewed(story_id, author, ids.next_id(), expires_at) for _ in range(3)])
    ttls = [
        (await cass.one("SELECT TTL(viewed_at) AS t FROM story_viewers WHERE story_id = %s AND bucket = 0 LIMIT 1",
                        (story_id,))).t,
        (await cass.one("SELECT TTL(view_count) AS t FROM story_viewers WHERE story_id = %s AND bucket = 0 LIMIT 1",
                        (story_id,))).t,
        (await cass.one("SELECT TTL(view_count) AS t FROM story_viewer_buckets WHERE story_id = %s AND bucket = 0",
                        (story_id,))).t,
        (await cass.one("SELECT TTL(view_count) AS t FROM stories WHERE author_id = %s AND story_id = %s",
                        (author, story_id))).t,
    ]
    # what is left of the story's 600 s, plus the second that outlives Cassandra's truncation (row_ttl_s)
    assert all(590 <= t <= 601 for t in ttls), ttls


async def test_a_full_bucket_opens_the_next_and_the_count_spans_both(cass, stories):
    author, story_id, expires_at = await new_story(stories)
    counter = ViewCounter(stories, views_per_bucket=3)
    first = [ids.next_id() for _ in range(3)]
    await counter.apply([viewed(story_id, author, v, expires_at, bucket=0) for v in first])
    assert (await stories.by_id(story_id)).view_bucket == 1
    later = [ids.next_id() for _ in range(2)]
    await counter.apply([viewed(story_id, author, v, expires_at, bucket=1) for v in later]
                        + [viewed(story_id, author, first[0], expires_at, bucket=0)])  # a repeat of an old view
    assert await stored_count(cass, author, story_id) == 5


async def test_views_of_an_expired_story_are_ignored(cass, stories):
    author, story_id, _ = await new_story(stories)
    gone = datetime.now(UTC) - timedelta(seconds=1)
    counter = ViewCounter(stories, views_per_bucket=100_000)
    await counter.apply([viewed(story_id, author, ids.next_id(), gone)])
    assert await cass.one("SELECT viewer_id FROM story_viewers WHERE story_id = %s AND bucket = 0 LIMIT 1",
                          (story_id,)) is None
