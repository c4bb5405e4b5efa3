"""The statements the seeder writes with: the table owners' own (app/storage/), as batchable writes.

Each class below is the class that owns the table (app/storage/<family>.py), subclassed only to hand out
its prepared statements with their values as a `Write` instead of executing them one by one, so the seeder
cannot drift from the CQL the API and the workers run. An owner's bucketed parts (its timelines, counted
sets and recounters) are swapped for the seeding subclasses of the same tables.

Where the API claims a row with a lightweight transaction (a username, a follow edge, a like edge) or
a worker moves a counted set with a conditional batch, the seeder, which owns every key it writes,
uses the same statement without its condition: the statement text is taken from the owner's own
prepared statement and only the `IF ...` clause is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from cassandra.query import PreparedStatement

from app.auth import new_token, token_hash
from app.ids import month_bucket
from app.storage.affinity import AffinityRepository
from app.storage.cassandra import CassandraSession
from app.storage.comments import (
    COMMENT_LIVE_REPLIES,
    POST_LIVE_COMMENTS,
    REPLIES,
    TOP_LEVEL_COMMENTS,
    CommentRepository,
)
from app.storage.counted_set import CountedSet
from app.storage.feed import FeedRepository
from app.storage.follows import FOLLOWER_COUNTS, FollowRepository
from app.storage.hashtags import HashtagRepository
from app.storage.likes import POST_LIKERS, LikeRepository, micros
from app.storage.posts import HASHTAG_POST_COUNTS, HASHTAG_POSTS, USER_POST_COUNTS, USER_POSTS, PostRepository
from app.storage.recount import BucketRecounter
from app.storage.sessions import SessionTable
from app.storage.stories import EXPIRY_RECORD_EXTRA_S, EXPIRY_SHARDS, StoryMediaLog, StoryRepository, expiry_minute
from app.storage.timelines import BucketedTimeline
from app.storage.users import UserRepository

Write = tuple[PreparedStatement, tuple[Any, ...]]
Timestamp = int | datetime  # a `timestamp` value: milliseconds since the epoch (what the seeder passes) or a datetime


async def _without_condition(cass: CassandraSession, statement: PreparedStatement) -> PreparedStatement:
    """The owner's statement with its `IF ...` condition dropped (a plain upsert of the same columns)."""
    cql = statement.query_string
    if " IF NOT EXISTS" in cql:
        cql = cql.replace(" IF NOT EXISTS", "")
    else:
        cql = cql.rsplit(" IF ", 1)[0]
    return await cass.prepare(cql)


class SeedRecounter(BucketRecounter):
    """A recount's two writes (app/storage/recount.py), with the counts the seeder knows."""

    def bucket_count(self, key: int | str, bucket: int, count: int) -> Write:
        return self._save_bucket, (count, key, bucket)

    def total(self, key: int | str, total: int, read_at_us: int) -> Write:
        return self._save_total, (read_at_us, total, key)


class SeedTimeline(BucketedTimeline):
    def mark(self, key: int | str, bucket: int) -> Write:
        """The index row (`user_post_buckets`, `hashtag_buckets`, ...): partition `key`."""
        return self._mark, (key, bucket)

    def item(self, key: int | str, bucket: int, item_id: int, *extra: Any) -> Write:
        """The entry: partition (`key`, `bucket`)."""
        return self._insert, (key, bucket, item_id, *extra)


class SeedCountedSet(CountedSet):
    """A counted set (app/storage/counted_set.py) written whole: its members, each bucket's static count and
    the index row, as the worker leaves them once every change is settled."""

    async def prepare(self) -> SeedCountedSet:
        await super().prepare()
        self._put_member = await _without_condition(self._cass, self._insert)
        self._put_count = await _without_condition(self._cass, self._set_count)
        return self

    def member(self, owner: int, bucket: int, member: int, *extra: Any) -> Write:
        return self._put_member, (owner, bucket, member, *extra)

    def count(self, owner: int, bucket: int, count: int) -> Write:
        """The bucket's static count: partition (owner, bucket), as its members."""
        return self._put_count, (count, owner, bucket)

    def index(self, owner: int, bucket: int, count: int, written_us: int) -> Write:
        """The copy of the bucket's count in the index table: partition `owner`."""
        return self._save_index, (written_us, count, owner, bucket)


