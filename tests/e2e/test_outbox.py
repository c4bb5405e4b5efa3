"""The outbox (app/outbox.py): a follow, an unfollow or a comment whose row was written but whose event was
never published is repaired by the reconciler, against the real servers and the session's stream worker.

Kafka refuses the follow's event for real: the API process below sends to a topic prefix whose topics do
not exist (the broker does not create topics), so its producer is connected but every publish times out.
The comment whose undo fails too is made in this process, by the real service on the real tables with a
publisher that refuses and a repository whose take-back fails (Cassandra failing right after the insert).
The reconciler runs here with no grace period, once per probe, and publishes to the session's topics.
"""

from __future__ import annotations

import secrets

import pytest

from app.comments.service import CommentService
from app.errors import Unavailable
from app.events import EventPublisher
from app.ids import IdGenerator
from app.outbox import Outbox, Reconciler
from app.storage.comments import CommentRepository, CommentRow
from app.wiring import cursor_codec
from tests.e2e.client.comments import comment_count, top_level
from tests.e2e.client.feed import active_reader, feed_ids
from tests.e2e.client.notifications import notifications
from tests.e2e.client.posts import post
from tests.e2e.client.stories import post_story, tray_authors, view, view_count, viewers
from tests.e2e.client.users import follow, follow_counts, follow_status, get_user, register
from tests.e2e.processes import start_api
from tests.support.polling import eventually

REPAIR_TIMEOUT_S = 60.0  # a record waits for its 10-second bucket to close, then the worker applies the event


@pytest.fixture(scope="module")
def unpublishing_api(migrated):
    """An API whose every event publish fails after its rows are written: its topics do not exist."""
    env = {"PHOTOS_KAFKA_TOPIC_PREFIX": f"photos-test.missing-{secrets.token_hex(4)}.",
           "PHOTOS_KAFKA_SEND_TIMEOUT_S": "1"}
    process, url = start_api("api-unpublishing", env)
    yield url
    process.stop()


@pytest.fixture(scope="module")
async def reconcile(migrated, storage):
    """Run the reconciler once (no grace period), on the session's topics."""
    publisher = EventPublisher(migrated)
    await publisher.start()
    await publisher.wait_connected(30)
    reconciler = Reconciler(storage.outbox, publisher, grace_s=0)
    yield reconciler.run
    await publisher.stop()


def reconciled(reconcile, probe):
    async def run():
        await reconcile()
        return await probe()

    return run


async def test_a_follow_whose_event_kafka_refused_is_counted_backfilled_trayed_and_notified_by_the_reconciler(
    http, api_url, streams_worker, unpublishing_api, reconcile
):
    # the reader's first feed read rebuilds its feed from whom it follows then (nobody): long before the follow
    reader = await active_reader(http, api_url)
    author, witness = await register(http, api_url), await active_reader(http, api_url)
    await follow(http, api_url, witness, author)
    await eventually(lambda: follow_counts(http, api_url, reader, author.id), lambda counts: counts == (1, 0))
    post_id = await post(http, api_url, author, "before the follow")
    await post_story(http, api_url, author)
    # pushed to the witness: the workers are done with both, so nothing pushes them to the reader but a repair
    await eventually(lambda: feed_ids(http, api_url, witness), lambda ids: post_id in ids)
    await eventually(lambda: tray_authors(http, api_url, witness), lambda authors: author.id in authors)

    assert await follow_status(http, unpublishing_api, reader, author.id) == 503
    assert (await get_user(http, api_url, reader, author.id))["followed_by_me"]  # the edge was written
    assert await follow_counts(http, api_url, reader, author.id) == (1, 0)  # and nothing derived from it
    assert await follow_counts(http, api_url, reader, reader.id) == (0, 0)
    assert post_id not in await feed_ids(http, api_url, reader)
    assert author.id not in await tray_authors(http, api_url, reader)

    await eventually(reconciled(reconcile, lambda: follow_counts(http, api_url, reader, author.id)),
                     lambda counts: counts == (2, 0), timeout=REPAIR_TIMEOUT_S, interval=1.0)
    assert await follow_counts(http, api_url, reader, reader.id) == (0, 1)
    await eventually(lambda: feed_ids(http, api_url, reader), lambda ids: post_id in ids)
    await eventually(lambda: tray_authors(http, api_url, reader), lambda authors: author.id in authors)
    await eventually(lambda: notifications(http, api_url, author),
                     lambda items: any(item["kind"] == "follow" and reader.id in {a["id"] for a in item["actors"]}
                                       for item in items))

    # an unfollow whose event is refused: the counts come back down
    assert await follow_status(http, unpublishing_api, reader, author.id, "DELETE") == 503
    assert not (await get_user(http, api_url, reader, author.id))["followed_by_me"]
    assert await follow_counts(http, api_url, reader, author.id) == (2, 0)
    await eventually(reconciled(reconcile, lambda: follow_counts(http, api_url, reader, author.id)),
                     lambda counts: counts == (1, 0), timeout=REPAIR_TIMEOUT_S, interval=1.0)
    assert await follow_counts(http, api_url, reader, reader.id) == (0, 0)


