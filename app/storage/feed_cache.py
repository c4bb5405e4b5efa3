"""Redis state of the feed: each active reader's candidates with their ranking features, ranked
snapshots, the cached first page, and who is an active reader.

Nothing here is the truth. A lost, flushed or unreachable Redis costs work, never correctness:
- `feed:<user>` holds the reader's current ranked snapshot and its rendered first page for
  feed_cache_ttl_s, tagged with `feedver:<user>` as it was when the page was built. Fan-out
  increments `feedver:<user>` when it pushes to the reader, which makes the entry stale at once
  (a plain delete could lose to a reader storing a page built just before the push).
  A miss builds the page from Cassandra. A deleted post is noted in `deleted:<post>` for as long
  as a cached page may hold it; the read script (OPEN_FEED) checks the page's ids (`feedids:<user>`)
  against those keys in the same round trip and the post is left out.
- `active:<user>` exists while the reader has opened their feed within feed_inactive_after_days.
  Fan-out pushes only to active readers; a reader without the key gets their feed rebuilt on
  their next read (Mastodon's approach), so a flushed Redis means rebuilds, not missing posts.
  While Redis cannot answer, fan-out treats every follower as active.

- `fc:<user>` (a hash, TTL feed_inactive_after_days) is the reader's *candidate set*: every post of
  their feed newer than its boundary `b`, each field `<post id>` -> `<author>,<likes>,<comments>`,
  plus `c` (the followed celebrities), `v` (bumped by every change) and `t` (when it was last
  refilled from Cassandra; 0 = refill due). `fa:<user>` (a hash, same TTL) holds the reader's
  interactions with every author they engaged with (`affinity`), as of the last refill. The story
  tray reads `c` and `fa` too (`reader_context`), while the set is not due for a refill.
  Fan-out merges each push into it (`merge`), deletes and unfollows take posts out, and a refill
  (FeedService, off the request path) rewrites it from Cassandra. A celebrity's new posts are not
  pushed: fan-out adds them to `celeb:<author>` (a sorted set of the newest CELEB_KEEP) and every
  read merges the followed celebrities' sets in.
- `fs:<user>:<snapshot>` (TTL feed_snapshot_ttl_s) is a ranked snapshot: the candidates and their
  features frozen at the first page, which later pages rank again to the same order; `fsl:<user>`
  names the latest one and the candidate version it was cut from, so a first page read before
  anything changed reuses it ("hit").
- `funf:<user>` holds the authors the reader unfollowed lately: reads leave their posts out at
  once, snapshots included, until the worker has taken them out of the feed.

Every call gives up after the client's short timeout and then leaves Redis alone for a few
seconds (app/redis_breaker.py), so a hung Redis does not add its timeout to every feed read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from app.ids import ID_EPOCH_MS, id_millis
from app.redis_breaker import RedisBreaker
from app.settings import Settings

# One round trip for a feed read: refresh the activity mark (returning the old one), fetch the cached
# first page, its version, and which of its posts were deleted since it was cached.
# KEYS: active, feed, feedver, feedids; ARGV: active TTL, prefix of the deleted-post keys.
# The deleted-post keys are not in KEYS, so the script needs a single (non-Cluster) Redis, as the
# local stack and a primary/replica pair with Sentinel are.
OPEN_FEED = """
local was_active = redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'GET')
local page = redis.call('GET', KEYS[2])
local version = redis.call('GET', KEYS[3])
local gone = {}
local ids = page and redis.call('GET', KEYS[4])
if ids then
  for id in string.gmatch(ids, '%d+') do
    if redis.call('EXISTS', ARGV[2] .. id) == 1 then gone[#gone + 1] = id end
  end
end
return {was_active, page, version, gone}
"""


CELEB_KEEP = 100  # newest posts kept per celebrity in `celeb:<author>`

# One round trip for a feed read from the candidate set. KEYS: active, fc, fa, fsl, funf, and the key the
# new snapshot goes to; ARGV: active TTL, deleted prefix, like-count prefix, celebrity prefix, mode
# ("ranked": reuse the latest snapshot when nothing changed, else store a new one; "live": no snapshot),
# the new snapshot's id, the snapshot key prefix, snapshot TTL, reuse TTL, now (ms).
# Returns {was active, state, blob, deleted ids, unfollowed authors, refilled at}; the blob is a header
# line "<snapshot> <ranked at ms> <version> <boundary> <followed celebrities, comma-separated, or ->",
# then "<post> <author> <likes> <comments> <interactions>"
# per candidate. Like counts come from the live `likes:<post>` counts when they exist.
READ_CANDIDATES = """
local was_active = redis.call('SET', KEYS[1], '1', 'EX', ARGV[1], 'GET')
local unfollowed = redis.call('SMEMBERS', KEYS[5])
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {was_active, 'none', false, {}, unfollowed, '0'}
end
local version = redis.call('HGET', KEYS[2], 'v') or '0'
local refilled = redis.call('HGET', KEYS[2], 't') or '0'
if ARGV[5] == 'ranked' then
  local latest = redis.call('GET', KEYS[4])
  if latest then
    local sid, v = string.match(latest, '(%d+) (%d+)')
    local blob = v == version and redis.call('GET', ARGV[7] .. sid)
    if blob then
      local gone = {}
      for id in string.gmatch(blob, '\\n(%d+) ') do
        if redis.call('EXISTS', ARGV[2] .. id) == 1 then gone[#gone + 1] = id end
      end
      return {was_active, 'hit', blob, gone, unfollowed, refilled}
    end
  end
end
local fields = redis.call('HGETALL', KEYS[2])
local boundary, celebs, feat = '0', '', {}
for i = 1, #fields, 2 do
  local k = fields[i]
  if k == 'b' then boundary = fields[i + 1]
  elseif k == 'c' then celebs = fields[i + 1]
  elseif k ~= 'v' and k ~= 't' then feat[k] = fields[i + 1] end
end
for author in string.gmatch(celebs, '%d+') do
  for _, id in ipairs(redis.call('ZRANGE', ARGV[4] .. author, 0, -1)) do
    if not feat[id] then feat[id] = author .. ',0,0' end
  end
end
local header = table.concat({ARGV[6], ARGV[10], version, boundary, celebs ~= '' and celebs or '-'}, ' ')
local lines, gone = {header}, {}
for id, f in pairs(feat) do
  if redis.call('EXISTS', ARGV[2] .. id) == 1 then
    gone[#gone + 1] = id
  else
    local author, likes, comments = string.match(f, '(%d+),(%d+),(%d+)')
    likes = redis.call('GET', ARGV[3] .. id) or likes
    local interactions = redis.call('HGET', KEYS[3], author) or '0'
    lines[#lines + 1] = id .. ' ' .. author .. ' ' .. likes .. ' ' .. comments .. ' ' .. interactions
  end
end
local blob = table.concat(lines, '\\n')
if ARGV[5] ~= 'ranked' then
  return {was_active, 'live', blob, gone, unfollowed, refilled}
end
redis.call('SET', KEYS[6], blob, 'EX', ARGV[8])
redis.call('SET', KEYS[4], ARGV[6] .. ' ' .. version, 'EX', ARGV[9])
return {was_active, 'new', blob, gone, unfollowed, refilled}
"""

# A later page of a ranked snapshot. KEYS: the snapshot, funf; ARGV: deleted prefix.
READ_SNAPSHOT = """
local blob = redis.call('GET', KEYS[1])
if not blob then return false end
local gone = {}
for id in string.gmatch(blob, '\\n(%d+) ') do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then gone[#gone + 1] = id end
end
return {blob, gone, redis.call('SMEMBERS', KEYS[2])}
"""

# Ids are compared as decimal strings (a Lua number cannot hold every 64-bit id): shorter is older.
OLDER = """
local function older(x, y) return #x < #y or (#x == #y and x < y) end
"""

# A post into one reader's candidate set, if it has one (a push, a follow's backfill).
# KEYS: fc; ARGV: post, author, cap. Past 1.25 x cap the oldest go, and the boundary rises.
MERGE = OLDER + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local b = redis.call('HGET', KEYS[1], 'b') or '0'
if older(ARGV[1], b) then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2] .. ',0,0') == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'v', 1)
local cap = tonumber(ARGV[3])
if redis.call('HLEN', KEYS[1]) > cap + cap / 4 + 4 then
  local ids = {}
  for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.match(k, '^%d+$') then ids[#ids + 1] = k end
  end
  table.sort(ids, function(x, y) return older(y, x) end)
  for i = cap + 1, #ids do redis.call('HDEL', KEYS[1], ids[i]) end
  redis.call('HSET', KEYS[1], 'b', ids[cap])
end
return 1
"""

# Posts out of one reader's candidate set. KEYS: fc; ARGV: "post" and its id, or "author" and the author's id.
REMOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
if ARGV[1] == 'post' then
  n = redis.call('HDEL', KEYS[1], ARGV[2])
else
  local fields, prefix = redis.call('HGETALL', KEYS[1]), ARGV[2] .. ','
  for i = 1, #fields, 2 do
    if string.match(fields[i], '^%d+$') and string.sub(fields[i + 1], 1, #prefix) == prefix then
      n = n + redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[1], 'v', 1) end
return n
"""

# A refill from Cassandra. KEYS: fc, fa; ARGV: boundary, refilled at, celebrities, TTL, n, then n pairs
# (post, "author,likes,comments"), then (author, interactions) pairs. Posts merged in meanwhile (newer
# than what the refill read) stay; posts older than the new boundary go.
FILL = OLDER + """
local b = ARGV[1]
for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.match(k, '^%d+$') and older(k, b) then redis.call('HDEL', KEYS[1], k) end
end
redis.call('HSET', KEYS[1], 'b', b, 't', ARGV[2], 'c', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'v', 1)
local n = tonumber(ARGV[5])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[6 + 2 * i], ARGV[7 + 2 * i]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[2])
for i = 6 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: fc. A refill is due at the reader's next read (their followed celebrities changed, a follow landed).
MARK_STALE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 't', '0') end
return 1
"""

# KEYS: fc, fa. The reader's followed celebrities and interactions as the last refill wrote them, or
# nothing when the reader has no candidate set or a refill is due (their followed celebrities changed).
READER_CONTEXT = """
local t = redis.call('HGET', KEYS[1], 't')
if not t or t == '0' then return false end
return {redis.call('HGET', KEYS[1], 'c') or '', redis.call('HGETALL', KEYS[2])}
"""

DOWN = "down"  # the state of a read Redis could not answer


@dataclass(frozen=True)
class Candidate:
    """A post of a reader's candidate set, with the features a ranker reads (app/feed/ranking.py)."""

    post_id: int
    author_id: int
    like_count: int
    comment_count: int
    interactions: int  # the reader's recent likes and comments on this author's posts

    @property
    def created_ms(self) -> int:
        return id_millis(self.post_id) + ID_EPOCH_MS


@dataclass(frozen=True)
class Candidates:
    """A reader's candidate set as one read saw it (or as a snapshot froze it)."""

    snapshot_id: int
    ranked_at_ms: int
    version: int
    boundary: int  # every post of the feed at or newer than this is among `rows`
    rows: list[Candidate]
    celebrities: tuple[int, ...] = ()  # the followed celebrities (their posts are pulled, not pushed)

    @classmethod
    def parse(cls, blob: bytes | str) -> Candidates:
        text = blob.decode() if isinstance(blob, bytes) else blob
        header, *lines = text.split("\n")
        sid, at, version, boundary, *rest = header.split()
        celebrities = tuple(int(c) for c in rest[0].split(",")) if rest and rest[0] != "-" else ()
        rows = [Candidate(*(int(part) for part in line.split())) for line in lines if line]
        return cls(int(sid), int(at), int(version), int(boundary), rows, celebrities)


@dataclass(frozen=True)
class FeedView:
    was_active: bool | None  # None: Redis could not answer
    state: str  # "none" (no candidate set), "hit", "new", "live", or DOWN
    candidates: Candidates | None = None
    gone: frozenset[int] = frozenset()  # deleted since the posts were cached
    unfollowed: frozenset[int] = frozenset()  # authors the reader unfollowed lately
    refilled_at_ms: int = 0

    def keeps(self, candidate: Candidate) -> bool:
        return candidate.post_id not in self.gone and candidate.author_id not in self.unfollowed


@dataclass(frozen=True)
class Refill:
    """What a refill read from Cassandra, for `FeedCache.fill`."""

    boundary: int
    rows: list[Candidate]
    celebrities: list[int]
    interactions: dict[int, int] = field(default_factory=dict)
    newest_read: int = 0  # the newest pushed entry the refill read (kept or not): pushes after it are caught up


@dataclass(frozen=True)
class ReaderContext:
    """What other reads of the reader (the story tray) take from the candidate set instead of Cassandra."""

    celebrities: list[int]  # as `followed_celebrities` held them at the last refill
    interactions: dict[int, int]  # author -> the reader's interactions (`affinity`) at the last refill


def _ints(values) -> frozenset[int]:
    return frozenset(int(v) for v in values or ())


class FeedCache:
    def __init__(self, redis: Redis, namespace: str, first_page_ttl_s: int, active_ttl_s: int,
                 snapshot_ttl_s: int = 6 * 3600, candidate_cap: int = 200, like_count_prefix: str = "") -> None:
        self._redis = redis
        self._ns = namespace
        self._first_page_ttl_s = first_page_ttl_s
        self._version_ttl_s = 2 * first_page_ttl_s
        self._active_ttl_s = active_ttl_s
        self._snapshot_ttl_s = snapshot_ttl_s
        self._candidate_cap = candidate_cap
        self._likes_prefix = like_count_prefix or f"{namespace}:likes:"
        self._breaker = RedisBreaker("feed cache")
        self._open_feed = redis.register_script(OPEN_FEED)
        self._read = redis.register_script(READ_CANDIDATES)
        self._read_snapshot = redis.register_script(READ_SNAPSHOT)
        self._merge = redis.register_script(MERGE)
        self._remove = redis.register_script(REMOVE)
        self._fill = redis.register_script(FILL)
        self._mark_stale = redis.register_script(MARK_STALE)
        self._reader_context = redis.register_script(READER_CONTEXT)

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis, like_count_prefix: str = "") -> FeedCache:
        return cls(
            redis,
            namespace=settings.cassandra_keyspace,  # a test keyspace never shares keys with a dev system
            first_page_ttl_s=settings.feed_cache_ttl_s,
            active_ttl_s=settings.feed_inactive_after_days * 86400,
            snapshot_ttl_s=settings.feed_snapshot_ttl_s,
            candidate_cap=2 * settings.feed_rank_window,
            like_count_prefix=like_count_prefix,
        )

    def candidates_key(self, user_id: int) -> str:
        return f"{self._ns}:fc:{user_id}"

    def interactions_key(self, user_id: int) -> str:
        return f"{self._ns}:fa:{user_id}"

    def snapshot_key(self, user_id: int, snapshot_id: int) -> str:
        return f"{self._ns}:fs:{user_id}:{snapshot_id}"

    def latest_snapshot_key(self, user_id: int) -> str:
        return f"{self._ns}:fsl:{user_id}"

    def unfollowed_key(self, user_id: int) -> str:
        return f"{self._ns}:funf:{user_id}"

    def celebrity_key(self, author_id: int) -> str:
        return f"{self._ns}:celeb:{author_id}"

    def feed_key(self, user_id: int) -> str:
        return f"{self._ns}:feed:{user_id}"

    @property
    def version_ttl_s(self) -> int:
        return self._version_ttl_s

    def version_key(self, user_id: int) -> str:
        return f"{self._ns}:feedver:{user_id}"

    def ids_key(self, user_id: int) -> str:
        return f"{self._ns}:feedids:{user_id}"

    def deleted_key(self, post_id: int) -> str:
        return f"{self._ns}:deleted:{post_id}"

    def active_key(self, user_id: int) -> str:
        return f"{self._ns}:active:{user_id}"

    @property
    def available(self) -> bool:
        return self._breaker.available

    # --- reads ---------------------------------------------------------------
    async def open_feed(self, user_id: int) -> tuple[bool | None, dict | None, int]:
        """Mark the reader active; return (were they active before, their cached first page, its version).

        The cached page is returned only when no push has happened since it was stored (its version
        still matches). (None, None, 0) when Redis cannot answer: activity unknown, nothing cached."""

        async def run() -> tuple[bool | None, dict | None, int]:
            keys = [self.active_key(user_id), self.feed_key(user_id), self.version_key(user_id), self.ids_key(user_id)]
            was_active, cached, version, gone = await self._open_feed(
                keys=keys, args=[self._active_ttl_s, f"{self._ns}:deleted:"]
            )
            version = int(version or 0)
            page = orjson.loads(cached) if cached else None
            if page is not None and page.get("v") != version:
                page = None
            if page is not None and gone:
                deleted = {item.decode() for item in gone}
                page["items"] = [item for item in page["items"] if item["id"] not in deleted]
            return was_active is not None, page, version

        return await self._breaker.call("open_feed", run, (None, None, 0))

    async def reader_context(self, user_id: int) -> ReaderContext | None:
        """The reader's followed celebrities and interactions from their candidate set, one round trip;
        None when there is no set, a refill is due, or Redis cannot answer (read them from Cassandra)."""

        async def run() -> ReaderContext | None:
            found = await self._reader_context(keys=[self.candidates_key(user_id), self.interactions_key(user_id)])
            if not found:
                return None
            celebrities, pairs = found
            text = celebrities.decode() if isinstance(celebrities, bytes) else str(celebrities)
            ids = [int(c) for c in text.split(",") if c and c != "-"]
            interactions = {int(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
            return ReaderContext(ids, interactions)

        return await self._breaker.call("reader_context", run, None)

    async def read(self, user_id: int, *, ranked: bool, snapshot_id: int, now_ms: int) -> FeedView:
        """Mark the reader active and read their candidate set, with its features, in one round trip.

        `ranked`: the first page of the ranked feed, which reuses the latest snapshot when the set has not
        changed since ("hit") or freezes the set as a new snapshot `snapshot_id` ("new"). Otherwise the
        set as it is ("live"). "none": the reader has no candidate set; DOWN: Redis could not answer."""

        async def run() -> FeedView:
            keys = [self.active_key(user_id), self.candidates_key(user_id), self.interactions_key(user_id),
                    self.latest_snapshot_key(user_id), self.unfollowed_key(user_id),
                    self.snapshot_key(user_id, snapshot_id)]
            args = [self._active_ttl_s, f"{self._ns}:deleted:", self._likes_prefix, f"{self._ns}:celeb:",
                    "ranked" if ranked else "live", snapshot_id, f"{self._ns}:fs:{user_id}:", self._snapshot_ttl_s,
                    self._first_page_ttl_s, now_ms]
            was_active, state, blob, gone, unfollowed, refilled = await self._read(keys=keys, args=args)
            return FeedView(
                was_active is not None, state.decode(), Candidates.parse(blob) if blob else None,
                _ints(gone), _ints(unfollowed), int(refilled or 0),
            )

        return await self._breaker.call("read", run, FeedView(None, DOWN))

    async def snapshot(self, user_id: int, snapshot_id: int) -> FeedView:
        """A ranked snapshot for a later page: state "hit", "none" when it expired (or is another reader's)."""

        async def run() -> FeedView:
            found = await self._read_snapshot(
                keys=[self.snapshot_key(user_id, snapshot_id), self.unfollowed_key(user_id)],
                args=[f"{self._ns}:deleted:"],
            )
            if not found:
                return FeedView(True, "none")
            blob, gone, unfollowed = found
            return FeedView(True, "hit", Candidates.parse(blob), _ints(gone), _ints(unfollowed))

        return await self._breaker.call("snapshot", run, FeedView(None, DOWN))

    async def active_among(self, user_ids: list[int]) -> set[int] | None:
        """Which of the readers are active (one round trip); None when Redis cannot say."""
        if not user_ids:
            return set()

        async def run() -> set[int]:
            values = await self._redis.mget([self.active_key(uid) for uid in user_ids])
            return {uid for uid, value in zip(user_ids, values, strict=True) if value is not None}

        return await self._breaker.call("active_among", run, None)

    # --- writes --------------------------------------------------------------
    async def store_first_page(self, user_id: int, value: dict, version: int) -> None:
        """Cache the first page as of `version` (read before the page was built, so a push that
        lands meanwhile makes this entry stale at once)."""

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self.feed_key(user_id), orjson.dumps({**value, "v": version}), ex=self._first_page_ttl_s)
                ids = " ".join(item["id"] for item in value["items"])
                pipe.set(self.ids_key(user_id), ids, ex=self._first_page_ttl_s)
                pipe.expire(self.version_key(user_id), self._version_ttl_s)  # outlives the entry it guards
                await pipe.execute()

        await self._breaker.call("store", run, None)

    async def invalidate(self, user_ids: Iterable[int]) -> bool:
        """Make these readers' cached first pages stale and their candidate sets due for a refill (their
        follows changed); False when Redis could not be told."""
        readers = list(user_ids)
        keys = [self.version_key(uid) for uid in readers]
        if not keys:
            return True

        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                for uid, key in zip(readers, keys, strict=True):
                    pipe.incr(key)
                    pipe.expire(key, self._version_ttl_s)
                    await self._mark_stale(keys=[self.candidates_key(uid)], client=pipe)
                await pipe.execute()
            return True

        return await self._breaker.call("invalidate", run, False)

    # --- the candidate sets ----------------------------------------------------
    async def merge(self, readers: Sequence[int], entries: Sequence) -> bool:
        """Each entry (post_id, author_id) into each reader's candidate set, where the reader has one:
        one round trip. False when Redis could not be told (the next refill brings the posts)."""
        pairs = [(reader, entry) for reader in readers for entry in entries]
        if not pairs:
            return True

        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                for reader, (post_id, author_id) in pairs:
                    await self._merge(keys=[self.candidates_key(reader)],
                                      args=[post_id, author_id, self._candidate_cap], client=pipe)
                await pipe.execute()
            return True

        return await self._breaker.call("merge", run, False)

    async def remove_post(self, readers: Sequence[int], post_id: int) -> bool:
        """The post out of these readers' candidate sets (the fan-out worker, after a delete)."""
        if not readers:
            return True

        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                for reader in readers:
                    await self._remove(keys=[self.candidates_key(reader)], args=["post", post_id], client=pipe)
                await pipe.execute()
            return True

        return await self._breaker.call("remove_post", run, False)

    async def remove_author(self, reader: int, author_id: int, *, unfollowed: bool = False) -> bool:
        """The author's posts out of the reader's candidate set; `unfollowed` (the API, at the unfollow)
        also notes the author in `funf:<reader>`, so reads and snapshots leave them out from now on."""

        async def run() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                await self._remove(keys=[self.candidates_key(reader)], args=["author", author_id], client=pipe)
                if unfollowed:
                    pipe.sadd(self.unfollowed_key(reader), author_id)
                    pipe.expire(self.unfollowed_key(reader), self._snapshot_ttl_s)
                    pipe.incr(self.version_key(reader))  # a cached first page goes stale too
                    pipe.expire(self.version_key(reader), self._version_ttl_s)
                await pipe.execute()
            return True

        return await self._breaker.call("remove_author", run, False)

    async def forget_author(self, reader: int, author_id: int) -> bool:
        """An unfollow (the API): the author leaves the reader's feed at once."""
        return await self.remove_author(reader, author_id, unfollowed=True)

    async def followed_again(self, reader: int, author_id: int) -> None:
        """A follow (the worker, before it copies the author's posts in): no longer left out."""

        async def run() -> None:
            await self._redis.srem(self.unfollowed_key(reader), author_id)

        await self._breaker.call("followed_again", run, None)

    async def fill(self, reader: int, refill: Refill, refilled_at_ms: int) -> bool:
        """Rewrite the reader's candidate set from what a refill read in Cassandra (one round trip)."""
        args: list = [refill.boundary, refilled_at_ms, ",".join(str(c) for c in refill.celebrities),
                      self._active_ttl_s, len(refill.rows)]
        for row in refill.rows:
            args += [row.post_id, f"{row.author_id},{row.like_count},{row.comment_count}"]
        for author_id, count in refill.interactions.items():
            args += [author_id, count]

        async def run() -> bool:
            await self._fill(keys=[self.candidates_key(reader), self.interactions_key(reader)], args=args)
            return True

        return await self._breaker.call("fill", run, False)

    async def celebrity_post(self, author_id: int, post_id: int, ttl_s: int) -> bool:
        """A celebrity's new post, which every follower's read merges in (fan-out, instead of a push)."""

        async def run() -> bool:
            key = self.celebrity_key(author_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {str(post_id): id_millis(post_id)})
                pipe.zremrangebyrank(key, 0, -CELEB_KEEP - 1)
                pipe.expire(key, ttl_s)
                await pipe.execute()
            return True

        return await self._breaker.call("celebrity_post", run, False)

    async def celebrity_post_removed(self, author_id: int, post_id: int) -> bool:
        async def run() -> bool:
            await self._redis.zrem(self.celebrity_key(author_id), str(post_id))
            return True

        return await self._breaker.call("celebrity_post_removed", run, False)

    async def note_deleted(self, post_id: int) -> None:
        """Remember a deletion for as long as a cached first page can hold the post."""

        async def run() -> None:
            await self._redis.set(self.deleted_key(post_id), b"1", ex=self._first_page_ttl_s + 5)

        await self._breaker.call("note_deleted", run, None)

    async def forget_active(self, user_id: int) -> None:
        """Make the next read rebuild the feed (a rebuild that failed half way)."""

        async def run() -> None:
            await self._redis.delete(self.active_key(user_id))

        await self._breaker.call("forget_active", run, None)
