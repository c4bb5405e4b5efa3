"""The comment worker and the counted sets against real Cassandra: exact comment and reply counts
under duplicates, replays, deletions the worker sees first, taken-back comments, crashes, deleted
posts and two writers at once."""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from app.events import CommentChanged, new_event_fields
from app.ids import IdGenerator, hour_bucket
from app.storage.comments import POST_LIVE_COMMENTS as POST_COMMENTS
from app.storage.comments import CommentRepository, CommentRow
from app.storage.counted_set import CountedSet, Placement
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.posts import PostRepository
from streams.comment_counts import CommentCounter

ids = IdGenerator()


@pytest.fixture(scope="module")
async def comments(cass):
    return await CommentRepository(cass).prepare()


@pytest.fixture(scope="module")
async def counter(cass):
    return CommentCounter(await CommentRepository(cass).prepare(), await PostRepository(cass).prepare())


async def new_post(posts: PostRepository) -> int:
    post_id = ids.next_id()
    await posts.insert(post_id, ids.next_id(), "", [], [], "", None, {}, "", datetime.now(UTC))
    return post_id


async def write_comment(comments: CommentRepository, post_id: int, parent_id: int | None = None) -> CommentRow:
    row = CommentRow(
        comment_id=ids.next_id(), post_id=post_id, parent_id=parent_id, author_id=ids.next_id(), text="hi @bob",
        mentions=["bob"], created_at=datetime.now(UTC),
    )
    await comments.insert(row)
    return row


def changed(row: CommentRow, created: bool) -> CommentChanged:
    return CommentChanged(
        **new_event_fields(row.author_id), post_id=row.post_id, post_author_id=1, comment_id=row.comment_id,
        parent_id=row.parent_id, parent_author_id=None if row.parent_id is None else 2, mentions=list(row.mentions),
        created=created,
    )


async def comment_count(posts: PostRepository, post_id: int) -> int:
    return (await posts.get(post_id)).comment_count or 0


async def reply_count(comments: CommentRepository, comment_id: int) -> int:
    return (await comments.get(comment_id)).reply_count or 0


async def members(cass, post_id: int) -> set[int]:
    """Every comment in the post's counted set, whatever its bucket."""
    buckets = await cass.rows("SELECT bucket FROM post_live_comment_buckets WHERE post_id = %s", (post_id,))
    found: set[int] = set()
    for row in buckets:
        rows = await cass.rows(
            "SELECT comment_id FROM post_live_comments WHERE post_id = %s AND bucket = %s", (post_id, row.bucket)
        )
        found |= {r.comment_id for r in rows}
    return found


async def test_counts_take_in_replies_and_ignore_duplicates_and_replays(posts, comments, counter, cass):
    post_id = await new_post(posts)
    top = [await write_comment(comments, post_id) for _ in range(5)]
    replies = [await write_comment(comments, post_id, top[0].comment_id) for _ in range(3)]
    events = [changed(row, True) for row in top + replies]
    await counter.apply(events + events[:4])  # duplicates inside one batch
    await counter.apply(events[2:6])  # a replay of part of it
    assert await comment_count(posts, post_id) == 8
    assert await reply_count(comments, top[0].comment_id) == 3
    assert await reply_count(comments, top[1].comment_id) == 0
    assert await members(cass, post_id) == {row.comment_id for row in top + replies}


async def test_a_deletion_announced_before_the_api_wrote_it_is_applied_by_the_worker(posts, comments, counter):
    post_id = await new_post(posts)
    parent = await write_comment(comments, post_id)
    reply = await write_comment(comments, post_id, parent.comment_id)
    await counter.apply([changed(parent, True), changed(reply, True)])
    assert await comment_count(posts, post_id) == 2
    # the API published the deletion of the reply and died before marking it
    await counter.apply([changed(reply, False)])
    assert (await comments.get(reply.comment_id)).deleted
    assert await comments.replies.page(parent.comment_id, LATEST_BUCKET, NO_UPPER_BOUND, 10) == ([], None)
    assert await comment_count(posts, post_id) == 1
    assert await reply_count(comments, parent.comment_id) == 0
    await counter.apply([changed(reply, True), changed(reply, False), changed(parent, True)])  # replayed
    assert await comment_count(posts, post_id) == 1


async def test_a_taken_back_comment_is_not_counted_even_when_its_event_got_through(posts, comments, counter, cass):
    post_id = await new_post(posts)
    kept = await write_comment(comments, post_id)
    taken_back = await write_comment(comments, post_id, kept.comment_id)
    await counter.apply([changed(kept, True), changed(taken_back, True)])  # Kafka took it, but answered late
    assert await comment_count(posts, post_id) == 2
    await comments.remove(taken_back)  # the API's undo, then its "deleted" event
    await counter.apply([changed(taken_back, False)])
    assert await comment_count(posts, post_id) == 1
    assert await reply_count(comments, kept.comment_id) == 0
    assert await comments.get(taken_back.comment_id) is None  # the deletion did not revive the row
    assert await cass.rows("SELECT comment_id FROM comments WHERE comment_id = %s", (taken_back.comment_id,)) == []


