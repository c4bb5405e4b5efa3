"""Accounts: `users` and `users_by_username`; every statement prepared once at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from app.storage.cassandra import CassandraSession

USER_COLUMNS = (
    "user_id, username, display_name, bio, created_at, follower_count, following_count, post_count, follower_bucket"
)


class UserRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> UserRepository:
        p = self._cass.prepare
        self._insert = await p(
            "INSERT INTO users (user_id, username, display_name, bio, password_hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._claim_username = await p("INSERT INTO users_by_username (username, user_id) VALUES (?, ?) IF NOT EXISTS")
        self._delete = await p("DELETE FROM users WHERE user_id = ?")
        self._by_id = await p(f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ?")
        self._credentials = await p("SELECT user_id, password_hash FROM users WHERE user_id = ?")
        self._id_by_username = await p("SELECT user_id FROM users_by_username WHERE username = ?")
        self._set_display_name = await p("UPDATE users SET display_name = ? WHERE user_id = ?")
        self._set_bio = await p("UPDATE users SET bio = ? WHERE user_id = ?")
        self._follower_bucket = await p("SELECT follower_bucket FROM users WHERE user_id = ?")
        self._open_follower_bucket = await p("UPDATE users SET follower_bucket = ? WHERE user_id = ?")
        # stamped with the time the count was read: of two concurrent recounts the later one wins
        self._save_following_count = await p(
            "UPDATE users USING TIMESTAMP ? SET following_count = ? WHERE user_id = ?"
        )
        self._all_usernames = await p("SELECT username, user_id FROM users_by_username")
        self._all_profiles = await p("SELECT user_id, username, display_name, follower_count FROM users")
        return self

    async def insert(self, user_id: int, username: str, display_name: str, password_hash: str, at: datetime) -> None:
        await self._cass.execute(self._insert, (user_id, username, display_name, "", password_hash, at))

    async def claim_username(self, username: str, user_id: int) -> bool:
        """True when `username` is now ours; False when someone holds it (Paxos decides races)."""
        return (await self._cass.execute(self._claim_username, (username, user_id))).was_applied

    async def delete(self, user_id: int) -> None:
        await self._cass.execute(self._delete, (user_id,))

    async def get(self, user_id: int):
        return await self._cass.one(self._by_id, (user_id,))

    async def get_many(self, user_ids: Iterable[int]) -> dict[int, object]:
        rows = await asyncio.gather(*(self.get(uid) for uid in user_ids))
        return {row.user_id: row for row in rows if row is not None}

    async def credentials(self, username: str):
        found = await self._cass.one(self._id_by_username, (username,))
        if found is None:
            return None
        return await self._cass.one(self._credentials, (found.user_id,))

    async def id_by_username(self, username: str) -> int | None:
        row = await self._cass.one(self._id_by_username, (username,))
        return row.user_id if row else None

    async def update_profile(self, user_id: int, display_name: str | None, bio: str | None) -> None:
        writes = []
        if display_name is not None:
            writes.append(self._cass.execute(self._set_display_name, (display_name, user_id)))
        if bio is not None:
            writes.append(self._cass.execute(self._set_bio, (bio, user_id)))
        await asyncio.gather(*writes)

    # --- written by the follow_graph agent (streams/follow_graph.py) ---------
    async def follower_bucket(self, user_id: int) -> int | None:
        """The user's open followers bucket (None for no such user)."""
        row = await self._cass.one(self._follower_bucket, (user_id,))
        return None if row is None else (row.follower_bucket or 0)

    async def open_follower_bucket(self, user_id: int, bucket: int) -> None:
        await self._cass.execute(self._open_follower_bucket, (bucket, user_id))

    async def save_following_count(self, user_id: int, count: int, read_at_us: int) -> None:
        await self._cass.execute(self._save_following_count, (read_at_us, count, user_id))

    # --- full scans, for rebuilding derived data (app/search/rebuild.py) -----
    def all_usernames(self, page_rows: int) -> AsyncIterator[tuple[int, list]]:
        """Every (username, user_id) claim, a page at a time, with the time each page was read."""
        return self._cass.scan(self._all_usernames, page_rows)

    def all_profiles(self, page_rows: int) -> AsyncIterator[tuple[int, list]]:
        """Every user's (user_id, username, display_name, follower_count), a page at a time."""
        return self._cass.scan(self._all_profiles, page_rows)