class SeedUsers(UserRepository):
    async def prepare(self) -> SeedUsers:
        await super().prepare()
        self._put_username = await _without_condition(self._cass, self._claim_username)
        return self

    def user(self, user_id: int, username: str, display_name: str, password_hash: str, at: Timestamp) -> Write:
        return self._insert, (user_id, username, display_name, "", password_hash, at)

    def username(self, username: str, user_id: int) -> Write:
        return self._put_username, (username, user_id)

    def following_count(self, user_id: int, count: int, read_at_us: int) -> Write:
        """What the follow worker's recount of `following` writes."""
        return self._save_following_count, (read_at_us, count, user_id)

    def follower_bucket(self, user_id: int, bucket: int) -> Write:
        """The open followers bucket, once the follow worker has filled the ones before it."""
        return self._open_follower_bucket, (bucket, user_id)


class SeedFollows(FollowRepository):
    def __init__(self, cass: CassandraSession) -> None:
        super().__init__(cass)
        self.follower_counts = SeedRecounter(cass, FOLLOWER_COUNTS)

    async def prepare(self) -> SeedFollows:
        await super().prepare()
        self._put_edge = await _without_condition(self._cass, self._claim_edge)
        return self

    def edge(self, follower_id: int, followee_id: int, at: Timestamp, bucket: int) -> Write:
        return self._put_edge, (follower_id, followee_id, at, bucket)

    def mirror(self, followee_id: int, bucket: int, follower_id: int, at: Timestamp) -> Write:
        return self._insert_mirror, (followee_id, bucket, follower_id, at)

    def bucket(self, followee_id: int, bucket: int) -> Write:
        return self._mark_bucket, (followee_id, bucket)


class SeedPosts(PostRepository):
    def __init__(self, cass: CassandraSession) -> None:
        super().__init__(cass)
        self.by_user = SeedTimeline(cass, USER_POSTS)
        self.by_hashtag = SeedTimeline(cass, HASHTAG_POSTS)
        self.user_post_counts = SeedRecounter(cass, USER_POST_COUNTS)
        self.hashtag_post_counts = SeedRecounter(cass, HASHTAG_POST_COUNTS)

    def post(self, post_id: int, author_id: int, caption: str, hashtags: list[str], mentions: list[str],
             location: str, filter_name: str | None, media: dict[str, tuple[str, int, int]], preview: str,
             created_at: Timestamp) -> Write:
        return self._insert, (post_id, author_id, caption, hashtags, mentions, location, filter_name, media, preview,
                              created_at)

    def like_count(self, post_id: int, total: int, read_at_us: int) -> Write:
        return self._save_like_count, (read_at_us, total, post_id)

    def like_bucket(self, post_id: int, bucket: int) -> Write:
        """The open likers bucket, once the like worker has filled the ones before it."""
        return self._open_like_bucket, (bucket, post_id)

    def comment_count(self, post_id: int, total: int, read_at_us: int) -> Write:
        return self._save_comment_count, (read_at_us, total, post_id)


class SeedLikes(LikeRepository):
    def __init__(self, cass: CassandraSession) -> None:
        super().__init__(cass)
        self.likers = SeedCountedSet(cass, POST_LIKERS)

    def edge(self, user_id: int, post_id: int, at: Timestamp, bucket: int) -> Write:
        """Partition (user, month of the post): the owner's blind like write, stamped with the like's time."""
        us = micros(at) if isinstance(at, datetime) else at * 1000
        return self._like, (us, at, us, {bucket}, user_id, month_bucket(post_id), post_id)


class SeedComments(CommentRepository):
    def __init__(self, cass: CassandraSession) -> None:
        super().__init__(cass)
        self.top_level = SeedTimeline(cass, TOP_LEVEL_COMMENTS)
        self.replies = SeedTimeline(cass, REPLIES)
        self.live_comments = SeedCountedSet(cass, POST_LIVE_COMMENTS)
        self.live_replies = SeedCountedSet(cass, COMMENT_LIVE_REPLIES)

    def comment(self, comment_id: int, post_id: int, parent_id: int | None, author_id: int, text: str,
                mentions: list[str], created_at: Timestamp) -> Write:
        return self._insert, (comment_id, post_id, parent_id, author_id, text, mentions, created_at)

    def reply_count(self, comment_id: int, total: int, read_at_us: int) -> Write:
        return self._save_reply_count, (read_at_us, total, comment_id)


