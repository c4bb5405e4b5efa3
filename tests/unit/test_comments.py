"""Comments without I/O: text rules, what is listed and shown, the worker's plan, and the order in which
the service writes and publishes (against fakes of its repositories and of the event log)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from app.comments.service import CommentService, clean_text, comment_json, listed_at_top_level
from app.cursors import CursorCodec
from app.errors import AppError, Forbidden, Invalid, NotFound, Unavailable
from app.events import CommentChanged, new_event_fields
from app.ids import IdGenerator, hour_bucket
from app.outbox import Outbox
from app.storage.comments import CommentRow
from app.storage.outbox import Intent
from streams.comment_counts import plan_counts

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_text_is_trimmed_and_must_be_non_empty_short_and_free_of_control_characters():
    assert clean_text("  hello\n", 10) == "hello"
    assert clean_text("line one\nline two\ttab", 100) == "line one\nline two\ttab"
    assert clean_text(" " + "x" * 10 + " ", 10) == "x" * 10  # the limit applies to what is stored
    for bad, code in (("", "empty_comment"), (" \n\t", "empty_comment"), ("x" * 11, "comment_too_long"),
                      ("nul\x00", "control_characters"), ("c1\x85 inside", "control_characters"),
                      ("right\u202eleft", "control_characters"), ("zero\u200bwidth", "control_characters")):
        with pytest.raises(Invalid) as caught:
            clean_text(bad, 10)
        assert caught.value.code == code


def row(comment_id=10, parent_id=None, deleted=False, reply_count=0, author_id=7) -> CommentRow:
    return CommentRow(
        comment_id=comment_id, post_id=1, parent_id=parent_id, author_id=author_id,
        text=None if deleted else "hi @ann", mentions=None if deleted else ["ann"], created_at=NOW,
        deleted=deleted, reply_count=reply_count,
    )


@dataclass
class User:
    username: str


def test_a_deleted_comment_shows_no_author_text_or_mentions_and_is_listed_only_with_replies():
    live = comment_json(row(parent_id=3), User("bob"))
    assert live == {
        "id": "10", "post_id": "1", "parent_id": "3", "author": {"id": "7", "username": "bob"}, "text": "hi @ann",
        "mentions": ["ann"], "reply_count": 0, "deleted": False, "created_at": "2026-11-25T10:00:00.000Z",
    }
    gone = comment_json(row(deleted=True, reply_count=2), User("bob"))
    assert (gone["author"], gone["text"], gone["mentions"], gone["deleted"]) == (None, "", [], True)
    assert listed_at_top_level(row())
    assert listed_at_top_level(row(deleted=True, reply_count=1))
    assert not listed_at_top_level(row(deleted=True, reply_count=0))


def event(comment_id: int, created: bool, parent_id: int | None = None, post_id: int = 1) -> CommentChanged:
    return CommentChanged(
        **new_event_fields(5), post_id=post_id, post_author_id=6, comment_id=comment_id, parent_id=parent_id,
        parent_author_id=None, mentions=[], created=created,
    )


def test_the_worker_places_each_comment_by_its_truth_and_its_last_event():
    ids = IdGenerator(shard=1)
    top, reply, gone, undone, other = (ids.next_id() for _ in range(5))
    events = [
        event(top, True), event(reply, True, parent_id=top), event(reply, True, parent_id=top),  # a duplicate
        event(gone, True), event(gone, False), event(undone, True), event(other, True, post_id=2),
    ]
    plan = plan_counts(events, live={top, reply, gone, other})  # gone: its deletion not yet written
    assert [e.comment_id for e in plan.deletions] == [gone]
    placed = {cid: p.bucket for cid, p in plan.post_comments[1].items()}
    assert placed == {top: hour_bucket(top), reply: hour_bucket(reply), gone: None, undone: None}
    assert {cid: p.bucket for cid, p in plan.replies[top].items()} == {reply: hour_bucket(reply)}
    assert set(plan.post_comments[2]) == {other} and set(plan.replies) == {top}
    assert all(p.seen == {hour_bucket(cid)} for cid, p in plan.post_comments[1].items())


# --- the service against fakes ----------------------------------------------------------------


@dataclass
class Post:
    post_id: int
    author_id: int


class FakeComments:
    def __init__(self) -> None:
        self.rows: dict[int, CommentRow] = {}
        self.log: list[str] = []

    async def insert(self, comment: CommentRow) -> None:
        self.log.append(f"insert {comment.comment_id}")
        self.rows[comment.comment_id] = comment

    async def get(self, comment_id: int):
        return self.rows.get(comment_id)

    async def mark_deleted(self, comment_id: int, parent_id: int | None) -> None:
        self.log.append(f"mark_deleted {comment_id}")
        self.rows[comment_id] = replace(self.rows[comment_id], deleted=True, text=None, mentions=None)

    async def remove(self, comment: CommentRow) -> None:
        self.log.append(f"remove {comment.comment_id}")
        del self.rows[comment.comment_id]


class FakePosts:
    def __init__(self, *posts: Post) -> None:
        self.posts = {post.post_id: post for post in posts}

    async def get(self, post_id: int):
        return self.posts.get(post_id)


class FakeUsers:
    async def get(self, user_id: int):
        return User(f"user{user_id}")


class FakeEvents:
    def __init__(self, log: list[str], failures: int = 0) -> None:
        self.connected = True
        self.sent: list[CommentChanged] = []
        self._log = log
        self._failures = failures

    async def publish(self, suffix: str, key: int, event: CommentChanged) -> None:
        assert suffix == "comments" and key == event.post_id
        if self._failures:
            self._failures -= 1
            raise Unavailable("the event log did not accept the event")
        self._log.append(f"publish {event.comment_id} created={event.created}")
        self.sent.append(event)


class FakeOutboxTable:
    """Records and deletions, logged beside the comment writes and events."""

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self.records: dict[uuid.UUID, dict] = {}

    async def record(self, topic: str, key: int, payload: bytes) -> Intent:
        event = json.loads(payload)
        self._log.append(f"record {event['comment_id']} created={event['created']}")
        intent = Intent(1, 0, uuid.uuid4(), 0.0)  # written at monotonic 0: long ago, for clear's deadline
        self.records[intent.intent_id] = event
        return intent

    async def forget(self, bucket: int, shard: int, intent_id: uuid.UUID) -> None:
        self._log.append("forget")
        del self.records[intent_id]


AUTHOR, FAN, STRANGER, POST = 100, 200, 300, 1


def service(failures: int = 0, outbox_grace_s: float | None = None) -> CommentService:
    """`outbox_grace_s`: with an outbox whose records were written that long before now-ish (monotonic 0)."""
    comments = FakeComments()
    outbox = None if outbox_grace_s is None else Outbox(FakeOutboxTable(comments.log), outbox_grace_s)
    return CommentService(
        comments=comments, posts=FakePosts(Post(POST, AUTHOR)), users=FakeUsers(),
        events=FakeEvents(comments.log, failures), ids=IdGenerator(shard=2),
        cursors=CursorCodec("test"), max_comment_length=50, outbox=outbox,
    )


async def test_a_reply_to_a_reply_names_the_thread_and_its_author_in_the_event():
    comments = service()
    top = await comments.create(AUTHOR, POST, "top", None)
    reply = await comments.create(FAN, POST, "re", int(top["id"]))
    nested = await comments.create(STRANGER, POST, "@user200 hey @user100", int(reply["id"]))
    assert nested["parent_id"] == top["id"]
    sent = comments.events.sent[-1]
    assert sent.created and (sent.post_id, sent.post_author_id, sent.actor_id) == (POST, AUTHOR, STRANGER)
    assert (sent.comment_id, sent.parent_id, sent.parent_author_id) == (int(nested["id"]), int(top["id"]), AUTHOR)
    assert sent.mentions == ["user200", "user100"]
    assert comments.events.sent[0].parent_id is None and comments.events.sent[0].parent_author_id is None


async def test_a_comment_whose_event_is_refused_is_taken_back_and_its_deletion_published():
    comments = service(failures=1)
    with pytest.raises(Unavailable):
        await comments.create(FAN, POST, "lost", None)
    assert comments.comments.rows == {}
    inserted = comments.comments.log[0].split()[1]
    assert comments.comments.log == [f"insert {inserted}", f"remove {inserted}", f"publish {inserted} created=False"]


async def test_with_kafka_down_nothing_is_written():
    comments = service()
    comments.events.connected = False
    with pytest.raises(Unavailable):
        await comments.create(FAN, POST, "lost", None)
    assert comments.comments.log == []


async def test_a_delete_is_published_before_it_is_written_and_a_repeat_changes_nothing():
    comments = service()
    mine = await comments.create(FAN, POST, "mine", None)
    cid = int(mine["id"])
    with pytest.raises(Forbidden):
        await comments.delete(STRANGER, cid)
    await comments.delete(AUTHOR, cid)  # the post's author may
    await comments.delete(FAN, cid)  # already deleted: nothing more
    assert comments.comments.log[-2:] == [f"publish {cid} created=False", f"mark_deleted {cid}"]
    assert [e.created for e in comments.events.sent] == [True, False]
    assert comments.events.sent[-1].actor_id == AUTHOR
    with pytest.raises(NotFound):
        await comments.delete(FAN, cid + 1)


async def test_a_delete_refused_by_the_event_log_deletes_nothing():
    comments = service()
    mine = await comments.create(FAN, POST, "mine", None)
    comments.events._failures = 1
    with pytest.raises(Unavailable):
        await comments.delete(FAN, int(mine["id"]))
    assert not comments.comments.rows[int(mine["id"])].deleted


@pytest.mark.parametrize(
    ("parent", "status_and_code"), [("missing", (409, "parent_not_found")),
                                    ("elsewhere", (409, "parent_on_other_post")), ("deleted", (409, "parent_deleted"))],
)
async def test_bad_parents_are_refused_before_anything_is_written(parent, status_and_code):
    comments = service()
    comments.posts.posts[2] = Post(2, AUTHOR)
    elsewhere = await comments.create(FAN, 2, "there", None)
    deleted = await comments.create(FAN, POST, "gone", None)
    await comments.delete(FAN, int(deleted["id"]))
    written = list(comments.comments.log)
    parent_id = {"missing": 12345, "elsewhere": int(elsewhere["id"]), "deleted": int(deleted["id"])}[parent]
    with pytest.raises(AppError) as caught:
        await comments.create(FAN, POST, "reply", parent_id)
    assert (caught.value.status, caught.value.code) == status_and_code
    assert comments.comments.log == written


async def test_a_comment_records_its_deletion_before_its_row_and_clears_it_once_published():
    comments = service(outbox_grace_s=1e12)
    cid = int((await comments.create(FAN, POST, "kept", None))["id"])
    assert comments.comments.log == [f"record {cid} created=False", f"insert {cid}", f"publish {cid} created=True",
                                     "forget"]
    assert comments.outbox.table.records == {}


async def test_a_comment_neither_published_nor_taken_back_leaves_its_deletion_to_the_reconciler():
    comments = service(failures=2, outbox_grace_s=1e12)

    async def cassandra_gone(row: CommentRow) -> None:
        raise OSError("connection lost")

    comments.comments.remove = cassandra_gone
    with pytest.raises(Unavailable):
        await comments.create(FAN, POST, "stuck", None)
    (record,) = comments.outbox.table.records.values()
    assert record["created"] is False and record["post_id"] == POST


async def test_a_comment_whose_record_is_not_cleared_within_half_the_grace_period_is_taken_back_and_answered_503():
    comments = service(outbox_grace_s=0.001)  # the record is older than that by the time the event is out
    with pytest.raises(Unavailable):
        await comments.create(FAN, POST, "late", None)
    cid = next(iter(comments.comments.rows))
    assert comments.comments.log[-2:] == [f"publish {cid} created=True", f"publish {cid} created=False"]
    assert len(comments.outbox.table.records) == 1  # left for the reconciler: the deletion is published again
