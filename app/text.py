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

# Invisible characters that change how the text around them reads: the bidirectional controls (an override,
# U+202E, shows "moc.elgoog" as "google.com") and the zero-width ones (two names that look the same). The
# zero-width joiner and non-joiner are not among them: emoji sequences and Persian and Indic words need them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ZERO_WIDTH = frozenset("\u200b\u2060\u2061\u2062\u2063\u2064\ufeff")


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


def has_invisible_controls(text: str) -> bool:
    """True when text holds a bidirectional control or a zero-width character: in text other people see they
    make it read otherwise than it is (a reversed address, a name spoofing another)."""
    return not (BIDI_CONTROLS.isdisjoint(text) and ZERO_WIDTH.isdisjoint(text))