class SeedAffinity(AffinityRepository):
    def liked(self, user_id: int, author_id: int, post_id: int) -> Write:
        return self._set_liked, (True, user_id, author_id, post_id)

    def commented(self, user_id: int, author_id: int, post_id: int) -> Write:
        return self._set_commented, (user_id, author_id, post_id)

    def interactions(self, user_id: int, author_id: int, count: int, read_at_us: int) -> Write:
        return self._save, (read_at_us, count, user_id, author_id)


class SeedFeed(FeedRepository):
    def item(self, reader_id: int, post_id: int, author_id: int, ttl_s: int) -> Write:
        return self._insert, (reader_id, post_id, author_id, ttl_s)

    def celebrity(self, user_id: int, since: Timestamp) -> Write:
        return self._mark_celebrity, (user_id, since)

    def followed_celebrity(self, reader_id: int, celebrity_id: int) -> Write:
        return self._add_followed_celebrity, (reader_id, celebrity_id)


class SeedStories(StoryRepository):
    def story(self, author_id: int, story_id: int, media: dict[str, tuple[str, int, int]], preview: str,
              created_at: Timestamp, expires_at: Timestamp, ttl_s: int) -> Write:
        return self._insert, (author_id, story_id, media, preview, created_at, expires_at, ttl_s)

    def by_id(self, story_id: int, author_id: int, expires_at: Timestamp, ttl_s: int) -> Write:
        return self._insert_by_id, (story_id, author_id, expires_at, ttl_s)

    def tray(self, reader_id: int, author_id: int, username: str, story_id: int, expires_at: Timestamp,
             ttl_s: int) -> Write:
        """One story in one reader's tray row, as the tray worker pushes it: partition `reader_id`."""
        return self._push, (ttl_s, {story_id: expires_at}, username, reader_id, author_id)


class SeedStoryMediaLog(StoryMediaLog):
    def record(self, story_id: int, expires_at: Timestamp, keys: Iterable[str], remaining_s: int) -> tuple[Any, Write]:
        """The story's media keys under the minute it expires (for the story sweeper); (partition, write)."""
        minute, shard = expiry_minute(expires_at), story_id % EXPIRY_SHARDS
        ttl = max(1, remaining_s) + EXPIRY_RECORD_EXTRA_S
        return (minute, shard), (self._record, (minute, shard, story_id, expires_at, set(keys), ttl))


class SeedSessions(SessionTable):
    def __init__(self, cass: CassandraSession, ttl_s: int) -> None:
        super().__init__(cass)
        self.ttl_s = ttl_s

    def create_write(self, user_id: int, at: Timestamp) -> tuple[str, Write]:
        """A session as `SessionStore.create` makes it at login: a new token, its hash stored with the TTL."""
        token = new_token()
        return token, (self._insert, (token_hash(token), user_id, at, self.ttl_s))


class Statements:
    """Every owner the seeder writes (and reads) with, prepared once."""

    async def prepare(self, cass: CassandraSession, session_ttl_s: int) -> Statements:
        self.users = SeedUsers(cass)
        self.follows = SeedFollows(cass)
        self.posts = SeedPosts(cass)
        self.hashtags = HashtagRepository(cass)  # read by the search index's rebuild
        self.likes = SeedLikes(cass)
        self.comments = SeedComments(cass)
        self.affinity = SeedAffinity(cass)
        self.feed = SeedFeed(cass)
        self.stories = SeedStories(cass)
        self.story_media = SeedStoryMediaLog(cass)
        self.sessions = SeedSessions(cass, session_ttl_s)
        await asyncio.gather(*(owner.prepare() for owner in (
            self.users, self.follows, self.posts, self.hashtags, self.likes, self.comments, self.affinity, self.feed,
            self.stories, self.story_media, self.sessions)))
        return self


async def execute_each(cass: CassandraSession, writes: Sequence[Write], concurrency: int) -> None:
    """The writes one request each (no batch), `concurrency` in flight: for benchmarks that seed a few
    tables without the seeder's batching."""
    by_statement: dict[int, tuple[PreparedStatement, list]] = {}
    for statement, params in writes:
        by_statement.setdefault(id(statement), (statement, []))[1].append(params)
    for statement, params in by_statement.values():
        await cass.execute_many(statement, params, concurrency)


def password_salt(seed: int) -> bytes:
    """The salt of the one password hash every seeded account shares: fixed per seed, so a re-run writes
    the same hash (argon2 salts are normally random; these accounts are test data)."""
    return hashlib.sha256(f"photos-seed:{seed}".encode()).digest()[:16]
