"""Opaque, tamper-evident paging cursors.

A cursor is the position after the last item of a page (usually the last clustering
key), serialised as JSON, signed with HMAC-SHA256 and base64url-encoded. Clients can
neither read meaning into it nor forge one; a garbage cursor is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

from app.errors import BadRequest

_SIG_BYTES = 12


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(("cursor:" + secret).encode()).digest()

    def encode(self, kind: str, position: dict) -> str:
        payload = orjson.dumps({"k": kind, "p": position})
        sig = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(sig + payload).rstrip(b"=").decode()

    def decode(self, kind: str, cursor: str | None) -> dict | None:
        """The position inside `cursor`, None for the first page; BadRequest when it is not ours."""
        if cursor is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise _invalid() from None
        sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        if len(cursor) > 2048 or not hmac.compare_digest(sig, expected):
            raise _invalid()
        body = orjson.loads(payload)
        if body.get("k") != kind:
            raise _invalid()
        return body["p"]

    def decode_ints(self, kind: str, cursor: str | None, *names: str) -> tuple[int, ...] | None:
        """The named non-negative integers of a cursor's position; None for the first page."""
        position = self.decode(kind, cursor)
        if position is None:
            return None
        values = tuple(position.get(name) for name in names)
        if not all(type(value) is int and value >= 0 for value in values):
            raise _invalid()
        return values


def _invalid() -> BadRequest:
    return BadRequest("the cursor is not valid for this list", code="invalid_cursor")
