"""Pure search logic: what a query may be, how popularity orders the index, how a page is cut.

The index keeps, for every prefix of every name, a sorted set whose members all score 0 and read
`<rank>:<name>`, where `<rank>` is `MAX_POPULARITY - popularity` zero-padded to a fixed width. Redis
orders equal-score members byte by byte, so `ZRANGE ... BYLEX` walks them most popular first, then
by name: a total order with no ties, which makes "after this member" an exact paging position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import BadRequest
from app.posts import text

RANK_WIDTH = 15
MAX_POPULARITY = 10**RANK_WIDTH - 1  # far above any follower or post count; larger values are clamped

_USER_QUERY = re.compile(r"[a-z0-9._]{1,30}")
_TAG_QUERY = re.compile(rf"\w{{1,{text.MAX_TAG_LENGTH}}}")


@dataclass(frozen=True)
class Kind:
    """One searchable collection: its key segment and whether it keeps names of popularity 0."""

    name: str  # key segment and cursor kind: "users", "hashtags"
    keep_unpopular: bool  # users are found with 0 followers; a tag with 0 posts leaves the index


USERS = Kind("users", keep_unpopular=True)
HASHTAGS = Kind("hashtags", keep_unpopular=False)


def normalise_user_query(raw: str | None) -> str:
    """A username prefix: lower-cased, without a leading '@'; BadRequest when no username could start so."""
    q = (raw or "").strip().removeprefix("@").lower()
    if not _USER_QUERY.fullmatch(q):
        raise BadRequest("q must be 1 to 30 of a-z, 0-9, '.' and '_' (a leading '@' is ignored)",
                         code="invalid_query")
    return q


def hashtag_prefix(raw: str) -> str | None:
    """A hashtag prefix: lower-cased, without a leading '#'; None when no tag could start so (it finds nothing)."""
    q = raw.strip().removeprefix("#").lower()
    return q if _TAG_QUERY.fullmatch(q) else None


def member(name: str, popularity: int) -> str:
    """The sorted-set member of a name: most popular first, then by name."""
    rank = MAX_POPULARITY - min(max(popularity, 0), MAX_POPULARITY)
    return f"{rank:0{RANK_WIDTH}d}:{name}"


def parse_member(raw: str) -> tuple[str, int]:
    """(name, popularity) of a sorted-set member."""
    rank, _, name = raw.partition(":")
    return name, MAX_POPULARITY - int(rank)


def prefixes(name: str) -> list[str]:
    """Every prefix of a name, the name itself included: the keys a name is listed under."""
    return [name[:n] for n in range(1, len(name) + 1)]


@dataclass(frozen=True)
class Match:
    name: str
    popularity: int
    payload: bytes  # what the index stores beside the name (a user's id and display name)


@dataclass(frozen=True)
class Page:
    matches: list[Match]
    after: str | None  # the member to continue after; None when the list is complete


def cut_page(exact: Match | None, ranked: list[tuple[str, Match]], limit: int, after: str) -> Page:
    """A page from the exact match (first page only) and the ranked members after the cursor.

    `ranked` holds (member, match) in index order without the exact name, one more than a page can
    show when there is more; the next page continues after the last ranked member shown."""
    shown = [exact] if exact is not None else []
    room = limit - len(shown)
    page = ranked[:room]
    more = len(ranked) > room
    last = page[-1][0] if page else after
    return Page(shown + [m for _, m in page], last if more else None)
