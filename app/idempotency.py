"""`Idempotency-Key` for requests that create something: the same key from the same user within
24 hours returns the first response and creates nothing new.

The route table applies it (`run_once` in app/web.py) around every route marked `idempotency_key`. Services
know nothing of it. A key's life (table `idempotency_keys`, app/storage/idempotency.py):

- **Claimed once the request is read.** The route's body reader hands over what it read and the key is
  claimed then, before the handler acts on it, with `INSERT ... IF NOT EXISTS` (Paxos): two concurrent
  retries cannot both create. A slow upload holds no claim while its bytes arrive.
- **Held as a lease.** The pending claim lives `pending_ttl_s` (60 s) and its request renews it every quarter
  of that while it runs. No fixed lifetime would do: it would have to outlive the slowest request (an upload's
  four S3 puts each retried five times with 35 s timeouts, behind a full image queue, is over ten minutes),
  and a request that died would then lock its key that long. With the lease a running request keeps its key
  however long it takes, and a dead one frees it within one lease.
- **Bound to one request.** The claim stores a fingerprint (SHA-256 of the method, the path and the body as
  read); the same key with a different request is refused with 422 `idempotency_key_reused` instead of being
  answered with the first request's response.
- **Answered.** The handler's response replaces the claim (`done`, status and body) for `ttl_s` (24 h). A
  failure to store it does not fail the request, whose object exists: the response goes out, the failure is
  logged, and the store keeps trying in the background. Until it lands the claim is still held (pending), so
  a retry gets 409 `idempotency_key_in_use`, then the stored response; never a second object. A failed
  request (one that created nothing) releases its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass

import orjson

from app.errors import BadRequest, Conflict, Invalid
from app.storage.idempotency import IdempotencyTable

MAX_KEY_LENGTH = 255
PENDING_TTL_S = 60  # the lease of a pending claim; renewed every quarter of it while its request runs
STORE_ATTEMPTS = 10  # of a response whose first store failed, in the background, backing off up to the lease
CLOSE_WAIT_S = 5.0  # how long shutting down waits for responses still being stored

log = logging.getLogger(__name__)


def check_key(key: str) -> None:
    """400 `invalid_idempotency_key` unless the key is 1 to 255 printable ASCII characters."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            code="invalid_idempotency_key",
        )


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests the same request: the method, the path and the body in a canonical form."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two splits of the bytes collide
        digest.update(part)
    return digest.digest()


@dataclass(frozen=True)
class Stored:
    """The response the key's first request got."""

    status: int
    body: dict


class IdempotencyStore:
    def __init__(self, table: IdempotencyTable, ttl_s: int, pending_ttl_s: int = PENDING_TTL_S) -> None:
        self.table = table
        self.ttl_s = ttl_s
        self.pending_ttl_s = pending_ttl_s
        self._storing: set[asyncio.Task] = set()  # responses whose first store failed

    async def claim(self, user_id: int, key: str, request_fingerprint: bytes) -> Claim | Stored:
        """Claim the (already scoped) key for a request: a Claim the caller must `finish` or `release`, or the
        Stored response when the key already answered this request. 422 when the key belongs to another
        request, 409 while its first request still runs."""
        owner = uuid.uuid4()
        held = await self.table.claim(user_id, key, owner, request_fingerprint, self.pending_ttl_s)
        if held is None:
            return Claim(self, user_id, key, owner, request_fingerprint)
        if held.fingerprint is not None and held.fingerprint != request_fingerprint:
            raise Invalid(
                "this Idempotency-Key was used for a different request; send a new key with a new request",
                code="idempotency_key_reused",
            )
        if held.state == "done":
            return Stored(held.status, orjson.loads(held.response))
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            code="idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )

    async def close(self) -> None:
        """Wait a little for responses still being stored; those that cannot be are logged."""
        if self._storing:
            await asyncio.wait(self._storing, timeout=CLOSE_WAIT_S)
        for task in list(self._storing):
            task.cancel()

    def store_later(self, claim: Claim, status: int, response: str) -> None:
        task = asyncio.get_running_loop().create_task(self._store_until_done(claim, status, response))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store_until_done(self, claim: Claim, status: int, response: str) -> None:
        delay = 1.0
        try:
            for _ in range(STORE_ATTEMPTS):
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.pending_ttl_s / 4)
                try:
                    stored = await self.table.finish(
                        claim.user_id, claim.key, claim.owner, claim.fingerprint, status, response, self.ttl_s
                    )
                except Exception as exc:
                    log.warning("Idempotency-Key %r of user %d: response not stored yet (%r)",
                                claim.key, claim.user_id, exc)
                    continue
                if stored:
                    log.info("Idempotency-Key %r of user %d: response stored", claim.key, claim.user_id)
                else:
                    claim.taken_over()
                return
        except asyncio.CancelledError:
            pass
        log.error("Idempotency-Key %r of user %d: its response (status %d) could not be stored; once the claim "
                  "lapses a retry with the key runs again", claim.key, claim.user_id, status)


class Claim:
    """A key held by the running request: renewed until `finish` or `release`."""

    def __init__(self, store: IdempotencyStore, user_id: int, key: str, owner: uuid.UUID, fingerprint: bytes) -> None:
        self._store = store
        self.user_id = user_id
        self.key = key
        self.owner = owner
        self.fingerprint = fingerprint
        self._renewer = asyncio.get_running_loop().create_task(self._renew_while_running())

    async def finish(self, status: int, body: dict) -> None:
        """Store the response. Never raises: the request has created its object and answers with it; a store
        that fails is retried in the background while the claim keeps the key."""
        await self._stop_renewing()
        response = orjson.dumps(body).decode()
        store = self._store
        try:
            stored = await store.table.finish(self.user_id, self.key, self.owner, self.fingerprint, status, response,
                                              store.ttl_s)
        except Exception:
            log.warning("Idempotency-Key %r of user %d: could not store the response; retrying in the background",
                        self.key, self.user_id, exc_info=True)
            store.store_later(self, status, response)
            return
        if not stored:
            self.taken_over()

    async def release(self) -> None:
        """Free the key (the request failed, creating nothing). A release that fails is logged: the claim
        then lapses within its lease."""
        await self._stop_renewing()
        try:
            await self._store.table.release(self.user_id, self.key, self.owner)
        except Exception:
            log.warning("Idempotency-Key %r of user %d: could not release it; it frees itself within %d s",
                        self.key, self.user_id, self._store.pending_ttl_s, exc_info=True)

    def taken_over(self) -> None:
        log.warning("Idempotency-Key %r of user %d lapsed and was claimed again before its response was stored; "
                    "that retry may create a second object", self.key, self.user_id)

    async def _renew_while_running(self) -> None:
        lease = self._store.pending_ttl_s
        while True:
            await asyncio.sleep(lease / 4)
            try:
                if not await self._store.table.renew(self.user_id, self.key, self.owner, self.fingerprint, lease):
                    log.warning("Idempotency-Key %r of user %d lapsed while its request ran; a retry meanwhile "
                                "may create a second object", self.key, self.user_id)
                    return
            except Exception as exc:  # the next renewal tries again: the lease outlives a failed one or two
                log.warning("Idempotency-Key %r of user %d: renewal failed (%r)", self.key, self.user_id, exc)

    async def _stop_renewing(self) -> None:
        self._renewer.cancel()
        await asyncio.wait({self._renewer})  # unlike awaiting the task, passes on a cancellation of this one
