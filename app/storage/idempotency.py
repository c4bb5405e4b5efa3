"""`idempotency_keys`: one row per (user, scoped Idempotency-Key), pending while its request runs and
holding the response for a day after (app/idempotency.py applies it around the create routes)."""

from __future__ import annotations

from app.storage.cassandra import CassandraSession

PENDING_TTL_S = 120  # longer than any create takes; a crashed request frees its key after this


class IdempotencyTable:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> IdempotencyTable:
        p = self._cass.prepare
        self._claim = await p(
            "INSERT INTO idempotency_keys (user_id, key, state) VALUES (?, ?, 'pending') IF NOT EXISTS"
            f" USING TTL {PENDING_TTL_S}"
        )
        self._finish = await p(
            "UPDATE idempotency_keys USING TTL ? SET state = 'done', status = ?, response = ?"
            " WHERE user_id = ? AND key = ? IF state = 'pending'"
        )
        # conditional like the claim: a plain DELETE could lose to the claim's Paxos timestamp
        self._release = await p("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? IF state = 'pending'")
        return self

    async def claim(self, user_id: int, key: str):
        """Claim the key as pending: None when this call claimed it, else the row that holds it
        (`state` 'pending' or 'done' with `status` and `response`)."""
        result = await self._cass.execute(self._claim, (user_id, key))
        return None if result.was_applied else result.current_rows[0]

    async def finish(self, user_id: int, key: str, status: int, response: str, ttl_s: int) -> bool:
        """Store the response of the pending key; False when the pending claim had already expired."""
        return (await self._cass.execute(self._finish, (ttl_s, status, response, user_id, key))).was_applied

    async def release(self, user_id: int, key: str) -> None:
        """Free a pending key (its request failed, creating nothing)."""
        await self._cass.execute(self._release, (user_id, key))
