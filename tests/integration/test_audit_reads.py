"""What the load audit (loadtest/audit.py) reads through, against real Cassandra: the timeline probes of
`AuditReads`, a whole followers bucket read page by page, and every bucket of an index read page by page."""

from __future__ import annotations

from datetime import UTC, datetime

from app.ids import IdGenerator
from app.storage import recount

ids = IdGenerator()


async def test_the_timeline_probes_find_a_listed_post_and_no_other(storage):
    author, post, unlisted, stranger = ids.next_id(), ids.next_id(), ids.next_id(), ids.next_id()
    tag = f"probe_{post}"
    await storage.posts.add_to_timelines(post, author, [tag])
    audit = storage.audit
    assert await audit.in_user_posts(author, post)
    assert not await audit.in_user_posts(author, unlisted) and not await audit.in_user_posts(stranger, post)
    assert await audit.in_hashtag_posts(tag, post)
    assert not await audit.in_hashtag_posts(tag, unlisted) and not await audit.in_hashtag_posts(f"{tag}_x", post)


async def test_a_followers_bucket_is_read_whole_page_by_page(storage):
    followee, now = ids.next_id(), datetime.now(UTC)
    followers = sorted(ids.next_id() for _ in range(5))
    for follower in followers:
        await storage.follows.write_mirror(followee, 0, follower, now)
    elsewhere = ids.next_id()
    await storage.follows.write_mirror(followee, 1, elsewhere, now)
    assert await storage.follows.all_followers_in_bucket(followee, 0, page_size=2) == followers
    assert await storage.follows.all_followers_in_bucket(followee, 0, page_size=5) == followers  # a full last page
    assert await storage.follows.all_followers_in_bucket(followee, 1) == [elsewhere]
    assert await storage.follows.all_followers_in_bucket(followee, 2) == []


async def test_every_bucket_of_an_index_is_read_past_the_drivers_first_page(cass, storage):
    """A tag used every hour for seven months has more `hashtag_buckets` rows than the driver's default page (5,000)
    holds; the audit sums every one of them."""
    followee = ids.next_id()
    mark = await cass.prepare("INSERT INTO follower_buckets (user_id, bucket) VALUES (?, ?)")
    await cass.execute_many(mark, [(followee, bucket) for bucket in range(5001)], 64)
    assert await storage.follows.follower_counts.buckets(followee) == {bucket: 0 for bucket in range(5001)}


async def test_a_small_index_page_still_reads_every_bucket(storage, monkeypatch):
    monkeypatch.setattr(recount, "BUCKETS_PAGE", 2)
    followee, now = ids.next_id(), datetime.now(UTC)
    for bucket in range(5):
        await storage.follows.write_mirror(followee, bucket, ids.next_id(), now)
    assert await storage.follows.follower_counts.buckets(followee) == {bucket: 0 for bucket in range(5)}
