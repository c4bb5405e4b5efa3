"""Accounts, sessions, profiles and follows: the rules, on top of the repositories."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from app.auth import Passwords, SessionStore
from app.cursors import CursorCodec
from app.errors import Conflict, Invalid, NotFound, Unauthorized, Unavailable
from app.events import EventPublisher, FollowChanged, ProfileChanged, new_event_fields
from app.ids import IdGenerator
from app.outbox import Outbox
from app.storage.feed_cache import FeedCache
from app.storage.follows import EdgeWriteContended, FollowRepository
from app.storage.outbox import Intent
from app.storage.user_cache import UserCache
from app.storage.users import UserRepository
from app.text import USERNAME, iso, normalize_username

log = logging.getLogger(__name__)


def _raise_contended(exc: Exception) -> None:
    """503 for an edge write whose follower's count kept moving (a flood of that user's own follows)."""
    if isinstance(exc, EdgeWriteContended):
        raise Unavailable("too many follows at once; retry shortly", retry_after_s=1) from None


def user_json(row, followed_by_me: bool) -> dict:
    return {
        "id": str(row.user_id),
        "username": row.username,
        "display_name": row.display_name or "",
        "bio": row.bio or "",
        "post_count": row.post_count or 0,
        "follower_count": row.follower_count or 0,
        "following_count": row.following_count or 0,
        "followed_by_me": followed_by_me,
        "created_at": iso(row.created_at),
    }


@dataclass
class UserService:
    users: UserRepository
    follows: FollowRepository
    sessions: SessionStore
    passwords: Passwords
    events: EventPublisher
    feed_cache: FeedCache
    profiles: UserCache  # the profiles pages of posts show (app/storage/user_cache.py)
    ids: IdGenerator
    cursors: CursorCodec
    max_following: int
    outbox: Outbox | None = None  # None: no outbox records (tools and tests)

    # --- accounts and sessions -------------------------------------------
    async def register(self, username: str, password: str, display_name: str | None) -> dict:
        username = normalize_username(username)
        if await self.users.id_by_username(username) is not None:
            raise Conflict("that username is taken", code="username_taken")
        user_id = self.ids.next_id()
        password_hash = await self.passwords.hash(password)
        now = datetime.now(UTC)
        # the row first, then the name: a crash in between leaves an unreachable row, never a name without a user
        await self.users.insert(user_id, username, display_name or username, password_hash, now)
        if not await self.users.claim_username(username, user_id):
            await self.users.delete(user_id)
            raise Conflict("that username is taken", code="username_taken")
        await self._announce_profile(user_id, created=True)
        return await self.get_user(user_id, viewer_id=None)

    async def login(self, username: str, password: str) -> dict:
        row = await self._credentials(normalize_username(username))
        if not await self.passwords.verify(row.password_hash if row else None, password):
            raise Unauthorized("wrong username or password", code="invalid_credentials")
        token = await self.sessions.create(row.user_id)
        return {"token": token, "user": await self.get_user(row.user_id, viewer_id=row.user_id)}

    async def _credentials(self, username: str):
        """The credentials of the account with that name, None when there is none. A name no account can hold
        (empty, too short, other characters) is not looked up: Cassandra refuses an empty key, and the login
        must answer like any unknown name (401, after the decoy verification), not 500."""
        if not USERNAME.fullmatch(username):
            return None
        return await self.users.credentials(username)

    async def logout(self, token: str) -> None:
        await self.sessions.revoke(token)

    # --- profiles -----------------------------------------------------------
    async def get_user(self, user_id: int, viewer_id: int | None) -> dict:
        row = await self.users.get(user_id)
        if row is None or row.username is None:
            raise NotFound("no such user", code="user_not_found")
        followed = bool(viewer_id and viewer_id != user_id and await self.follows.edge(viewer_id, user_id))
        return user_json(row, followed)

    async def get_user_by_username(self, username: str, viewer_id: int | None) -> dict:
        user_id = await self.users.id_by_username(normalize_username(username))
        if user_id is None:
            raise NotFound("no such user", code="user_not_found")
        return await self.get_user(user_id, viewer_id)

    async def update_profile(self, user_id: int, display_name: str | None, bio: str | None) -> dict:
        await self.users.update_profile(user_id, display_name, bio)
        await self.profiles.invalidate(user_id)  # the next page showing this user reads the new row
        if display_name is not None:
            await self._announce_profile(user_id, created=False)
        return await self.get_user(user_id, viewer_id=user_id)

    async def _announce_profile(self, user_id: int, *, created: bool) -> None:
        """Tell the search index (best effort): accounts and profiles need only Cassandra, so a Kafka outage
        must not refuse them; a user missed here is indexed by its next follower change or the rebuild."""
        if not self.events.connected:
            log.warning("user %d: profile change not published (Kafka unavailable); search catches up later", user_id)
            return
        try:
            await self.events.publish("users", user_id, ProfileChanged(**new_event_fields(user_id), created=created))
        except Unavailable:
            log.warning("user %d: profile change not published; search catches up later", user_id, exc_info=True)

    async def users_json(self, user_ids: list[int], viewer_id: int) -> list[dict]:
        """Users in the given order, each with followed_by_me for the viewer; missing ones left out."""
        rows = await self.users.get_many(user_ids)
        followed = await self.follows.is_following(viewer_id, [uid for uid in rows if uid != viewer_id])
        return [user_json(rows[uid], uid in followed) for uid in user_ids if uid in rows]

    # --- follows ------------------------------------------------------------
    async def follow(self, follower_id: int, followee_id: int) -> None:
        if follower_id == followee_id:
            raise Invalid("you cannot follow yourself", code="cannot_follow_self")
        if not self.events.connected:  # refuse before writing an edge no worker would hear of
            raise Unavailable("the event log (Kafka) is unavailable; retry shortly")
        followee = await self.users.get(followee_id)
        if followee is None or followee.username is None:
            raise NotFound("no such user", code="user_not_found")
        now = datetime.now(UTC)
        bucket = followee.follower_bucket or 0
        change = _FollowChange(follower_id, followee_id, bucket, following=True)
        intent = await self._record(change)
        try:
            # the cap is checked against the edges themselves, in the edge's own conditional write
            claimed = await self.follows.claim_edge(follower_id, followee_id, now, bucket, self.max_following)
            if claimed is not None:
                change.bucket = claimed
                await self.follows.write_mirror(followee_id, claimed, follower_id, now)
        except Exception as exc:
            await self._recheck(change, intent)
            _raise_contended(exc)
            raise
        if claimed is None:
            await self._clear(change, intent)  # nothing was written
            raise Conflict(f"you follow {self.max_following} accounts, the most allowed", code="following_limit")
        await self._publish(change)
        await self._clear(change, intent)

    async def unfollow(self, follower_id: int, followee_id: int) -> None:
        if follower_id == followee_id:
            raise Invalid("you cannot unfollow yourself", code="cannot_follow_self")
        edge = await self.follows.edge(follower_id, followee_id)
        if edge is None:
            if await self.users.get(followee_id) is None:
                raise NotFound("no such user", code="user_not_found")
            change, intent = _FollowChange(follower_id, followee_id, 0, following=False), None
        else:
            change = _FollowChange(follower_id, followee_id, edge.follower_bucket, following=False)
            intent = await self._record(change)
            try:
                await self.follows.delete_mirror(followee_id, change.bucket, follower_id)
                await self.follows.delete_edge(follower_id, followee_id, edge)
            except Exception as exc:
                await self._recheck(change, intent)
                _raise_contended(exc)
                raise
            await self.feed_cache.forget_author(follower_id, followee_id)  # feed reads leave the author out at once
        # published even when nothing changed: a retry after a failed publish must reach the workers
        await self._publish(change)
        await self._clear(change, intent)

    async def _record(self, change: _FollowChange) -> Intent | None:
        """Before the edge is written: the recheck the reconciler publishes (app/outbox.py) if this request
        never publishes its event (Kafka refuses it, or the process dies before). A failure here fails the
        request before anything is written."""
        if self.outbox is None:
            return None
        return await self.outbox.record("follows", change.followee_id, change.event(recheck=True))

    async def _clear(self, change: _FollowChange, intent: Intent | None) -> None:
        if self.outbox is not None:
            await self.outbox.clear_best_effort(intent, f"follow {change.follower_id} -> {change.followee_id}")

    async def _recheck(self, change: _FollowChange, intent: Intent | None) -> None:
        """The edge write failed midway (Cassandra went away), so it may have landed: ask the follow worker
        to settle the mirror and counts from the edge as it is. If Kafka refuses that too, the outbox record
        is left for the reconciler, which publishes the same recheck."""
        try:
            await self._publish(change, recheck=True)
        except Exception:
            log.warning("follow %d -> %d may have changed unannounced; left to the outbox", change.follower_id,
                        change.followee_id)
            return
        await self._clear(change, intent)

    async def _publish(self, change: _FollowChange, *, recheck: bool = False) -> None:
        await self.events.publish("follows", change.followee_id, change.event(recheck=recheck))

    async def following(self, user_id: int, viewer_id: int, limit: int, cursor: str | None) -> tuple[list, str | None]:
        await self._require_user(user_id)
        (after,) = self.cursors.decode_ints("following", cursor, "a") or (0,)
        ids = await self.follows.following_page(user_id, after, limit)
        next_cursor = self.cursors.encode("following", {"a": ids[-1]}) if len(ids) == limit else None
        return await self.users_json(ids, viewer_id), next_cursor

    async def followers(self, user_id: int, viewer_id: int, limit: int, cursor: str | None) -> tuple[list, str | None]:
        await self._require_user(user_id)
        bucket, after = self.cursors.decode_ints("followers", cursor, "b", "a") or (0, 0)
        ids, last_bucket = await self.follows.followers_page(user_id, bucket, after, limit)
        next_cursor = None
        if len(ids) == limit:
            next_cursor = self.cursors.encode("followers", {"b": last_bucket, "a": ids[-1]})
        return await self.users_json(ids, viewer_id), next_cursor

    async def _require_user(self, user_id: int) -> None:
        row = await self.users.get(user_id)
        if row is None or row.username is None:
            raise NotFound("no such user", code="user_not_found")


class _FollowChange:
    """One request's follow or unfollow: its event, with the same id and time however often it is built, so
    the event published and the outbox record's recheck land in the same notification window."""

    def __init__(self, follower_id: int, followee_id: int, bucket: int, *, following: bool) -> None:
        self.follower_id = follower_id
        self.followee_id = followee_id
        self.bucket = bucket  # the followers bucket of the edge (the one claimed, once known)
        self.following = following
        self._fields = new_event_fields(follower_id)

    def event(self, *, recheck: bool) -> FollowChanged:
        return FollowChanged(**self._fields, followee_id=self.followee_id, bucket=self.bucket,
                             following=self.following, recheck=recheck)
