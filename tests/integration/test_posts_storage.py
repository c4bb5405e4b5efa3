"""Posts tables, timelines and the media sweeper against real Cassandra and a real media store."""

import time
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from app.events import topic_name
from app.ids import IdGenerator, hour_bucket, month_bucket
from app.media.store import LocalMediaStore
from app.posts.sweeper import MediaSweeper
from app.storage.media_sweep import MediaSweepLog
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.posts import PostRepository
from tests.support.polling import eventually

ids = IdGenerator()


@pytest.fixture(scope="module")
async def sweep_log(cass):
    return await MediaSweepLog(cass).prepare()


@pytest.fixture
def store(tmp_path):
    return LocalMediaStore(tmp_path, "http://127.0.0.1:8080")


async def insert_post(posts: PostRepository, author: int, hashtags=(), media=None) -> int:
    post_id = ids.next_id()
    await posts.insert(
        post_id, author, "caption", list(hashtags), [], "", None, media or {"thumbnail": ("k", 1, 1)}, "",
        datetime.now(UTC),
    )
    return post_id


async def test_a_post_is_in_its_authors_and_its_hashtags_timelines_until_deleted(posts):
    author, tag = ids.next_id(), f"tag{ids.next_id()}"
    post_id = await insert_post(posts, author, hashtags=[tag])
    assert (await posts.by_user.page(author, LATEST_BUCKET, NO_UPPER_BOUND, 10)) == ([post_id], month_bucket(post_id))
    assert (await posts.by_hashtag.page(tag, LATEST_BUCKET, NO_UPPER_BOUND, 10)) == ([post_id], hour_bucket(post_id))
    await posts.delete(await posts.get(post_id))
    assert await posts.get(post_id) is None
    assert (await posts.by_user.page(author, LATEST_BUCKET, NO_UPPER_BOUND, 10))[0] == []
    assert (await posts.by_hashtag.page(tag, LATEST_BUCKET, NO_UPPER_BOUND, 10))[0] == []


async def test_timeline_pages_walk_across_buckets_newest_first(posts):
    author = ids.next_id()
    created = [await insert_post(posts, author) for _ in range(5)]
    # the same author's posts in two older months, written straight into the timeline
    old = [((month_bucket(created[0]) - k), created[0] - k * 10**12) for k in (1, 3)]
    for bucket, post_id in old:
        await posts.by_user.add(author, bucket, post_id)
    seen, bucket, before = [], LATEST_BUCKET, NO_UPPER_BOUND
    while True:
        page, last_bucket = await posts.by_user.page(author, bucket, before, 2)
        seen += page
        if len(page) < 2:
            break
        bucket, before = last_bucket, page[-1]
    assert seen == list(reversed(created)) + [post_id for _, post_id in old]


async def test_the_sweeper_removes_media_of_uploads_that_never_became_posts(posts, sweep_log, store, events):
    orphan_id = ids.next_id()
    await store.put(f"p/{orphan_id}/thumbnail-x.jpg", b"jpeg bytes", "image/jpeg")
    place = await sweep_log.record(orphan_id, [f"p/{orphan_id}/thumbnail-x.jpg"], "upload")  # the request died

    kept_key = "p/kept/thumbnail-y.jpg"
    live_id = await insert_post(posts, ids.next_id(), media={"thumbnail": (kept_key, 1, 1)})
    await store.put(kept_key, b"jpeg bytes", "image/jpeg")
    live_place = await sweep_log.record(live_id, [kept_key], "upload")  # the post committed, no cleanup ran

    report = await MediaSweeper(sweep_log, posts, store, events, grace_s=0).run()
    assert report.removed_keys >= 1
    assert not await store.exists(f"p/{orphan_id}/thumbnail-x.jpg")
    assert await store.exists(kept_key)
    # each record is settled once, whichever way
    assert orphan_id not in {entry.post_id for entry in await sweep_log.entries(place)}
    assert live_id not in {entry.post_id for entry in await sweep_log.entries(live_place)}


async def test_the_sweeper_finishes_an_upload_that_wrote_its_row_but_died_before_announcing_it(
    posts, sweep_log, store, events, migrated
):
    author, tag = ids.next_id(), f"tag{ids.next_id()}"
    post_id = await insert_post(posts, author, hashtags=[tag])
    await posts.by_user.remove(author, month_bucket(post_id), post_id)  # the request died after the row
    await posts.by_hashtag.remove(tag, hour_bucket(post_id), post_id)
    await sweep_log.record(post_id, ["k"], "upload")
    sweep = MediaSweeper(sweep_log, posts, store, events, 0).run()
    published = await posts_topic_events(migrated, sweep, until=lambda e: e.get("post_id") == post_id)

    assert (await posts.by_user.page(author, LATEST_BUCKET, NO_UPPER_BOUND, 10))[0] == [post_id]
    assert (await posts.by_hashtag.page(tag, LATEST_BUCKET, NO_UPPER_BOUND, 10))[0] == [post_id]
    created = [e for e in published if e.get("post_id") == post_id]
    assert [(e["actor_id"], e["hashtags"]) for e in created] == [(author, [tag])]


async def posts_topic_events(settings, during, until, timeout: float = 10.0) -> list[dict]:
    """The events published on the posts topic from the start of `during` (a coroutine, awaited here)
    until one satisfies `until` or `timeout` passes."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, "posts"), bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        for partition in partitions:  # resolve "latest" now, before anything is published
            await consumer.position(partition)
        await during
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(until(event) for event in found):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [orjson.loads(r.value) for r in records]
        return found
    finally:
        await consumer.stop()



async def test_the_sweeper_leaves_records_younger_than_the_grace_period(posts, sweep_log, store, events):
    orphan_id = ids.next_id()
    key = f"p/{orphan_id}/thumbnail-z.jpg"
    await store.put(key, b"jpeg bytes", "image/jpeg")
    await sweep_log.record(orphan_id, [key], "upload")  # may belong to an upload still running
    sweeper = MediaSweeper(sweep_log, posts, store, events, grace_s=2)
    await sweeper.run()  # the record's hour is read, but the record is younger than the grace
    assert await store.exists(key)
    await eventually(lambda: _swept(sweeper, store, key), lambda gone: gone, timeout=15, interval=0.5)


async def _swept(sweeper: MediaSweeper, store: LocalMediaStore, key: str) -> bool:
    await sweeper.run()
    return not await store.exists(key)
