"""Passwords, bearer tokens and the sessions behind them.

Passwords are hashed with argon2id in a worker thread (argon2 releases the GIL), so a
login never stalls the event loop; at most `max_waiting` hashes wait for a thread, and a login or
registration beyond them is refused (503 + Retry-After) without hashing.

A token is 32 random bytes; the server stores only its SHA-256, with a TTL (`sessions`). Requests find
it in the session cache (each process's memory, then Redis: app/storage/session_cache.py) and read
Cassandra only on a miss; logout deletes the row, tombstones the Redis entry and waits until every API
process has dropped the token
(docs/accounts.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Unauthorized, Unavailable
from app.storage.session_cache import REVOKED, Session, SessionCache
from app.storage.sessions import SessionTable

TOKEN_BYTES = 32
_BEARER = "bearer "


HASHING_BUSY_RETRY_AFTER_S = 1


class Passwords:
    """argon2id on a few threads, with a bounded queue in front of them.

    A hash costs tens of milliseconds of a core: an unbounded queue would let a burst of logins (or an
    attacker's) queue for longer than any client waits, each still costing its hash when its turn came.
    Past `threads + max_waiting` hashes in the process, `hash` and `verify` raise Unavailable at once."""

    def __init__(self, time_cost: int, memory_kib: int, threads: int = 2, max_waiting: int = 16) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._capacity = threads + max_waiting
        self._pending = 0  # running and waiting; only the event loop's thread changes it
        # verified against when the username does not exist, so timing does not reveal it
        self._decoy_hash = self._hasher.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(self._verify_sync, password_hash or self._decoy_hash, password) and (
            password_hash is not None
        )

    async def _run(self, work, *args):
        if self._pending >= self._capacity:
            raise Unavailable("too many password checks are waiting; retry shortly",
                              retry_after_s=HASHING_BUSY_RETRY_AFTER_S)
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._pending -= 1

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header[: len(_BEARER)].lower() == _BEARER:
        return None
    token = header[len(_BEARER) :].strip()
    # our tokens are 43 url-safe characters; anything else cannot be one
    if not 20 <= len(token) <= 128 or not (token.isascii() and token.replace("-", "").replace("_", "").isalnum()):
        return None
    return token


class SessionStore:
    """Bearer tokens: a new random token per login, only its hash stored (app/storage/sessions.py), looked
    up through the session cache when there is one (app/storage/session_cache.py)."""

    def __init__(self, table: SessionTable, ttl_s: int, cache: SessionCache | None = None) -> None:
        self._table = table
        self._ttl_s = ttl_s
        self._cache = cache

    def start(self) -> None:
        """Listen for revocations (an API process; without it the in-process level stays off)."""
        if self._cache is not None:
            self._cache.start()

    async def close(self) -> None:
        if self._cache is not None:
            await self._cache.stop()

    async def create(self, user_id: int) -> str:
        token = new_token()
        hashed = token_hash(token)
        await self._table.insert(hashed, user_id, datetime.now(UTC), self._ttl_s)
        if self._cache is not None:
            await self._cache.put(hashed, Session(user_id, time.time() + self._ttl_s), fill=False)
        return token

    async def user_id(self, token: str) -> int | None:
        return await self.session_user(token_hash(token))

    async def session_user(self, hashed: bytes) -> int | None:
        """The user of the live session with this token hash; None when it is unknown, expired or revoked.
        In the common case no I/O at all (this process's memory), else one Redis read, else Cassandra."""
        cache = self._cache
        if cache is None:
            return await self._table.user_id(hashed)
        user_id = cache.cached(hashed)
        if user_id is not None:
            return user_id
        epoch = cache.local.epoch  # a revocation heard from here on keeps what we read out of memory
        session = await cache.get(hashed)
        if session is REVOKED:  # a tombstone: revoked a moment ago
            return None
        if session is not None and session.expires_at > time.time():
            cache.remember(hashed, session, epoch)
            return session.user_id
        live = await self._table.live(hashed)
        if live is None:
            return None
        user_id, left_s = live
        await cache.put(hashed, Session(user_id, time.time() + (left_s or self._ttl_s)), fill=True, epoch=epoch)
        return user_id

    async def revoke(self, token: str) -> None:
        hashed = token_hash(token)
        await self._table.delete(hashed)
        if self._cache is not None:
            await self._cache.revoke(hashed)

    async def authenticate(self, request: web.Request) -> int:
        """The id of the user whose live token the request carries; Unauthorized otherwise."""
        token = bearer_token(request)
        if token is None:
            raise Unauthorized()
        user_id = await self.user_id(token)
        if user_id is None:
            raise Unauthorized("the token is unknown, expired or revoked", code="invalid_token")
        return user_id
