"""What a notification is: its kinds, the aggregate it belongs to, and how it is shown.

An aggregate ("group") collects the actors of one kind of action on one thing for one recipient
within one window: every like of post P by anyone on day D is ONE notification for P's author,
"alice and 12 others liked your post". Mentions are not aggregated (one per post or comment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.text import iso

LIKE = "like"
COMMENT = "comment"
REPLY = "reply"
MENTION = "mention"
FOLLOW = "follow"
KINDS = (LIKE, COMMENT, REPLY, MENTION, FOLLOW)

LATEST_ACTORS = 3  # actors a notification names, newest first
MAX_GROUP_KEY_LENGTH = 64

_ACTIONS = {
    LIKE: "liked your post",
    COMMENT: "commented on your post",
    REPLY: "replied to your comment",
    FOLLOW: "started following you",
}


def window_of(at_ms: int, window_h: int) -> int:
    """The aggregation window an event falls in: whole windows since the Unix epoch."""
    return at_ms // (window_h * 3_600_000)


def like_key(post_id: int, window: int) -> str:
    return f"{LIKE}:{post_id}:{window}"


def comment_key(post_id: int, window: int) -> str:
    return f"{COMMENT}:{post_id}:{window}"


def reply_key(parent_comment_id: int, window: int) -> str:
    return f"{REPLY}:{parent_comment_id}:{window}"


def follow_key(window: int) -> str:
    return f"{FOLLOW}:{window}"


def post_mention_key(post_id: int) -> str:
    return f"{MENTION}:post:{post_id}"


def comment_mention_key(comment_id: int) -> str:
    return f"{MENTION}:comment:{comment_id}"


@dataclass(frozen=True)
class Note:
    """One actor's contribution to one recipient's aggregate, taken from one event."""

    recipient_id: int
    kind: str
    group_key: str
    actor_id: int
    at_ms: int
    post_id: int | None = None
    comment_id: int | None = None


@dataclass(frozen=True)
class Group:
    """An aggregate as stored (the static columns of `notification_groups`) and shown."""

    user_id: int
    group_key: str
    kind: str
    post_id: int | None
    comment_id: int | None
    actor_count: int
    capped: bool
    latest_actors: tuple[tuple[int, str | None], ...]  # (id, username), newest first
    position: int
    revision: int
    created_at: datetime
    updated_at: datetime


def notification_text(kind: str, actor_count: int, capped: bool, first_username: str | None,
                      in_comment: bool) -> str:
    """'alice and 12 others liked your post'; 'alice and 9,999+ others ...' past the counting cap."""
    if kind == MENTION:
        action = "mentioned you in a comment" if in_comment else "mentioned you in a post"
    else:
        action = _ACTIONS[kind]
    name = first_username or "someone"
    others = max(0, actor_count - 1)
    if others == 0 and not capped:
        return f"{name} {action}"
    plural = "s" if others != 1 or capped else ""
    return f"{name} and {others:,}{'+' if capped else ''} other{plural} {action}"


def render(group: Group) -> dict:
    """The JSON of one notification (GET /v1/notifications items and WebSocket pushes)."""
    return {
        "id": group.group_key,
        "kind": group.kind,
        "actors": [{"id": str(actor_id), "username": username} for actor_id, username in group.latest_actors],
        "actor_count": group.actor_count,
        "post_id": str(group.post_id) if group.post_id is not None else None,
        "comment_id": str(group.comment_id) if group.comment_id is not None else None,
        "text": notification_text(
            group.kind,
            group.actor_count,
            group.capped,
            group.latest_actors[0][1] if group.latest_actors else None,
            in_comment=group.comment_id is not None,
        ),
        "created_at": iso(group.created_at),
        "updated_at": iso(group.updated_at),
    }
