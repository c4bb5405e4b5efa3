"""Text and time rules shared by every layer: how an instant is written in JSON, what a username may be,
which characters user text may not hold.

Services, models, stream agents and routes may all import this module; it knows nothing of HTTP or storage.
(Hashtags and mentions in captions are the posts' own rules: app/posts/text.py.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

USERNAME = re.compile(r"[a-z0-9._]{3,30}")  # a username as stored: lower case
USERNAME_AS_TYPED = re.compile(r"[A-Za-z0-9._]{3,30}")  # what registration accepts; stored lower-cased


def normalize_username(raw: str) -> str:
    return raw.strip().lower()


def iso(dt: datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601 in UTC, milliseconds, `Z` (None stays None)."""
    if dt is None:
        return None
    if dt.tzinfo is None:  # the driver returns naive UTC datetimes
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def has_control_characters(text: str) -> bool:
    """True when text holds a C0 or C1 control character other than newline and tab."""
    return any((ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0 for ch in text)
