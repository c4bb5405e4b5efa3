"""Redis copies of `posts` rows, their live counts, and the newest page of ids of each user's grid.

A page of posts is read in one round trip (a script), not one partition read per post:
- `post:<id>`: the immutable parts of the row (author, caption, tags, media, preview, time) as
  `<author id>|<json>`, for post_cache_ttl_s. A delete replaces it by a tombstone (`-`) for as
  long: every fill is SET NX, so a reader that read the row just before the delete cannot bring
  it back, and the post is left out of every page (grid, feed, hashtag, by id) at once.
- the counts are not taken from the cached row: `postlikes:<id>` is the exact like count the like
  worker writes after each batch (streams/like_counts.py; the count a like's reply carries is
  another key, app/storage/like_counts.py), `comments:<id>` the comment count the comment worker
  writes after each recount (streams/comment_counts.py). A post whose object or
  either count is missing is read from Cassandra, and the three are filled from that row (NX: a
  count already there is never overwritten by the row's).
- `user:<id>` (app/storage/user_cache.py): the authors, in the same round trip.
- the grid: `grid:<user>` is a sorted set of the user's post ids (zero-padded, so lexical order is
  time order) holding every id at or above `gridfloor:<user>` ("0": all of them). It is filled
  from `posts_by_user` on a miss, and kept in place by the writers: a create adds its id (the set
  keeps at most twice grid_cache_ids, raising the floor), a delete removes it. Both increment
  `gridver:<user>`; a fill is stored only if the version is the one read before the timeline was,
  so a page read from Cassandra before a create or delete is never cached after it.

Everything here is a copy: a flushed Redis costs reads, never correctness. Every call goes through
a breaker (app/redis_breaker.py); while Redis cannot answer, pages are read from Cassandra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import orjson
from redis.asyncio import Redis

from app.redis_breaker import RedisBreaker
from app.settings import Settings
from app.storage.user_cache import CachedUser, UserCache, from_micros, to_micros

TOMBSTONE = b"-"

# Posts, their counts and their authors for a list of ids. ARGV: the post, likes, comments and user
# key prefixes, then the ids. Returns {posts, likes, comments, author ids, authors}.
READ_POSTS = """
local posts, likes, comments, authors, users, seen = {}, {}, {}, {}, {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local post = redis.call('GET', ARGV[1] .. id)
  posts[#posts + 1] = post
  likes[#likes + 1] = redis.call('GET', ARGV[2] .. id)
  comments[#comments + 1] = redis.call('GET', ARGV[3] .. id)
  local author = post and string.match(post, '^(%d+)|')
  if author and not seen[author] then
    seen[author] = true
    authors[#authors + 1] = author
  end
end
for i, author in ipairs(authors) do users[i] = redis.call('GET', ARGV[4] .. author) end
return {posts, likes, comments, authors, users}
"""

# A page of a user's grid. KEYS: grid, gridfloor, gridver, the user's profile. ARGV: the post, likes
# and comments key prefixes, the page's upper bound (a padded id, exclusive; '' for the newest), limit.
# Returns {profile, version, ids or false, posts, likes, comments}: ids is false when the cached set
# cannot answer (no set, or fewer ids than asked for above its floor).
READ_GRID = """
local user = redis.call('GET', KEYS[4])
local version = redis.call('GET', KEYS[3])
local floor = redis.call('GET', KEYS[2])
if not floor then return {user, version, false} end
local top = '+'
if ARGV[4] ~= '' then top = '(' .. ARGV[4] end
local limit = tonumber(ARGV[5])
local ids = redis.call('ZRANGE', KEYS[1], top, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit)
if #ids < limit and floor ~= '0' then return {user, version, false} end
local posts, likes, comments = {}, {}, {}
for i, id in ipairs(ids) do
  local plain = string.match(id, '^0*(%d+)$')
  posts[i] = redis.call('GET', ARGV[1] .. plain)
  likes[i] = redis.call('GET', ARGV[2] .. plain)
  comments[i] = redis.call('GET', ARGV[3] .. plain)
end
return {user, version, ids, posts, likes, comments}
"""

# Store a grid read from Cassandra, unless a writer changed the grid since `version` was read.
# KEYS: grid, gridfloor, gridver. ARGV: the version read, TTL, floor, then the padded ids.
STORE_GRID = """
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], 0, ARGV[i]) end
if #ARGV >= 4 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2])
return 1
"""

# A new post: its object and zero counts cached (NX), its id added to a cached grid. KEYS: grid,
# gridfloor, gridver, post, likes, comments. ARGV: the padded id, the grid's cap, the version TTL,
# the object, the object's TTL.
ADD_POST = """
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5], 'NX')
redis.call('SET', KEYS[5], '0', 'EX', ARGV[5], 'NX')
redis.call('SET', KEYS[6], '0', 'EX', ARGV[5], 'NX')
local floor = redis.call('GET', KEYS[2])
if floor and ARGV[1] >= floor then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  local n = redis.call('ZCARD', KEYS[1])
  local cap = tonumber(ARGV[2])
  if n > cap then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1)
    redis.call('SET', KEYS[2], redis.call('ZRANGE', KEYS[1], 0, 0)[1], 'KEEPTTL')
  end
