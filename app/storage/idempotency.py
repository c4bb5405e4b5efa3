"""`idempotency_keys`: one row per (user, scoped Idempotency-Key), pending while its request runs and
holding the response for a day after (app/idempotency.py applies it around the create routes).

Every write after the claim names the claim's `owner` (a random id per request), so a request renews, finishes
or releases only its own claim, never one a retry took after it lost its own."""

from __future__ import annotations

from uuid import UUID

from app.storage.cassandra import CassandraSession


class IdempotencyTable:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> IdempotencyTable:
        p = self._cass.prepare
        self._claim = await p(
            "INSERT INTO idempotency_keys (user_id, key, state, owner, fingerprint) VALUES (?, ?, 'pending', ?, ?)"
            " IF NOT EXISTS USING TTL ?"
        )
        # every cell rewritten: a row's cells each carry their own TTL
        self._renew = await p(
            "UPDATE idempotency_keys USING TTL ? SET state = 'pending', owner = ?, fingerprint = ?"
            " WHERE user_id = ? AND key = ? IF state = 'pending' AND owner = ?"
        )
        self._finish = await p(
            "UPDATE idempotency_keys USING TTL ? SET state = 'done', status = ?, response = ?, owner = ?,"
            " fingerprint = ? WHERE user_id = ? AND key = ? IF owner = ?"
        )
        self._insert_done = await p(
            "INSERT INTO idempotency_keys (user_id, key, state, status, response, owner, fingerprint)"
            " VALUES (?, ?, 'done', ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
        )
        # conditional like the claim: a plain DELETE could lose to the claim's Paxos timestamp
        self._release = await p(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? IF state = 'pending' AND owner = ?"
        )
        return self

    async def claim(self, user_id: int, key: str, owner: UUID, fingerprint: bytes, ttl_s: int):
        """Claim the key as pending for `ttl_s`: None when this call claimed it, else the row that holds it
        (`state` 'pending' or 'done' with `status` and `response`; `fingerprint`, None in rows older than it)."""
        result = await self._cass.execute(self._claim, (user_id, key, owner, fingerprint, ttl_s))
        return None if result.was_applied else result.current_rows[0]

    async def renew(self, user_id: int, key: str, owner: UUID, fingerprint: bytes, ttl_s: int) -> bool:
        """Give the owner's pending claim `ttl_s` more; False when the claim is no longer its own."""
        result = await self._cass.execute(self._renew, (ttl_s, owner, fingerprint, user_id, key, owner))
        return result.was_applied

    async def finish(self, user_id: int, key: str, owner: UUID, fingerprint: bytes, status: int, response: str,
                     ttl_s: int) -> bool:
        """Store the response under the key for `ttl_s`: over the owner's claim, or, when that claim has lapsed
        and nobody took the key since, as a new row. False when another request holds the key. Repeating it
        (after a timeout whose write may have landed) changes nothing."""
        result = await self._cass.execute(
            self._finish, (ttl_s, status, response, owner, fingerprint, user_id, key, owner)
        )
        if result.was_applied:
            return True
        if getattr(result.current_rows[0], "owner", None) is not None:  # another request's claim or response
            return False
        result = await self._cass.execute(
            self._insert_done, (user_id, key, status, response, owner, fingerprint, ttl_s)
        )
        return result.was_applied

    async def release(self, user_id: int, key: str, owner: UUID) -> None:
        """Free the owner's pending claim (its request failed, creating nothing)."""
        await self._cass.execute(self._release, (user_id, key, owner))
