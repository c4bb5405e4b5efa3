"""`Idempotency-Key` for requests that create something: the same key from the same user within
24 hours returns the first response and creates nothing new.

The key is claimed in Cassandra with `IF NOT EXISTS` (so two concurrent retries cannot both
create), marked pending with a short TTL while the first request runs, and replaced by the
response with a 24-hour TTL when it succeeds. A failed first request releases the key.

The route table applies it (`add_routes` in app/web.py) around every route marked `idempotency_key`:
`create` there runs the route's handler and gives its status and JSON body. Services know nothing of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson

from app.errors import BadRequest, Conflict
from app.storage.idempotency import IdempotencyTable

MAX_KEY_LENGTH = 255

Created = tuple[int, dict]
log = logging.getLogger(__name__)


class IdempotencyStore:
    def __init__(self, table: IdempotencyTable, ttl_s: int) -> None:
        self._table = table
        self._ttl_s = ttl_s

    async def run(
        self, user_id: int, key: str | None, create: Callable[[], Awaitable[Created]], *, scope: str
    ) -> Created:
        """The response of `create()`, run at most once per (user, scope, key). `scope` names what is
        created ("post", "comment"), so a key a client reused for another kind of request creates that
        request's object instead of answering with the other's."""
        if key is None:
            return await create()
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
            raise BadRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                code="invalid_idempotency_key",
            )
        key = f"{scope}:{key}"
        existing = await self._table.claim(user_id, key)
        if existing is not None:
            if existing.state == "done":
                return existing.status, orjson.loads(existing.response)
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly",
                code="idempotency_key_in_use",
                headers={"Retry-After": "1"},
            )
        try:
            status, body = await create()  # raises only when nothing was created
        except BaseException:
            await self._table.release(user_id, key)
            raise
        finished = await self._table.finish(user_id, key, status, orjson.dumps(body).decode(), self._ttl_s)
        if not finished:  # the pending claim expired while creating: a retry may repeat it
            log.warning("Idempotency-Key of user %d expired before its request finished", user_id)
        return status, body
