"""Opaque, tamper-evident paging cursors.

A cursor is the position after the last item of a page (usually the last clustering
key), serialised as JSON, signed with HMAC-SHA256 and base64url-encoded. Clients can
neither read meaning into it nor forge one; a garbage cursor is a 400.

A cursor that passes the signature is still checked as if a client wrote it: one forged with a
leaked (or the public development) secret must be a 400 too, never a 500 from a payload that is not
a position or an integer no Cassandra column can hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from app.errors import BadRequest

_SIG_BYTES = 12
INT_MAX = (1 << 31) - 1  # the largest Cassandra int (a bucket)
BIGINT_MAX = (1 << 63) - 1  # the largest Cassandra bigint (an id)


class CursorCodec:
    """Signs with `secret`; verifies with it and, while a rotation is under way, with `previous` (the
    key before it), so the cursors clients hold keep working until they are done paging."""

    def __init__(self, secret: str, previous: str = "") -> None:
        self._key = _key(secret)
        self._keys = (self._key, _key(previous)) if previous else (self._key,)

    def encode(self, kind: str, position: dict) -> str:
        return self.sign(orjson.dumps({"k": kind, "p": position}))

    def sign(self, payload: bytes) -> str:
        """`payload` signed and encoded as a cursor, whatever it holds (the tests forge cursors with it)."""
        return base64.urlsafe_b64encode(_signature(self._key, payload) + payload).rstrip(b"=").decode()

    def decode(self, kind: str, cursor: str | None) -> dict | None:
        """The position inside `cursor`, None for the first page; BadRequest when it is not ours."""
        if cursor is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise _invalid() from None
        sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        if len(cursor) > 2048 or not any(hmac.compare_digest(sig, _signature(key, payload)) for key in self._keys):
            raise _invalid()
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise _invalid() from None
        if not isinstance(body, dict) or body.get("k") != kind or not isinstance(body.get("p"), dict):
            raise _invalid()
        return body["p"]

    def decode_ints(self, kind: str, cursor: str | None, *names: str) -> tuple[int, ...] | None:
        """The named integers of a cursor's position (`position_int`); None for the first page."""
        position = self.decode(kind, cursor)
        if position is None:
            return None
        return tuple(position_int(position, name) for name in names)


def position_int(position: dict, name: str) -> int:
    """`position[name]` if it is a non-negative int the Cassandra column it goes to can hold: "b" is the
    bucket of a bucketed list (app/storage/paging.py), an `int`; every other one an id, offset or
    position, a `bigint` at most. The invalid-cursor 400 otherwise (the driver would fail the request)."""
    value = position.get(name)
    if type(value) is not int or not 0 <= value <= (INT_MAX if name == "b" else BIGINT_MAX):
        raise _invalid()
    return value


def _key(secret: str) -> bytes:
    return hashlib.sha256(("cursor:" + secret).encode()).digest()


def _signature(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_SIG_BYTES]


def _invalid() -> BadRequest:
    return BadRequest("the cursor is not valid for this list", code="invalid_cursor")