class RefusingPublisher:
    """Connected, but Kafka refuses every event."""

    connected = True

    async def publish(self, suffix, key, event) -> None:
        raise Unavailable("the event log (Kafka) did not accept the event; retry shortly")


class UnremovableComments(CommentRepository):
    """The real comment tables, but the take-back fails: Cassandra went away right after the insert."""

    async def remove(self, row: CommentRow) -> None:
        raise OSError("connection lost")


async def test_a_comment_neither_published_nor_taken_back_is_taken_back_by_the_reconciler(
    http, api_url, streams_worker, cass, storage, reconcile, settings
):
    author = await register(http, api_url)
    commenter = await register(http, api_url)
    post_id = await post(http, api_url, author)
    service = CommentService(
        comments=await UnremovableComments(cass).prepare(), posts=storage.posts, users=storage.users,
        events=RefusingPublisher(), ids=IdGenerator(), cursors=cursor_codec(settings), max_comment_length=100,
        outbox=Outbox(storage.outbox, grace_s=60),
    )
    with pytest.raises(Unavailable):
        await service.create(int(commenter.id), int(post_id), "lost in the log", None)
    listed = await top_level(http, api_url, author, post_id)
    assert [c["text"] for c in listed] == ["lost in the log"]  # written, listed, but never counted
    assert await comment_count(http, api_url, author, post_id) == 0

    await eventually(reconciled(reconcile, lambda: top_level(http, api_url, author, post_id)),
                     lambda comments: comments == [], timeout=REPAIR_TIMEOUT_S, interval=1.0)
    row = await storage.comments.get(int(listed[0]["id"]))
    assert row.deleted  # taken back as its 503 said, and counted out
    assert await comment_count(http, api_url, author, post_id) == 0
    assert await notifications(http, api_url, author) == []


async def test_a_story_view_whose_event_kafka_refused_is_counted_by_the_reconciler(
    http, api_url, streams_worker, unpublishing_api, reconcile
):
    """Found by the fault run (loadtest/chaos.py): a view answered 503 after its claim was written, never
    retried, stayed out of the viewers and the count for good."""
    author, viewer, witness = [await register(http, api_url) for _ in range(3)]
    story_id = (await post_story(http, api_url, author))["id"]
    assert await view(http, api_url, witness, story_id) == 204
    await eventually(lambda: view_count(http, api_url, author, story_id), lambda count: count == 1)

    assert await view(http, unpublishing_api, viewer, story_id) == 503
    assert await view(http, unpublishing_api, author, story_id) == 204  # an author's own view writes nothing
    # the claim was written; only the reconciler can tell the view worker about it
    await eventually(reconciled(reconcile, lambda: viewers(http, api_url, author, story_id)),
                     lambda ids: sorted(ids) == sorted([witness.id, viewer.id]), timeout=REPAIR_TIMEOUT_S)
    await eventually(lambda: view_count(http, api_url, author, story_id), lambda count: count == 2)
    # a recheck published again (two reconcilers, or a request that published and then failed to clear it)
    # counts nobody twice
    await reconcile()
    assert await view(http, api_url, viewer, story_id) == 204
    await eventually(lambda: view_count(http, api_url, author, story_id), lambda count: count == 2)
