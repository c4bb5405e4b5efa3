"""Notifications without I/O: who is told what, the text, the inbox bound, the cursor checks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.cursors import CursorCodec
from app.errors import BadRequest
from app.events import CommentChanged, FollowChanged, LikeChanged, PostCreated, PostDeleted, new_event_fields
from app.notifications import model
from app.notifications.hub import SLOW_CLIENT, Inbox
from app.notifications.model import Group, notification_text, render
from app.notifications.service import NotificationService
from streams.notifications import NoteMaker

POST, COMMENT, PARENT = 5001, 6001, 6000
AUTHOR, ALICE, BOB, CAROL = 1, 2, 3, 4


class FakeUsers:
    """Usernames -> ids, as users_by_username would answer."""

    def __init__(self, names: dict[str, int]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def id_by_username(self, username: str) -> int | None:
        self.asked.append(username)
        return self.names.get(username)


class FakeFollows:
    def __init__(self, edges: set[tuple[int, int]]) -> None:
        self.edges = edges

    async def edge(self, follower_id: int, followee_id: int):
        return object() if (follower_id, followee_id) in self.edges else None


def maker(names: dict[str, int] | None = None, edges: set[tuple[int, int]] = frozenset(), max_mentions: int = 20):
    return NoteMaker(FakeUsers(names or {}), FakeFollows(set(edges)), window_h=24, max_mentions=max_mentions)


def told(notes) -> list[tuple[int, str]]:
    return [(note.recipient_id, note.kind) for note in notes]


def comment(actor: int, *, parent: tuple[int, int] | None = None, mentions=(), created=True) -> CommentChanged:
    return CommentChanged(
        **new_event_fields(actor), post_id=POST, post_author_id=AUTHOR, comment_id=COMMENT,
        parent_id=parent[0] if parent else None, parent_author_id=parent[1] if parent else None,
        mentions=list(mentions), created=created,
    )


# --- who is told what ---------------------------------------------------------------------------


async def test_a_like_tells_the_author_unless_the_author_liked_or_it_was_an_unlike():
    def like(actor: int, liked: bool = True) -> LikeChanged:
        return LikeChanged(**new_event_fields(actor), post_id=POST, post_author_id=AUTHOR, bucket=0, liked=liked)

    notes = await maker().notes([like(ALICE), like(AUTHOR), like(BOB, liked=False)])
    assert told(notes) == [(AUTHOR, "like")]
    assert notes[0].group_key.startswith(f"like:{POST}:") and notes[0].post_id == POST


async def test_a_comment_tells_the_post_author_and_the_mentioned_each_once():
    notes = await maker({"bob": BOB, "author": AUTHOR, "alice": ALICE}).notes(
        [comment(ALICE, mentions=["bob", "author", "alice", "ghost"])]
    )
    assert told(notes) == [(AUTHOR, "comment"), (BOB, "mention")]
    assert notes[1].group_key == model.comment_mention_key(COMMENT)
    assert notes[1].comment_id == COMMENT and notes[1].post_id == POST


async def test_a_reply_tells_the_parent_author_and_the_post_author_separately():
    notes = await maker().notes([comment(ALICE, parent=(PARENT, BOB))])
    assert told(notes) == [(BOB, "reply"), (AUTHOR, "comment")]
    assert notes[0].group_key.startswith(f"reply:{PARENT}:")


async def test_a_reply_to_the_post_authors_own_comment_is_one_reply():
    assert told(await maker().notes([comment(ALICE, parent=(PARENT, AUTHOR))])) == [(AUTHOR, "reply")]


async def test_replying_to_yourself_on_your_own_post_tells_nobody():
    assert await maker({"author": AUTHOR}).notes([comment(AUTHOR, parent=(PARENT, AUTHOR), mentions=["author"])]) == []


async def test_a_deleted_comment_tells_nobody():
    assert await maker().notes([comment(ALICE, created=False)]) == []


async def test_only_the_first_mentions_up_to_the_cap_are_looked_up():
    names = {f"user{i}": 100 + i for i in range(30)}
    fake = maker(names, max_mentions=20)
    post = PostCreated(**new_event_fields(AUTHOR), post_id=POST, hashtags=[], mentions=[*names, "user0", "Bad Name!"])
    notes = await fake.notes([post])
    assert [n.recipient_id for n in notes] == [100 + i for i in range(20)]
    assert fake.users.asked == [f"user{i}" for i in range(20)]
    assert {n.group_key for n in notes} == {model.post_mention_key(POST)}


async def test_a_follow_tells_the_followee_only_while_the_edge_exists():
    def followed(actor: int, following: bool = True) -> FollowChanged:
        return FollowChanged(**new_event_fields(actor), followee_id=AUTHOR, bucket=0, following=following)

    notes = await maker(edges={(ALICE, AUTHOR), (CAROL, AUTHOR)}).notes(
        [followed(ALICE), followed(BOB), followed(CAROL, following=False)]
    )
    assert told(notes) == [(AUTHOR, "follow")]


async def test_other_events_tell_nobody():
    deleted = PostDeleted(**new_event_fields(AUTHOR), post_id=POST, hashtags=[])
    assert await maker().notes([deleted]) == []


def test_aggregates_are_per_window():
    day_ms = 24 * 3_600_000
    assert model.window_of(10 * day_ms, 24) == model.window_of(11 * day_ms - 1, 24) == 10
    assert model.like_key(POST, 10) != model.like_key(POST, 11)


# --- the text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "count", "capped", "in_comment", "text"),
    [
        ("like", 1, False, False, "alice liked your post"),
        ("like", 2, False, False, "alice and 1 other liked your post"),
        ("like", 13, False, False, "alice and 12 others liked your post"),
        ("like", 10_000, True, False, "alice and 9,999+ others liked your post"),
        ("comment", 3, False, False, "alice and 2 others commented on your post"),
        ("reply", 1, False, True, "alice replied to your comment"),
        ("follow", 5, False, False, "alice and 4 others started following you"),
        ("mention", 1, False, False, "alice mentioned you in a post"),
        ("mention", 1, False, True, "alice mentioned you in a comment"),
    ],
)
def test_notification_text(kind, count, capped, in_comment, text):
    assert notification_text(kind, count, capped, "alice", in_comment) == text


def test_render_names_ids_as_strings_and_copes_with_an_unknown_username():
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    group = Group(user_id=AUTHOR, group_key="like:5001:20000", kind="like", post_id=POST, comment_id=None,
                  actor_count=2, capped=False, latest_actors=((ALICE, None), (BOB, "bob")), position=1, revision=1,
                  created_at=at, updated_at=at)
    assert render(group) == {
        "id": "like:5001:20000",
        "kind": "like",
        "actors": [{"id": "2", "username": None}, {"id": "3", "username": "bob"}],
        "actor_count": 2,
        "post_id": "5001",
        "comment_id": None,
        "text": "someone and 1 other liked your post",
        "created_at": "2026-11-25T10:00:00.000Z",
        "updated_at": "2026-11-25T10:00:00.000Z",
    }


# --- the inbox and the cursor -------------------------------------------------------------------


async def test_an_inbox_holds_max_queued_messages_then_ends_as_a_slow_client():
    inbox = Inbox(max_queued=2)
    inbox.offer("one")
    inbox.offer("two")
    assert not inbox.ended.is_set()
    inbox.offer("three")
    assert inbox.ended.is_set() and inbox.end_code == SLOW_CLIENT
    inbox.offer("four")  # ignored once ended
    assert [await asyncio.wait_for(inbox.next(), 1) for _ in range(2)] == ["one", "two"]


@pytest.mark.parametrize("position", [{"p": -1, "g": "like:1:2"}, {"p": "12", "g": "x"}, {"p": 1, "g": 7},
                                      {"p": 1, "g": "x" * 65}, {"g": "x"}, {"p": 1 << 63, "g": "x"},
                                      {"p": (1 << 64) - 1, "g": "x"}])
async def test_a_signed_cursor_with_a_bad_position_is_refused(position):
    codec = CursorCodec("secret")
    service = NotificationService(notifications=None, tickets=None, hub=None, cursors=codec)
    with pytest.raises(BadRequest):
        await service.page(AUTHOR, 10, codec.encode("notifications", position))