end
return 1
"""

# A deleted post: tombstoned, out of its author's cached grid. KEYS: grid, gridver, post.
# ARGV: the padded id, the version TTL, the tombstone's TTL.
REMOVE_POST = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], '-', 'EX', ARGV[3])
return 1
"""


def padded(post_id: int) -> str:
    return f"{post_id:019d}"


class CachedMedia(NamedTuple):
    key: str
    width: int
    height: int


@dataclass
class CachedPost:
    """A post as a page shows it, with the attribute names of a `posts` row."""

    post_id: int
    author_id: int
    caption: str
    hashtags: list[str]
    mentions: list[str]
    location: str
    filter: str | None
    media: dict[str, CachedMedia]
    preview: str | None
    created_at: datetime | None
    like_count: int = 0
    comment_count: int = 0


def encode_post(row) -> bytes:
    """The immutable parts of a `posts` row (or of a post being created)."""
    body = {
        "c": row.caption, "h": list(row.hashtags or ()), "m": list(row.mentions or ()), "l": row.location,
        "f": row.filter, "md": {name: list(v) for name, v in (row.media or {}).items()}, "p": row.preview,
        "t": to_micros(row.created_at),
    }
    return b"%d|" % row.author_id + orjson.dumps(body)


def decode_post(post_id: int, value: bytes, like_count: int, comment_count: int) -> CachedPost:
    author, _, body = value.partition(b"|")
    data = orjson.loads(body)
    return CachedPost(
        post_id=post_id, author_id=int(author), caption=data["c"], hashtags=data["h"], mentions=data["m"],
        location=data["l"], filter=data["f"], media={name: CachedMedia(*v) for name, v in data["md"].items()},
        preview=data["p"], created_at=from_micros(data["t"]), like_count=like_count, comment_count=comment_count,
    )


@dataclass
class PostsRead:
    """What one read of the cache found: posts (counts included), the ids it cannot answer for
    (read them from Cassandra), the ids known deleted, and the authors it holds."""

    posts: dict[int, CachedPost]
    missing: list[int]
    deleted: set[int]
    authors: dict[int, CachedUser]


@dataclass
class GridRead:
    """A grid page from the cache: `ids` is None when the cached grid cannot answer (read the
    timeline, then `store_grid` with `version`)."""

    owner: CachedUser | None
    version: str
    ids: list[int] | None
    found: PostsRead | None