async def test_any_interleaving_of_creates_deletes_and_redeliveries_ends_exact(posts, comments, counter, cass):
    post_id = await new_post(posts)
    rng = random.Random(5)
    live: dict[int, CommentRow] = {}
    events: list[CommentChanged] = []
    for _ in range(160):
        tops = [row for row in live.values() if row.parent_id is None]
        if live and rng.random() < 0.3:  # delete, as the API does: publish, then mark
            row = live.pop(rng.choice(sorted(live)))
            events.append(changed(row, False))
            if rng.random() < 0.8:
                await comments.mark_deleted(row.comment_id, row.parent_id)
        else:
            parent = rng.choice(tops).comment_id if tops and rng.random() < 0.4 else None
            row = await write_comment(comments, post_id, parent)
            live[row.comment_id] = row
            events.append(changed(row, True))
        if rng.random() < 0.15:
            events.append(events[-1])  # a duplicate delivery
    start = 0
    while start < len(events):  # batches of any size, and a replay of old events after newer ones
        size = rng.randint(1, 40)
        await counter.apply(events[start : start + size])
        start += size
    await counter.apply(events[:60])
    assert await comment_count(posts, post_id) == len(live)
    assert await members(cass, post_id) == set(live)
    all_rows = await comments.get_many({e.comment_id for e in events})
    for row in all_rows.values():
        if row.parent_id is None:
            expected = sum(1 for r in live.values() if r.parent_id == row.comment_id)
            assert (row.reply_count or 0) == expected, row.comment_id
    assert 10 < len(live) < 160


async def test_a_batch_cut_off_midway_is_exact_after_the_replay(posts, comments, counter):
    post_id = await new_post(posts)
    rows = [await write_comment(comments, post_id) for _ in range(250)]
    events = [changed(row, True) for row in rows]
    # the worker died after settling part of the batch, before writing the count
    await counter.post_comments.apply(
        post_id, {row.comment_id: Placement(hour_bucket(row.comment_id)) for row in rows[:110]}
    )
    assert await comment_count(posts, post_id) == 0
    await counter.apply(events)  # the batch redelivered after the restart
    await counter.apply(events[100:])  # and part of it once more
    assert await comment_count(posts, post_id) == 250


async def test_a_deleted_post_is_not_counted_and_leaves_no_stray_row(posts, comments, counter, cass):
    post_id = await new_post(posts)
    row = await write_comment(comments, post_id)
    await posts.delete(await posts.get(post_id))
    await counter.apply([changed(row, True)])
    assert await cass.rows("SELECT post_id FROM posts WHERE post_id = %s", (post_id,)) == []


async def test_a_writer_that_read_before_another_committed_cannot_count_a_member_twice(cass):
    """Two workers on one bucket (one lost its Kafka partition and has not noticed): the slower one read
    the members, then the other moved them without changing the count, then the slower one wrote."""
    owner, bucket = ids.next_id(), 7
    slow, fast = await CountedSet(cass, POST_COMMENTS).prepare(), await CountedSet(cass, POST_COMMENTS).prepare()
    await slow.apply(owner, {2: Placement(bucket)})
    read_members = slow._read
    raced = False

    async def read_then_let_the_other_commit(*args, **kwargs):
        nonlocal raced
        seen = await read_members(*args, **kwargs)
        if not raced:
            raced = True  # 1 arrives and 2 leaves: the count stays 1
            await fast.apply(owner, {1: Placement(bucket), 2: Placement(None, {bucket})})
        return seen

    slow._read = read_then_let_the_other_commit
    await slow.apply(owner, {1: Placement(bucket)})
    assert raced
    rows = await cass.rows(
        "SELECT comment_id FROM post_live_comments WHERE post_id = %s AND bucket = %s", (owner, bucket)
    )
    assert [row.comment_id for row in rows] == [1]
    assert await slow.buckets(owner) == {bucket: 1}


class HeldBack:
    """A session that holds one prepared statement back until released (the rest go straight through)."""

    def __init__(self, cass) -> None:
        self._cass = cass
        self.statement = None
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._cass, name)

    async def execute(self, statement, params=None, **kwargs):
        if statement is self.statement:
            self.reached.set()
            await self.release.wait()
        return await self._cass.execute(statement, params, **kwargs)


async def test_the_bucket_count_copied_last_is_the_newest_even_when_it_arrives_late(cass):
    owner, bucket = ids.next_id(), 3
    held = HeldBack(cass)
    slow, fast = await CountedSet(held, POST_COMMENTS).prepare(), await CountedSet(cass, POST_COMMENTS).prepare()
    held.statement = slow._save_index
    slow_apply = asyncio.create_task(slow.apply(owner, {m: Placement(bucket) for m in range(1, 6)}))
    await asyncio.wait_for(held.reached.wait(), timeout=10)  # settled 5, its copy of the count not yet written
    await fast.apply(owner, {6: Placement(bucket)})  # settles 6 and copies it
    held.release.set()
    await slow_apply  # the stale copy arrives last
    assert await fast.buckets(owner) == {bucket: 6}
    assert (await fast.total(owner))[0] == 6
