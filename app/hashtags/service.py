"""Reading a hashtag's posts from posts_by_hashtag (hourly buckets, newest first)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import NotFound
from app.posts import text
from app.posts.service import PostService
from app.storage.hashtags import HashtagRepository
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND

# what app/posts/text.py extracts from captions: word characters, not only digits
_TAG = re.compile(rf"\w{{1,{text.MAX_TAG_LENGTH}}}")


def normalise_tag(raw: str) -> str:
    """The stored form of a tag (lower-cased, without '#'), or NotFound when no caption could yield it."""
    tag = raw.removeprefix("#").lower()
    if not _TAG.fullmatch(tag) or tag.isdigit():
        raise NotFound("not a hashtag: letters, digits and underscores (not only digits), at most "
                       f"{text.MAX_TAG_LENGTH} characters", code="invalid_hashtag")
    return tag


@dataclass
class HashtagService:
    hashtags: HashtagRepository
    posts: PostService

    async def get(self, tag: str) -> dict:
        """A tag's page header; a tag nobody used yet counts 0 posts."""
        return {"tag": tag, "post_count": await self.hashtags.post_count(tag)}

    async def list_posts(self, tag: str, viewer_id: int, limit: int, cursor: str | None):
        posts = self.posts
        kind = "hashtag-posts:" + tag  # a cursor is only valid for the tag it was issued for
        bucket, before = posts.cursors.decode_ints(kind, cursor, "b", "a") or (LATEST_BUCKET, NO_UPPER_BOUND)
        ids, last_bucket = await posts.posts.by_hashtag.page(tag, bucket, before, limit)
        next_cursor = posts.cursors.encode(kind, {"b": last_bucket, "a": ids[-1]}) if len(ids) == limit else None
        return await posts.hydrate(ids, viewer_id), next_cursor