class PostCache:
    def __init__(self, redis: Redis, namespace: str, ttl_s: int, grid_ttl_s: int, grid_ids: int,
                 users: UserCache) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl_s = ttl_s
        self._grid_ttl_s = grid_ttl_s
        self._version_ttl_s = 2 * grid_ttl_s  # outlives the grid it guards
        self.grid_ids = grid_ids
        self._users = users
        self._breaker = RedisBreaker("post cache")
        self._read_posts = redis.register_script(READ_POSTS)
        self._read_grid = redis.register_script(READ_GRID)
        self._store_grid = redis.register_script(STORE_GRID)
        self._add_post = redis.register_script(ADD_POST)
        self._remove_post = redis.register_script(REMOVE_POST)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis, users: UserCache) -> PostCache:
        return cls(redis, namespace=settings.cassandra_keyspace, ttl_s=settings.post_cache_ttl_s,
                   grid_ttl_s=settings.grid_cache_ttl_s, grid_ids=settings.grid_cache_ids, users=users)

    # --- keys ----------------------------------------------------------------
    def post_key(self, post_id: int) -> str:
        return f"{self._ns}:post:{post_id}"

    def comments_key(self, post_id: int) -> str:
        return f"{self._ns}:comments:{post_id}"

    def likes_key(self, post_id: int) -> str:
        return f"{self._ns}:postlikes:{post_id}"

    def grid_key(self, user_id: int) -> str:
        return f"{self._ns}:grid:{user_id}"

    def grid_floor_key(self, user_id: int) -> str:
        return f"{self._ns}:gridfloor:{user_id}"

    def grid_version_key(self, user_id: int) -> str:
        return f"{self._ns}:gridver:{user_id}"

    def _prefixes(self) -> list[str]:
        return [self.post_key(0)[:-1], self.likes_key(0)[:-1], self.comments_key(0)[:-1]]

    @property
    def available(self) -> bool:
        return self._breaker.available

    # --- reads ---------------------------------------------------------------
    def _found(self, ids: list[int], posts: list, likes: list, comments: list) -> PostsRead:
        read = PostsRead({}, [], set(), {})
        for post_id, value, like_count, comment_count in zip(ids, posts, likes, comments, strict=True):
            if value == TOMBSTONE:
                read.deleted.add(post_id)
            elif value is None or like_count is None or comment_count is None:
                read.missing.append(post_id)
            else:
                read.posts[post_id] = decode_post(post_id, value, int(like_count), int(comment_count))
        return read

    async def read_posts(self, post_ids: list[int]) -> PostsRead | None:
        """The posts, counts and authors the cache holds, in one round trip; None when Redis cannot answer."""
        ids = list(dict.fromkeys(post_ids))

        async def run() -> PostsRead:
            posts, likes, comments, author_ids, authors = await self._read_posts(
                keys=[], args=[*self._prefixes(), self._users.prefix, *ids]
            )
            read = self._found(ids, posts, likes, comments)
            for raw, value in zip(author_ids, authors, strict=True):
                author = self._users.decode(int(raw), value)
                if author is not None:
                    read.authors[author.user_id] = author
            return read

        if not ids:
            return PostsRead({}, [], set(), {})
        return await self._breaker.call("read_posts", run, None)

    async def read_grid(self, user_id: int, before: int | None, limit: int) -> GridRead | None:
        """A page of the user's grid (ids older than `before`, newest first) with its posts and the
        user's profile, in one round trip; None when Redis cannot answer."""

        async def run() -> GridRead:
            keys = [self.grid_key(user_id), self.grid_floor_key(user_id), self.grid_version_key(user_id),
                    self._users.key(user_id)]
            reply = await self._read_grid(
                keys=keys, args=[*self._prefixes(), "" if before is None else padded(before), limit]
            )
            owner = self._users.decode(user_id, reply[0])
            version = (reply[1] or b"0").decode()
            if len(reply) < 3 or reply[2] is None:
                return GridRead(owner, version, None, None)
            ids = [int(member) for member in reply[2]]
            found = self._found(ids, reply[3], reply[4], reply[5])
            if owner is not None:
                found.authors[user_id] = owner
            return GridRead(owner, version, ids, found)

        return await self._breaker.call("read_grid", run, None)

    # --- fills ---------------------------------------------------------------
    async def fill(self, rows: Iterable) -> None:
        """Cache `posts` rows just read from Cassandra with their counts; nothing is overwritten (a
        tombstone, or a count the workers or like requests moved since the row was read)."""
        rows = [row for row in rows if row is not None]
        if not rows:
            return

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.set(self.post_key(row.post_id), encode_post(row), ex=self._ttl_s, nx=True)
                    pipe.set(self.likes_key(row.post_id), row.like_count or 0, ex=self._ttl_s, nx=True)
                    pipe.set(self.comments_key(row.post_id), row.comment_count or 0, ex=self._ttl_s, nx=True)
                await pipe.execute()

        await self._breaker.call("fill", run, None)

    async def store_grid(self, user_id: int, version: str, ids: list[int], complete: bool) -> bool:
        """Cache the newest ids of a user's grid, read from `posts_by_user` after `version` was read;
        `complete`: they are all of them. False when a writer got in between (or Redis is away)."""

        async def run() -> bool:
            floor = "0" if complete or not ids else padded(ids[-1])
            keys = [self.grid_key(user_id), self.grid_floor_key(user_id), self.grid_version_key(user_id)]
            stored = await self._store_grid(
                keys=keys, args=[version, self._grid_ttl_s, floor, *(padded(pid) for pid in ids)]
            )
            return bool(stored)

        return await self._breaker.call("store_grid", run, False)

    # --- the writers of `posts` and `posts_by_user` ---------------------------
    async def note_created(self, post) -> bool:
        """A post was written (row and timelines): cache it and put it in its author's cached grid."""

        async def run() -> bool:
            uid, pid = post.author_id, post.post_id
            keys = [self.grid_key(uid), self.grid_floor_key(uid), self.grid_version_key(uid), self.post_key(pid),
                    self.likes_key(pid), self.comments_key(pid)]
            await self._add_post(keys=keys, args=[padded(pid), 2 * self.grid_ids, self._version_ttl_s,
                                                  encode_post(post), self._ttl_s])
            return True

        return await self._breaker.call("note_created", run, False)

    async def note_deleted(self, post_id: int, author_id: int) -> bool:
        """A post is being (or was) deleted: tombstone it and take it out of its author's cached grid.
        False when Redis could not be told."""

        async def run() -> bool:
            keys = [self.grid_key(author_id), self.grid_version_key(author_id), self.post_key(post_id)]
            await self._remove_post(keys=keys, args=[padded(post_id), self._version_ttl_s, self._ttl_s])
            return True

        return await self._breaker.call("note_deleted", run, False)

    # --- written by the count workers (streams/like_counts.py, comment_counts.py) ---
    async def save_like_counts(self, counts: dict[int, int]) -> None:
        """The exact like counts of a batch's posts (after they are written to `posts`)."""
        await self._save_counts(self.likes_key, counts)

    async def save_comment_counts(self, counts: dict[int, int]) -> None:
        """The exact comment counts of a batch's posts (after they are written to `posts`)."""
        await self._save_counts(self.comments_key, counts)

    async def _save_counts(self, key, counts: dict[int, int]) -> None:
        """Not behind the breaker: a count Redis missed would be served stale, so the worker's batch
        fails and is retried until Redis takes it."""
        if not counts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for post_id, count in counts.items():
                pipe.set(key(post_id), count, ex=self._ttl_s)
            await pipe.execute()
