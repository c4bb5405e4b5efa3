"""The CQL of notifications (cql/migrations/0007_notifications.cql); every statement prepared once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime

from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from app.notifications.model import Group
from app.storage.cassandra import CassandraSession

GROUP_COLUMNS = (
    "user_id, group_key, kind, post_id, comment_id, actor_count, capped, latest_actors, position, revision,"
    " created_at, updated_at"
)


class NotificationRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> NotificationRepository:
        p = self._cass.prepare
        # DISTINCT with the whole partition key reads the static columns only: one row per aggregate
        self._group = await p(
            f"SELECT DISTINCT {GROUP_COLUMNS} FROM notification_groups WHERE user_id = ? AND group_key = ?"
        )
        self._actors_among = await p(
            "SELECT actor_id FROM notification_groups WHERE user_id = ? AND group_key = ? AND actor_id IN ?"
        )
        self._insert_actor = await p(
            "INSERT INTO notification_groups (user_id, group_key, actor_id, acted_at) VALUES (?, ?, ?, ?) USING TTL ?"
        )
        self._save_group = await p(
            "UPDATE notification_groups USING TTL ? SET kind = ?, post_id = ?, comment_id = ?, actor_count = ?,"
            " capped = ?, latest_actors = ?, position = ?, revision = ?, created_at = ?, updated_at = ?"
            " WHERE user_id = ? AND group_key = ? IF revision = ?"
        )
        self._add_to_list = await p(
            "INSERT INTO notifications (user_id, position, group_key) VALUES (?, ?, ?) USING TTL ?"
        )
        self._remove_from_list = await p(
            "DELETE FROM notifications WHERE user_id = ? AND position = ? AND group_key = ?"
        )
        self._newest = await p("SELECT position, group_key FROM notifications WHERE user_id = ? LIMIT ?")
        self._after = await p(
            "SELECT position, group_key FROM notifications WHERE user_id = ? AND (position, group_key) < (?, ?) LIMIT ?"
        )
        self._trim = await p("DELETE FROM notifications WHERE user_id = ? AND position < ?")
        return self

    # --- aggregates ----------------------------------------------------------------
    async def group(self, user_id: int, group_key: str, *, serial: bool = False) -> Group | None:
        consistency = ConsistencyLevel.LOCAL_SERIAL if serial else None
        rows = await self._cass.rows(self._group, (user_id, group_key), consistency=consistency)
        if not rows or rows[0].revision is None:
            return None
        return group_from_row(rows[0])

    async def groups(self, user_id: int, group_keys: Iterable[str]) -> list[Group | None]:
        """The aggregates named, in order (None where one expired); one single-partition read each."""
        return list(await asyncio.gather(*(self.group(user_id, key) for key in group_keys)))

    async def actors_among(self, user_id: int, group_key: str, actor_ids: Sequence[int], *,
                           serial: bool = False) -> set[int]:
        """Which of `actor_ids` (at most a write's worth) the aggregate already counts."""
        consistency = ConsistencyLevel.LOCAL_SERIAL if serial else None
        rows = await self._cass.rows(self._actors_among, (user_id, group_key, list(actor_ids)), consistency=consistency)
        return {row.actor_id for row in rows}

    async def save_group(self, group: Group, new_actors: Sequence[tuple[int, datetime]], expected_revision: int | None,
                         ttl_s: int) -> bool:
        """Write the aggregate and its new actor rows in one conditional single-partition batch.

        Applied only if the stored revision is still `expected_revision` (None: no aggregate yet);
        returns whether it was."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(
            self._save_group,
            (
                ttl_s, group.kind, group.post_id, group.comment_id, group.actor_count, group.capped,
                list(group.latest_actors), group.position, group.revision, group.created_at, group.updated_at,
                group.user_id, group.group_key, expected_revision,
            ),
        )
        for actor_id, acted_at in new_actors:
            batch.add(self._insert_actor, (group.user_id, group.group_key, actor_id, acted_at, ttl_s))
        return (await self._cass.execute(batch)).was_applied

    # --- each user's list -------------------------------------------------------------
    async def add_to_list(self, user_id: int, position: int, group_key: str, ttl_s: int) -> None:
        await self._cass.execute(self._add_to_list, (user_id, position, group_key, ttl_s))

    async def remove_from_list(self, user_id: int, position: int, group_key: str) -> None:
        await self._cass.execute(self._remove_from_list, (user_id, position, group_key))

    async def list_page(self, user_id: int, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (position, group_key) entries, newest first, all after `after` when given."""
        if after is None:
            rows = await self._cass.rows(self._newest, (user_id, limit))
        else:
            rows = await self._cass.rows(self._after, (user_id, after[0], after[1], limit))
        return [(row.position, row.group_key) for row in rows]

    async def drop_older_than(self, user_id: int, position: int) -> None:
        """One range tombstone for every entry older than `position`."""
        await self._cass.execute(self._trim, (user_id, position))


def group_from_row(row) -> Group:
    return Group(
        user_id=row.user_id,
        group_key=row.group_key,
        kind=row.kind,
        post_id=row.post_id,
        comment_id=row.comment_id,
        actor_count=row.actor_count or 0,
        capped=bool(row.capped),
        latest_actors=tuple((actor_id, username) for actor_id, username in row.latest_actors or ()),
        position=row.position,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
