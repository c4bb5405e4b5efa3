"""Notifications for the API: the paged list and the one-time WebSocket tickets."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from app.cursors import CursorCodec, position_int
from app.errors import BadRequest, Unauthorized
from app.notifications.hub import SOCKET_RETRY_AFTER_S, NotificationHub, subscriber_client
from app.notifications.leases import SocketLeases
from app.notifications.model import MAX_GROUP_KEY_LENGTH, Group, render
from app.settings import Settings
from app.storage.notifications import NotificationRepository
from app.text import iso

CURSOR_KIND = "notifications"
TICKET_BYTES = 32


class TicketStore:
    """One-time WebSocket tickets in Redis: `<keyspace>:wsticket:<sha256 of ticket>` -> user id (and the hash
    of the bearer token the ticket was minted with, so the socket is closed when that session is revoked),
    with a TTL.

    A browser cannot set an Authorization header on a WebSocket, and a long-lived token in a URL
    ends up in logs and histories; a ticket lives a minute and is gone once used (GETDEL)."""

    def __init__(self, redis: Redis, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._namespace = namespace
        self.ttl_s = ttl_s

    def _key(self, ticket: str) -> str:
        return f"{self._namespace}:wsticket:{hashlib.sha256(ticket.encode()).hexdigest()}"

    async def issue(self, user_id: int, token_hash: bytes | None = None) -> dict:
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        value = str(user_id) if token_hash is None else f"{user_id}:{token_hash.hex()}"
        await self._redis.set(self._key(ticket), value, ex=self.ttl_s)
        expires_at = datetime.now(UTC) + timedelta(seconds=self.ttl_s)
        return {"ticket": ticket, "expires_at": iso(expires_at)}

    async def redeem(self, ticket: str) -> int:
        """The user the ticket was issued to; it cannot be used again. Unauthorized when it is not live."""
        user_id, _ = await self.redeem_session(ticket)
        return user_id

    async def redeem_session(self, ticket: str) -> tuple[int, bytes | None]:
        """The user the ticket was issued to and the hash of the token it was minted with (None if it was
        issued without one); it cannot be used again. Unauthorized when it is not live."""
        if not (20 <= len(ticket) <= 128 and ticket.isascii()):
            raise Unauthorized("the ticket is not one of ours", code="invalid_ticket")
        value = await self._redis.getdel(self._key(ticket))
        if value is None:
            raise Unauthorized("the ticket is unknown, expired or already used", code="invalid_ticket")
        user_id, _, hash_hex = value.decode().partition(":")
        return int(user_id), bytes.fromhex(hash_hex) if hash_hex else None


@dataclass
class NotificationService:
    notifications: NotificationRepository
    tickets: TicketStore
    hub: NotificationHub
    cursors: CursorCodec

    async def page(self, user_id: int, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """The user's notifications, last updated first.

        A list row counts only while its aggregate still points at it (`position`): rows left behind
        by a move that a crash interrupted are skipped, so a page may read a few rows more than it
        returns."""
        after = self._decode(cursor)
        shown: list[tuple[tuple[int, str], Group]] = []
        exhausted = False
        while len(shown) <= limit and not exhausted:
            wanted = limit + 1 - len(shown)
            rows = await self.notifications.list_page(user_id, after, wanted)
            exhausted = len(rows) < wanted
            if rows:
                after = rows[-1]
            groups = await self.notifications.groups(user_id, [group_key for _, group_key in rows])
            shown += [(row, group) for row, group in zip(rows, groups, strict=True)
                      if group is not None and group.position == row[0]]
        items = [render(group) for _, group in shown[:limit]]
        if len(shown) <= limit:
            return items, None
        position, group_key = shown[limit - 1][0]
        return items, self.cursors.encode(CURSOR_KIND, {"p": position, "g": group_key})

    def _decode(self, cursor: str | None) -> tuple[int, str] | None:
        position = self.cursors.decode(CURSOR_KIND, cursor)
        if position is None:
            return None
        at, group_key = position_int(position, "p"), position.get("g")
        if type(group_key) is not str or len(group_key) > MAX_GROUP_KEY_LENGTH:
            raise BadRequest("the cursor is not valid for this list", code="invalid_cursor")
        return at, group_key


def make_notification_service(settings: Settings, notifications: NotificationRepository, redis: Redis,
                              cursors: CursorCodec) -> NotificationService:
    """The service of one API process, its hub started (stop it with `service.hub.stop()`)."""
    leases = SocketLeases(redis, settings.cassandra_keyspace, settings.notification_ws_max_per_user,
                          settings.notification_ws_lease_s, SOCKET_RETRY_AFTER_S)
    hub = NotificationHub(subscriber_client(settings), settings.cassandra_keyspace, settings.notification_ws_max_queued,
                          settings.notification_ws_max_per_process, leases)
    hub.start()
    return NotificationService(
        notifications=notifications,
        tickets=TicketStore(redis, settings.cassandra_keyspace, settings.notification_ticket_ttl_s),
        hub=hub,
        cursors=cursors,
    )
