"""What a caption says: hashtags and @mentions, lower-cased and de-duplicated in order of appearance."""

from __future__ import annotations

import re

MAX_HASHTAGS = 30  # Instagram's limit per post
MAX_TAG_LENGTH = 100

# a tag is letters, digits and underscores in any script; it ends at anything else
_HASHTAG = re.compile(rf"(?<![\w&#])#(\w{{1,{MAX_TAG_LENGTH}}})(?!\w)")
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9._]{3,30})(?![\w])")


def hashtags(text: str) -> list[str]:
    return _unique(match.lower() for match in _HASHTAG.findall(text) if not match.isdigit())


def mentions(text: str) -> list[str]:
    return _unique(match.lower().rstrip(".") for match in _MENTION.findall(text))


def _unique(items) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))
