"""`affinity_posts` and `affinity`: how much a reader engages with an author (the feed ranking's
relationship signal). Written by the affinity agent (streams/affinity.py), read by the feed."""

from __future__ import annotations

from app.storage.cassandra import CassandraSession


class AffinityRepository:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> AffinityRepository:
        p = self._cass.prepare
        self._set_liked = await p(
            "UPDATE affinity_posts SET liked = ? WHERE user_id = ? AND author_id = ? AND post_id = ?"
        )
        self._set_commented = await p(
            "UPDATE affinity_posts SET commented = true WHERE user_id = ? AND author_id = ? AND post_id = ?"
        )
        self._interactions = await p("SELECT liked, commented FROM affinity_posts WHERE user_id = ? AND author_id = ?")
        # stamped with the time the rows were read: of two concurrent recounts the later one wins
        self._save = await p(
            "UPDATE affinity USING TIMESTAMP ? SET interactions = ? WHERE user_id = ? AND author_id = ?"
        )
        self._of_reader = await p("SELECT author_id, interactions FROM affinity WHERE user_id = ?")
        return self

    async def set_liked(self, user_id: int, author_id: int, post_id: int, liked: bool) -> None:
        """Record whether the reader likes the post now (an unlike clears the cell)."""
        await self._cass.execute(self._set_liked, (True if liked else None, user_id, author_id, post_id))

    async def set_commented(self, user_id: int, author_id: int, post_id: int) -> None:
        await self._cass.execute(self._set_commented, (user_id, author_id, post_id))

    async def count_interactions(self, user_id: int, author_id: int) -> int:
        """The reader's likes and comments on the author's posts, counted from `affinity_posts`."""
        rows = await self._cass.all_rows(self._interactions, (user_id, author_id))
        return sum(bool(row.liked) + bool(row.commented) for row in rows)

    async def save_interactions(self, user_id: int, author_id: int, interactions: int, read_at_us: int) -> None:
        await self._cass.execute(self._save, (read_at_us, interactions, user_id, author_id))

    async def of_reader(self, user_id: int) -> dict[int, int]:
        """author id -> interactions, for every author the reader engaged with."""
        rows = await self._cass.all_rows(self._of_reader, (user_id,), fetch_size=5000)
        return {row.author_id: row.interactions or 0 for row in rows}
